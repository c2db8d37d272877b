"""Benchmark: package hot-distance target (and weights) vs the spec's doubled-grid way.

Usage:
    python benchmarks/bench_target.py [--runs N] [--quick]

Times are medians over ``--runs`` runs, the two methods alternating within each
run. Peak extra memory is the max RSS of a fresh subprocess (this script in a
hidden ``--measure-memory`` mode) after running the method once, minus its
max RSS after imports, numba warm-up and loading the inputs.
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
    run_method(method, gt, mask, VOXEL_SIZES[voxel_key])
    print(f"{maxrss_mb() - baseline:.3f}")


def measure_memory(method, inputs_path, voxel_key):
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--measure-memory", method,
         inputs_path, voxel_key],
        check=True, capture_output=True, text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- main
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
    failures = 0
    tmpdir = tempfile.mkdtemp(prefix="bench_target_")
    for kind in ("dense", "sparse"):
        gt, mask = make_inputs(kind, size)
        path = os.path.join(tmpdir, f"{kind}.npz")
        np.savez(path, gt=gt, mask=mask)
        fg = gt.mean()
        for vkey, vs in VOXEL_SIZES.items():
            case = f"{kind} (fg {fg:.1%}) vs {vkey}"
            print(f"# timing {case} ...", file=sys.stderr, flush=True)
            times = {m: [] for m in METHODS}
            maxdiff = {"target": 0.0, "full": 0.0}
            wdiff = 0.0
            for r in range(args.runs):
                # alternate which method goes first, each run
                for pair in (("ref_target", "pkg_target"), ("ref_full", "pkg_full")):
                    order = pair if r % 2 == 0 else pair[::-1]
                    res = {}
                    for m in order:
                        t0 = time.perf_counter()
                        res[m] = run_method(m, gt, mask, vs)
                        times[m].append(time.perf_counter() - t0)
                    if pair[0] == "ref_target":
                        maxdiff["target"] = max(maxdiff["target"], float(
                            np.abs(res["ref_target"] - res["pkg_target"]).max()))
                    else:
                        maxdiff["full"] = max(maxdiff["full"], float(
                            np.abs(res["ref_full"][0] - res["pkg_full"][0]).max()))
                        wdiff = max(wdiff, float(
                            np.mean(res["ref_full"][1] != res["pkg_full"][1])))
                    del res
            mem = {}
            for m in METHODS:
                print(f"#   memory {m} ...", file=sys.stderr, flush=True)
                mem[m] = measure_memory(m, path, vkey)
            med = {m: float(np.median(times[m])) for m in METHODS}
            for label, ref, pkg, speed_bar, mem_bar in (
                ("create_target", "ref_target", "pkg_target", BARS["target_speed"], BARS["target_memory"]),
                ("target+weights", "ref_full", "pkg_full", BARS["full_speed"], None),
            ):
                ratio = med[ref] / med[pkg]
                mem_ratio = mem[ref] / mem[pkg] if mem[pkg] > 0.05 else float("inf")
                diff = maxdiff["target" if ref == "ref_target" else "full"]
                ok_speed = ratio >= speed_bar
                ok_mem = True if mem_bar is None else mem_ratio >= mem_bar
                ok_diff = diff <= 1e-5
                verdict = "PASS" if (ok_speed and ok_mem and ok_diff) else "FAIL"
                failures += verdict == "FAIL"
                rows.append((case, label, ref, pkg, med, mem, ratio, mem_ratio, diff,
                             wdiff if ref == "ref_full" else None, speed_bar, mem_bar,
                             ok_speed, ok_mem, ok_diff, verdict))

    print(f"\nshape (3, {size}, {size}, {size}), scale_factor {SCALE:g}, "
          f"median of {args.runs} runs, 2 methods alternating each run\n")
    print("| case | method | median s | ratio | peak extra MB | memory ratio |")
    print("|---|---|---:|---:|---:|---:|")
    for (case, label, ref, pkg, med, mem, ratio, mem_ratio, *_rest) in rows:
        print(f"| {case} | {label}: reference | {med[ref]:.3f} | | {mem[ref]:.1f} | |")
        print(f"| {case} | {label}: package | {med[pkg]:.3f} | {ratio:.1f}x "
              f"| {mem[pkg]:.1f} | {mem_ratio:.1f}x |")
    print("\nBars: create_target >= 25x faster and peak extra memory <= 1/20 of the "
          "reference (memory ratio >= 20x); target+weights >= 15x faster; "
          "max |target difference| <= 1e-5.\n")
    print("| case | method | speed | memory | max abs target diff | weights differing | result |")
    print("|---|---|---|---|---:|---:|---|")
    for (case, label, ref, pkg, med, mem, ratio, mem_ratio, diff, wd, sb, mb,
         ok_s, ok_m, ok_d, verdict) in rows:
        speed = f"{ratio:.1f}x vs >= {sb:g}x {'ok' if ok_s else 'MISS'}"
        memory = "(no bar)" if mb is None else f"{mem_ratio:.1f}x vs >= {mb:g}x {'ok' if ok_m else 'MISS'}"
        wds = "" if wd is None else f"{wd:.2%}"
        print(f"| {case} | {label} | {speed} | {memory} | {diff:.2e} | {wds} | {verdict} |")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
