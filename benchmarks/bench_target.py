"""Benchmark: the hot-distance target against seung-lab edt and the doubled grid.

Usage:
    python benchmarks/bench_target.py [--runs N] [--quick] [--no-reference] [--avx2]

Methods, each timed in this process, the methods alternating within each run
(medians over ``--runs``):

- ``pkg 1t`` / ``pkg 2t``: ``hot_distance_target`` with 1 / 2 threads
  (its ``threads`` argument);
- ``edt 1t`` / ``edt 2t``: seung-lab ``edt.sdf(labels, anisotropy=voxel_size,
  parallel=n)`` per channel, then ``np.tanh(d / scale)`` and the one-hot copy:
  voxel-centre distances, not face distances, but the same kind of work (the
  ``bench`` extra installs edt);
- ``floor``: the physical floor, one streaming numpy pass that reads the
  labels and writes a fresh float32 target of the same shape
  (``np.multiply`` per channel);
- ``ref``: the reference implementation's doubled grid (scipy's EDT on a
  grid doubled along every axis, one thread; ``--reference-runs`` runs;
  ``--no-reference`` skips it).

Label sets: (3, 128, 128, 128) dense (smoothed noise, 30% foreground),
sparse (random balls, 2%) and blobs (smoother noise, 15%), each at 8x8x8 and
40x4x4 nm; falling blobs (three channels of 8.7%, 3.4% and 1.2% foreground)
at 8x8x8; and (40, 96, 96, 96) sparse balls at 8x8x8 (40 classes). Bars:
edt 1t / pkg 1t >= 1.5, edt 2t / pkg 2t >= 2. Exactness: the package's
distances equal the doubled grid's bit for bit (checked on one channel per
set; the targets then differ by at most one float32 step of tanh, where numpy's
float32 tanh is not correctly rounded). Memory: the peak extra memory of a
fresh subprocess running the package once, minus the target it returns.

Then the predictor path on the falling set (:func:`predictor_path`):
``HotDistancePredictor.create_target`` beside ``hot_distance_target`` and
edt at 1 and 2 threads, ``create_weight`` and the nodes beside the numpy
functions. ``--quick`` runs small sizes (a smoke run).
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
sys.path.insert(0, os.path.join(HERE, ".."))  # the package of this checkout

import gp_hotdistance as hd  # noqa: E402
from machine import describe, parse_args  # noqa: E402  (benchmarks/machine.py)
from oracles import doubled_grid_face_distance, reference_hot_distance_target  # noqa: E402

SCALE = 50.0
VOXEL_SIZES = {"8x8x8": (8.0, 8.0, 8.0), "40x4x4": (40.0, 4.0, 4.0)}
METHODS = ("pkg 1t", "edt 1t", "pkg 2t", "edt 2t", "floor", "ref")
BARS = {1: 1.5, 2: 2.0}
# the falling set's foreground shares per channel
FALLING_SHARES = (0.087, 0.034, 0.012)


# ---------------------------------------------------------------- inputs
def smoothed_noise_labels(shape, rng, sigma, foreground):
    """Per channel: white noise smoothed over ``sigma`` voxels, its top
    ``foreground`` share set to 1."""
    gt = np.empty(shape, dtype=np.uint8)
    for c in range(shape[0]):
        smooth = ndimage.gaussian_filter(rng.standard_normal(shape[1:]).astype(np.float32), sigma)
        gt[c] = smooth > np.percentile(smooth, 100 * (1 - foreground))
    return gt


def make_dense(shape, rng):
    """Dense, finely structured labels: 30% foreground, smoothed over 2 voxels."""
    return smoothed_noise_labels(shape, rng, sigma=2.0, foreground=0.30)


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


def make_blobs(shape, rng):
    """Blob-like objects: noise smoothed over 6 voxels, top 15% per channel."""
    return smoothed_noise_labels(shape, rng, sigma=6.0, foreground=0.15)


def make_falling(shape, rng):
    """Blobs of falling density: noise smoothed over 3 voxels, the top 8.7%,
    3.4% and 1.2% of channels 0, 1 and 2 (repeated beyond 3 channels)."""
    gt = np.empty(shape, dtype=np.uint8)
    for c in range(shape[0]):
        share = FALLING_SHARES[c % len(FALLING_SHARES)]
        gt[c] = smoothed_noise_labels((1,) + shape[1:], rng, 3.0, share)[0]
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


def make_inputs(kind, size, seed=0, classes=3):
    rng = np.random.default_rng(seed)
    shape = (classes, size, size, size)
    make = {
        "dense": make_dense,
        "sparse": make_sparse,
        "blobs": make_blobs,
        "falling": make_falling,
    }[kind]
    gt = make(shape, rng)
    return gt, make_mask(shape, rng)


# ---------------------------------------------------------------- methods
def edt_target(gt, voxel_size, threads):
    """What a user of seung-lab edt would write: signed voxel-centre distance
    per channel, tanh, and the one-hot channels."""
    import edt

    classes = gt.shape[0]
    target = np.empty((2 * classes,) + gt.shape[1:], dtype=np.float32)
    for c in range(classes):
        distance = edt.sdf(gt[c], anisotropy=voxel_size, parallel=threads)
        target[classes + c] = np.tanh(distance / SCALE)
        target[c] = gt[c]
    return target


def floor_target(gt):
    """The physical floor: one streaming pass that reads the labels and
    writes a fresh float32 target of the package's shape (each channel
    twice, as the one-hot and the distance slots)."""
    classes = gt.shape[0]
    target = np.empty((2 * classes,) + gt.shape[1:], dtype=np.float32)
    for c in range(classes):
        np.multiply(gt[c], np.float32(1.0), out=target[c])
        np.multiply(gt[c], np.float32(1.0), out=target[classes + c])
    return target


def run_method(method, gt, voxel_size):
    if method == "floor":
        return floor_target(gt)
    if method == "ref":
        return reference_hot_distance_target(gt, voxel_size, SCALE)
    name, threads = method.split()
    threads = int(threads[:-1])
    if name == "edt":
        return edt_target(gt, voxel_size, threads)
    return hd.hot_distance_target(gt, voxel_size, SCALE, threads=threads)


def warm_up():
    g = np.zeros((2, 8, 8, 8), dtype=np.uint8)
    g[0, 2:5, 2:5, 2:5] = 1
    g[1, :4] = 1
    hd.hot_distance_target(g, (1.0, 1.0, 1.0), SCALE)
    edt_target(g, (1.0, 1.0, 1.0), 1)


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


def measure_memory_child(inputs_path, voxel_key):
    warm_up()
    gt = np.load(inputs_path)["gt"]
    baseline = maxrss_mb()
    target = hd.hot_distance_target(gt, VOXEL_SIZES[voxel_key], SCALE, threads=2)
    peak = maxrss_mb() - baseline
    print(f"{peak - target.nbytes / 2**20:.3f}")


def working_memory(gt, voxel_key, tmpdir):
    """MB the package needs beyond the target it returns, in a fresh subprocess."""
    path = os.path.join(tmpdir, "gt.npz")
    np.savez(path, gt=gt)
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--measure-memory", path, voxel_key],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- main
def time_case(gt, voxel_size, methods, runs, reference_runs):
    """Median seconds of each method, user and system CPU seconds per call and
    minor page faults per call of the 1-thread runs."""
    times = {m: [] for m in methods}
    usage = {m: np.zeros(3) for m in methods}
    for r in range(runs):
        order = methods if r % 2 == 0 else methods[::-1]
        for m in order:
            if m == "ref" and r >= reference_runs:
                continue
            before = resource.getrusage(resource.RUSAGE_SELF)
            start = time.perf_counter()
            run_method(m, gt, voxel_size)
            times[m].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_SELF)
            usage[m] += (
                after.ru_utime - before.ru_utime,
                after.ru_stime - before.ru_stime,
                after.ru_minflt - before.ru_minflt,
            )
    return (
        {m: float(np.median(t)) for m, t in times.items()},
        {m: usage[m] / len(times[m]) for m in methods},
    )


def exactness(gt, voxel_size):
    """Whether channel 0's signed distance is the doubled grid's, bit for bit."""
    expected = doubled_grid_face_distance(gt[0], voxel_size)
    expected = np.where(gt[0] != 0, expected, -expected)
    return bool(np.array_equal(hd.signed_face_distance(gt[0], voxel_size), expected))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reference-runs", type=int, default=3)
    parser.add_argument("--no-reference", action="store_true", help="skip the doubled grid")
    parser.add_argument(
        "--quick", action="store_true", help="small smoke sizes: (3, 32^3) sets, (40, 24^3) classes"
    )
    parser.add_argument("--measure-memory", nargs=2, help=argparse.SUPPRESS)
    args = parse_args(parser)
    if args.measure_memory:
        measure_memory_child(*args.measure_memory)
        return 0

    size, many_size = (32, 24) if args.quick else (128, 96)
    warm_up()
    cases = [(kind, vkey, 3, size) for kind in ("dense", "sparse", "blobs") for vkey in VOXEL_SIZES]
    cases.append(("falling", "8x8x8", 3, size))
    cases.append(("sparse", "8x8x8", 40, many_size))
    tmpdir = tempfile.mkdtemp(prefix="bench_target_")
    rows = []
    for kind, vkey, classes, side in cases:
        gt, _ = make_inputs(kind, side, classes=classes)
        voxel_size = VOXEL_SIZES[vkey]
        methods = METHODS
        if args.no_reference or classes > 3:
            methods = tuple(m for m in METHODS if m != "ref")
        if kind == "falling":
            shares = "/".join(f"{m:.1%}" for m in gt.mean(axis=(1, 2, 3)))
            case = f"falling blobs (fg {shares}) {vkey}, {classes} x {side}^3"
        else:
            case = f"{kind} (fg {gt.mean():.1%}) {vkey}, {classes} x {side}^3"
        print(f"# timing {case} ...", file=sys.stderr, flush=True)
        medians, usage = time_case(gt, voxel_size, methods, args.runs, args.reference_runs)
        exact = exactness(gt, voxel_size)
        memory = working_memory(gt, vkey, tmpdir)
        rows.append((case, medians, usage, exact, memory))

    print(f"\n{describe()}")
    print(
        f"scale_factor {SCALE:g}; medians of {args.runs} runs (the doubled grid: "
        f"{args.reference_runs}), methods alternating each run\n"
    )
    print(
        "| labels | pkg 1t s | edt 1t s | pkg 2t s | edt 2t s | ref s | edt/pkg 1t "
        "| edt/pkg 2t | ref/pkg 2t | floor s | pkg 2t/floor | exact | pkg working MB | bars |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|")
    failures = 0
    for case, medians, _usage, exact, memory in rows:
        ratios = {t: medians[f"edt {t}t"] / medians[f"pkg {t}t"] for t in (1, 2)}
        verdicts = [
            f"{t}t >= {bar:g}x " + ("ok" if ratios[t] >= bar else "MISS") for t, bar in BARS.items()
        ]
        verdicts.append("exact " + ("ok" if exact else "MISS"))
        failures += any("MISS" in v for v in verdicts)
        ref = medians.get("ref")
        ref_s = "-" if ref is None else f"{ref:.2f}"
        ref_ratio = "-" if ref is None else f"{ref / medians['pkg 2t']:.1f}x"
        print(
            f"| {case} | {medians['pkg 1t']:.3f} | {medians['edt 1t']:.3f} "
            f"| {medians['pkg 2t']:.3f} | {medians['edt 2t']:.3f} "
            f"| {ref_s} | {ratios[1]:.2f}x | {ratios[2]:.2f}x | {ref_ratio} "
            f"| {medians['floor']:.4f} | {medians['pkg 2t'] / medians['floor']:.1f}x "
            f"| {'bit-identical' if exact else 'DIFFERENT'} | {memory:.1f} | {', '.join(verdicts)} |"
        )
    print("\nCPU per call at 1 thread (user / system ms, minor page faults):\n")
    for case, _medians, usage, _exact, _memory in rows:
        parts = []
        for m in ("pkg 1t", "edt 1t"):
            user, system, faults = usage[m]
            parts.append(f"{m} {user * 1e3:.0f} / {system * 1e3:.0f} ms, {faults:.0f} faults")
        print(f"- {case}: " + "; ".join(parts))
    # the nodes' pipeline needs the target's context (25 voxels here) on
    # each side of what it is asked for
    failures += predictor_path(args.runs, 64 if args.quick else 128)
    return 1 if failures else 0


def predictor_path(runs, side=128):
    """The call a dacapo user makes beside the numpy function and edt, on
    the falling set (three blob channels of 8.7%, 3.4% and 1.2% foreground)
    at 8 nm: ``HotDistancePredictor.create_target`` on a funlib ``Array``
    (dask-backed in funlib.persistence 0.6 and 0.7) against
    ``hot_distance_target`` and against edt (as in the main table) at 1 and
    2 threads; ``create_weight`` against ``hot_distance_weights`` and the
    nodes against the numpy functions at 1 thread. Medians of ``runs``, the
    calls of a row alternating. Prints one row per call with the
    predictor's overhead in % and, for the target, edt over the predictor
    and whether that reaches the bar. Returns the number of misses."""
    import dask.array as da
    from funlib.persistence import Array

    gt, _ = make_inputs("falling", side)
    mask = np.ones(gt.shape[1:], np.uint8)
    voxel_size = (8.0, 8.0, 8.0)
    predictor = hd.HotDistancePredictor(["a", "b", "c"], SCALE, mask_distances=True)

    def funlib_array(data):
        # named here, so that building it does not hash the data (not timed)
        return Array(
            da.from_array(data, chunks=data.shape, name=False),
            offset=(0, 0, 0),
            voxel_size=(8, 8, 8),
            axis_names=["c^"] * (data.ndim - 3) + ["z", "y", "x"],
            types=["channel"] * (data.ndim - 3) + ["space"] * 3,
        )

    gt_array, mask_array = funlib_array(gt), funlib_array(mask)
    target = hd.hot_distance_target(gt, voxel_size, SCALE)
    target_array = funlib_array(target)
    rows = {}
    for threads in (1, 2):
        rows[("target", threads)] = (
            lambda t=threads: hd.hot_distance_target(gt, voxel_size, SCALE, threads=t),
            lambda t=threads: predictor.create_target(gt_array, threads=t),
            lambda t=threads: edt_target(gt, voxel_size, t),
        )
    rows[("weights", 1)] = (
        lambda: hd.hot_distance_weights(gt, target, mask, voxel_size, SCALE, mask_distances=True),
        lambda: predictor.create_weight(gt_array, target_array, mask_array),
    )
    rows[("nodes", 1)] = nodes_pair(gt, voxel_size)
    print(
        f"\npredictor path: 3 falling blob channels {side}^3 at 8 nm (fg "
        f"{', '.join(f'{m:.1%}' for m in gt.mean(axis=(1, 2, 3)))}), scale_factor "
        f"{SCALE:g}, medians of {runs}\n"
    )
    print("| call | threads | numpy s | predictor s | overhead | edt s | edt/predictor | bar |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    misses = 0
    for (name, threads), calls in rows.items():
        for call in calls:
            call()  # compiled and warm
        times = [[] for _ in calls]
        for r in range(runs):
            order = list(enumerate(calls))
            for which, call in order if r % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                call()
                times[which].append(time.perf_counter() - start)
        medians = [float(np.median(t)) for t in times]
        numpy_s, predictor_s = medians[:2]
        edt_s = ratio = bar = "-"
        if len(medians) > 2:
            edt_s = f"{medians[2]:.3f}"
            ratio = medians[2] / predictor_s
            ok = ratio >= BARS[threads]
            misses += not ok
            bar = f"{threads}t >= {BARS[threads]:g}x " + ("ok" if ok else "MISS")
            ratio = f"{ratio:.2f}x"
        print(
            f"| {name} | {threads} | {numpy_s:.3f} | {predictor_s:.3f} "
            f"| {100 * (predictor_s / numpy_s - 1):+.1f}% | {edt_s} | {ratio} | {bar} |"
        )
    return misses


def nodes_pair(gt, voxel_size):
    """``AddHotDistance`` + ``BalanceHotDistance`` (no mask, no
    ``mask_distances``) in a gunpowder pipeline asked for the largest ROI the
    gt allows, against the numpy functions on the same data: the target of
    the whole gt, the weights of its crop."""
    import gunpowder as gp
    from funlib.persistence import Array

    predictor = hd.HotDistancePredictor(["a", "b", "c"], SCALE, mask_distances=False)
    keys = [gp.ArrayKey(name) for name in ("BENCH_GT", "BENCH_TARGET", "BENCH_WEIGHTS")]
    gt_key, target_key, weights_key = keys
    source = Array(
        gt,
        offset=(0, 0, 0),
        voxel_size=(8, 8, 8),
        axis_names=["c^", "z", "y", "x"],
        types=["channel"] + ["space"] * 3,
    )
    pipeline = (
        gp.ArraySource(gt_key, source, interpolatable=False)
        + hd.AddHotDistance(predictor, gt_key, target_key)
        + hd.BalanceHotDistance(predictor, gt_key, target_key, weights_key)
    )
    padding = predictor.padding(gp.Coordinate(8, 8, 8))
    roi = source.roi.grow(-padding, -padding)
    request = gp.BatchRequest()
    request[target_key] = gp.ArraySpec(roi=roi)
    request[weights_key] = gp.ArraySpec(roi=roi)
    inner = (slice(None),) + tuple(slice(p // 8, s - p // 8) for p, s in zip(padding, gt.shape[1:]))
    pipeline.setup()  # torn down at exit, as gp.build would

    def numpy_call():
        target = hd.hot_distance_target(gt, voxel_size, SCALE)[inner]
        return hd.hot_distance_weights(gt[inner], target, None, voxel_size, SCALE)

    return numpy_call, lambda: pipeline.request_batch(request)


if __name__ == "__main__":
    sys.exit(main())
