"""Benchmark: package hot-distance target (and weights) vs the spec's doubled-grid way.

Usage:
    python benchmarks/bench_target.py [--runs N] [--quick]

Times are medians over ``--runs`` runs, the two methods alternating within each
run. Peak extra memory is the max RSS of a fresh subprocess (this script in a
hidden ``--measure-memory`` mode) after running the method once, minus its
max RSS after imports, numba warm-up and loading the inputs; "working" memory
is that minus the arrays the method returns (the target, and the weights),
which both methods must hold.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from oracles import reference_hot_distance_target  # noqa: E402

from gp_hotdistance import core  # noqa: E402

SCALE = 50.0
VOXEL_SIZES = {"8x8x8": (8.0, 8.0, 8.0), "40x4x4": (40.0, 4.0, 4.0)}
METHODS = ("ref_target", "pkg_target", "ref_full", "pkg_full")
BARS = {"target_speed": 25.0, "target_memory": 20.0, "full_speed": 15.0}


# ---------------------------------------------------------------- inputs
def make_dense(shape, rng):
    gt = np.empty(shape, dtype=np.uint8)
    for c in range(shape[0]):
        smooth = ndimage.gaussian_filter(rng.standard_normal(shape[1:]).astype(np.float32), 2.0)
        gt[c] = smooth > np.percentile(smooth, 70)
    return gt


def make_sparse(shape, rng):
    gt = np.zeros(shape, dtype=np.uint8)
    size = np.prod(shape[1:])
    zz, yy, xx = np.ogrid[tuple(slice(0, s) for s in shape[1:])]
    for c in range(shape[0]):
        while gt[c].sum() < 0.02 * size:
            r = rng.uniform(3, 8)
            centre = [rng.uniform(0, s) for s in shape[1:]]
            ball = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= r * r
            gt[c][ball] = 1
    return gt


def make_mask(shape, rng):
    """Per-channel mask: known everywhere except one random box per channel."""
    mask = np.ones(shape, dtype=np.uint8)
    for c in range(shape[0]):
        box = []
        for s in shape[1:]:
            w = int(rng.integers(s // 4, s // 2 + 1))
            start = int(rng.integers(0, s - w + 1))
            box.append(slice(start, start + w))
        mask[(c,) + tuple(box)] = 0
    return mask


def make_inputs(kind, size, seed=0):
    rng = np.random.default_rng(seed)
    shape = (3, size, size, size)
    gt = make_dense(shape, rng) if kind == "dense" else make_sparse(shape, rng)
    return gt, make_mask(shape, rng)


# ------------------------------------------------- spec's reference weights
def reference_balance(labels, known, clipmin=0.05, clipmax=0.95):
    values, cnts = np.unique(labels[known], return_counts=True)
    counts = np.zeros(2, dtype=np.int64)
    for v, n in zip(values, cnts):
        counts[int(v)] += n
    fractions = np.clip(counts / (1.0 + counts.sum()), clipmin, clipmax)
    w = 0.5 / fractions
    return (np.where(labels != 0, w[1], w[0]) * known).astype(np.float32)


def reference_hot_distance_weights(gt, target, mask, voxel_size, scale_factor,
                                   epsilon=0.05, threshold=0.8):
    classes = gt.shape[0]
    weights = np.empty((2 * classes,) + gt.shape[1:], dtype=np.float32)
    for c in range(classes):
        known = mask[c].astype(bool)
        weights[c] = reference_balance(gt[c], known)
        padded = np.pad(known, 1, mode="constant", constant_values=False)
        unknown = ndimage.distance_transform_edt(padded, sampling=voxel_size)
        unknown = unknown[(slice(1, -1),) * (gt.ndim - 1)]
        measured = np.clip(np.abs(target[classes + c]) + epsilon, 0, threshold)
        untrusted = measured >= np.tanh(unknown / scale_factor)
        weights[classes + c] = reference_balance(gt[c], known & ~untrusted)
    return weights


# ---------------------------------------------------------------- methods
def run_method(method, gt, mask, voxel_size):
    if method == "ref_target":
        return reference_hot_distance_target(gt, voxel_size, SCALE)
    if method == "pkg_target":
        return core.hot_distance_target(gt, voxel_size, SCALE)
    if method == "ref_full":
        t = reference_hot_distance_target(gt, voxel_size, SCALE)
        return t, reference_hot_distance_weights(gt, t, mask, voxel_size, SCALE)
    if method == "pkg_full":
        t = core.hot_distance_target(gt, voxel_size, SCALE)
        w, _ = core.hot_distance_weights(gt, t, mask, voxel_size, SCALE,
                                         counts=None, mask_distances=True)
        return t, w
    raise ValueError(method)


def warm_up():
    g = np.zeros((2, 8, 8, 8), dtype=np.uint8)
    g[0, 2:5, 2:5, 2:5] = 1
    g[1, :4] = 1
    m = np.ones_like(g)
    m[:, 6:] = 0
    t = core.hot_distance_target(g, (1.0, 1.0, 1.0), SCALE)
    core.hot_distance_weights(g, t, m, (1.0, 1.0, 1.0), SCALE, mask_distances=True)


def maxrss_mb():
    """Peak RSS of this process in MB. VmHWM from /proc (Linux) is used where
    available: getrusage's ru_maxrss survives fork+exec on Linux, so a child
    started by a large parent would report the parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def measure_memory_child(method, inputs_path, voxel_key):
    warm_up()
    data = np.load(inputs_path)
    gt, mask = data["gt"], data["mask"]
    baseline = maxrss_mb()
    result = run_method(method, gt, mask, VOXEL_SIZES[voxel_key])
    peak = maxrss_mb() - baseline
    returned = sum(a.nbytes for a in (result if isinstance(result, tuple) else (result,)))
    print(f"{peak:.3f} {peak - returned / 2**20:.3f}")


def measure_memory(method, inputs_path, voxel_key):
    """(peak extra MB, working MB) of ``method`` in a fresh subprocess."""
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--measure-memory", method,
         inputs_path, voxel_key],
        check=True, capture_output=True, text=True,
    )
    peak, working = out.stdout.strip().splitlines()[-1].split()
    return float(peak), float(working)


# ---------------------------------------------------------------- main
def trust_difference(reference_weights, package_weights, classes):
    """Shares of distance-channel voxels that only the package, or only the
    reference, leaves with weight 0 (untrusted or unknown)."""
    ref_zero = reference_weights[classes:] == 0
    pkg_zero = package_weights[classes:] == 0
    return float(np.mean(pkg_zero & ~ref_zero)), float(np.mean(ref_zero & ~pkg_zero))


def time_case(gt, mask, voxel_size, runs):
    """Times of each method, and how their outputs compare."""
    times = {m: [] for m in METHODS}
    target_diff = 0.0
    hot_weights_equal = True
    trust = (0.0, 0.0)
    classes = gt.shape[0]
    for r in range(runs):
        # alternate which method goes first, each run
        for pair in (("ref_target", "pkg_target"), ("ref_full", "pkg_full")):
            results = {}
            for m in pair if r % 2 == 0 else pair[::-1]:
                start = time.perf_counter()
                results[m] = run_method(m, gt, mask, voxel_size)
                times[m].append(time.perf_counter() - start)
            if pair[0] == "ref_target":
                target_diff = max(target_diff, float(
                    np.abs(results["ref_target"] - results["pkg_target"]).max()))
            else:
                (ref_t, ref_w), (pkg_t, pkg_w) = results["ref_full"], results["pkg_full"]
                target_diff = max(target_diff, float(np.abs(ref_t - pkg_t).max()))
                hot_weights_equal &= bool(np.array_equal(ref_w[:classes], pkg_w[:classes]))
                trust = trust_difference(ref_w, pkg_w, classes)
    medians = {m: float(np.median(times[m])) for m in METHODS}
    return medians, target_diff, hot_weights_equal, trust


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small smoke size (3, 32, 32, 32)")
    parser.add_argument("--measure-memory", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_memory:
        measure_memory_child(*args.measure_memory)
        return 0

    size = 32 if args.quick else 128
    warm_up()
    rows = []
    notes = []
    tmpdir = tempfile.mkdtemp(prefix="bench_target_")
    for kind in ("dense", "sparse"):
        gt, mask = make_inputs(kind, size)
        path = os.path.join(tmpdir, f"{kind}.npz")
        np.savez(path, gt=gt, mask=mask)
        for vkey, voxel_size in VOXEL_SIZES.items():
            case = f"{kind} (fg {gt.mean():.1%}) {vkey}"
            print(f"# timing {case} ...", file=sys.stderr, flush=True)
            medians, diff, hot_equal, trust = time_case(gt, mask, voxel_size, args.runs)
            memory = {}
            for m in METHODS:
                print(f"#   memory {m} ...", file=sys.stderr, flush=True)
                memory[m] = measure_memory(m, path, vkey)
            for label, ref, pkg, speed_bar, memory_bar in (
                ("create_target", "ref_target", "pkg_target",
                 BARS["target_speed"], BARS["target_memory"]),
                ("target+weights", "ref_full", "pkg_full", BARS["full_speed"], None),
            ):
                rows.append((case, label, medians[ref], medians[pkg], memory[ref],
                             memory[pkg], speed_bar, memory_bar, diff))
            notes.append(
                f"{case}: max |target difference| {diff:.2e}; one-hot weights "
                f"{'identical' if hot_equal else 'DIFFERENT'}; distance weights 0 only in "
                f"the package at {trust[0]:.2%} of voxels, only in the reference at "
                f"{trust[1]:.2%}"
            )

    print(f"\nshape (3, {size}, {size}, {size}), scale_factor {SCALE:g}, median of "
          f"{args.runs} runs, the two methods alternating each run\n")
    print("| case | method | reference s | package s | speed-up | peak extra MB ref / pkg "
          "| working MB ref / pkg | working memory ratio | bars |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    failures = 0
    for (case, label, ref_s, pkg_s, ref_mem, pkg_mem, speed_bar, memory_bar, diff) in rows:
        speed = ref_s / pkg_s
        memory_ratio = ref_mem[1] / max(pkg_mem[1], 0.05)
        verdicts = [f"speed >= {speed_bar:g}x " + ("ok" if speed >= speed_bar else "MISS")]
        if memory_bar is not None:
            verdicts.append(f"memory >= {memory_bar:g}x "
                            + ("ok" if memory_ratio >= memory_bar else "MISS"))
        verdicts.append("diff <= 1e-5 " + ("ok" if diff <= 1e-5 else "MISS"))
        failures += any("MISS" in v for v in verdicts)
        print(f"| {case} | {label} | {ref_s:.3f} | {pkg_s:.3f} | {speed:.1f}x "
              f"| {ref_mem[0]:.1f} / {pkg_mem[0]:.1f} | {ref_mem[1]:.1f} / {pkg_mem[1]:.1f} "
              f"| {memory_ratio:.1f}x | {', '.join(verdicts)} |")
    print()
    for note in notes:
        print(f"- {note}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
