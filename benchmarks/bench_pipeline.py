"""Benchmark: the nodes in a gunpowder pipeline, and numba's compile time.

Usage:
    python benchmarks/bench_pipeline.py [--batches N] [--quick] [--avx2]

1. The whole batch step against the target alone, without PreCache, 1 and 2
   threads (the predictor's ``threads``): seconds per batch of ``RandomLocation -> AddHotDistance``
   and of ``RandomLocation -> AddHotDistance -> BalanceHotDistance(
   mask_distances)`` with a mask that has an unknown region, the two
   pipelines alternating batch by batch on the same locations (medians).
   Bar: the whole step at most 1.4x the target alone.
2. Batches per second of ``RandomLocation -> AddHotDistance ->
   BalanceHotDistance(mask_distances) -> PreCache(num_workers=W)`` for W = 1
   and 2, on a (3, 160, 160, 160) dense gt with a mask, 8 nm voxels, scale
   factor 50, 64^3 requests. Each W gets a fresh pipeline; the first batches
   (the cache filling up) are not timed.
3. The first call of ``hot_distance_target`` in a fresh process: with an empty
   numba cache (compiling), and again with the cache that run left.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import dask
import gunpowder as gp
import numpy as np
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array
from scipy import ndimage

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gp_hotdistance import (  # noqa: E402
    AddHotDistance,
    BalanceHotDistance,
    HotDistancePredictor,
)
from machine import describe, parse_args  # noqa: E402  (benchmarks/machine.py)

VOXEL_SIZE = Coordinate(8, 8, 8)
SCALE = 50.0
FIRST_CALL = """
import time
start = time.perf_counter()
import numpy as np
import gp_hotdistance as hd
gt = np.zeros((1, 8, 8, 8), np.uint8)
gt[0, 2:5] = 1
hd.hot_distance_target(gt, (1.0, 1.0, 1.0), 2.0)
hd.hot_distance_weights(gt, hd.hot_distance_target(gt, (1.0, 1.0, 1.0), 2.0),
                          np.ones((8, 8, 8), np.uint8), (1.0, 1.0, 1.0), 2.0,
                          mask_distances=True)
print(time.perf_counter() - start)
"""


def volume(size, seed=0):
    rng = np.random.default_rng(seed)
    shape = (size,) * 3
    gt = np.stack(
        [
            ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 2.0) > 0.3
            for _ in range(3)
        ]
    ).astype(np.uint8)
    mask = np.ones(shape, np.uint8)
    mask[size // 4 : size // 2, size // 4 : size // 2, : size // 3] = 0
    return gt, mask


def as_array(data):
    channels = data.ndim - 3
    return Array(
        data,
        offset=(0, 0, 0),
        voxel_size=VOXEL_SIZE,
        axis_names=["c^"] * channels + ["z", "y", "x"],
        types=["channel"] * channels + ["space"] * 3,
    )


def step_pipeline(gt, mask, keys, predictor, with_weights):
    gt_key, mask_key, target_key, weights_key = keys
    pipeline = (
        (
            gp.ArraySource(gt_key, as_array(gt), interpolatable=False),
            gp.ArraySource(mask_key, as_array(mask), interpolatable=False),
        )
        + gp.MergeProvider()
        + gp.RandomLocation()
        + AddHotDistance(predictor, gt_key, target_key, mask_key)
    )
    if with_weights:
        pipeline += BalanceHotDistance(predictor, gt_key, target_key, weights_key, mask_key)
    return pipeline


def batch_step_seconds(gt, mask, batches, size, threads):
    """Median seconds per batch of the target alone and of target + weights."""
    keys = (gp.ArrayKey("GT"), gp.ArrayKey("MASK"), gp.ArrayKey("TARGET"), gp.ArrayKey("WEIGHTS"))
    predictor = HotDistancePredictor(["a", "b", "c"], SCALE, mask_distances=True, threads=threads)
    roi = Roi((0, 0, 0), Coordinate(size, size, size) * VOXEL_SIZE)
    pipelines = {}
    requests = {}
    for with_weights in (False, True):
        pipelines[with_weights] = step_pipeline(gt, mask, keys, predictor, with_weights)
        request = gp.BatchRequest()
        request[keys[2]] = gp.ArraySpec(roi=roi)
        if with_weights:
            request[keys[3]] = gp.ArraySpec(roi=roi)
        requests[with_weights] = request
    times = {False: [], True: []}
    with gp.build(pipelines[False]), gp.build(pipelines[True]):
        for b in range(batches + 1):
            for with_weights in (False, True) if b % 2 else (True, False):
                np.random.seed(b)  # the same location for both
                start = time.perf_counter()
                pipelines[with_weights].request_batch(requests[with_weights])
                if b > 0:  # the first batch warms up
                    times[with_weights].append(time.perf_counter() - start)
    return float(np.median(times[False])), float(np.median(times[True]))


def batches_per_second(gt, mask, workers, batches, size):
    keys = (gp.ArrayKey("GT"), gp.ArrayKey("MASK"), gp.ArrayKey("TARGET"), gp.ArrayKey("WEIGHTS"))
    target_key, weights_key = keys[2:]
    predictor = HotDistancePredictor(["a", "b", "c"], SCALE, mask_distances=True)
    pipeline = step_pipeline(gt, mask, keys, predictor, with_weights=True)
    pipeline += gp.PreCache(cache_size=2 * workers, num_workers=workers)
    request = gp.BatchRequest()
    roi = Roi((0, 0, 0), Coordinate(size, size, size) * VOXEL_SIZE)
    request[target_key] = gp.ArraySpec(roi=roi)
    request[weights_key] = gp.ArraySpec(roi=roi)
    with gp.build(pipeline):
        for _ in range(2 * workers):  # the cache filling up
            pipeline.request_batch(request)
        start = time.perf_counter()
        for _ in range(batches):
            pipeline.request_batch(request)
        return batches / (time.perf_counter() - start)


def first_call_seconds(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run(
        [sys.executable, "-c", FIRST_CALL], env=env, check=True, capture_output=True, text=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="small volume and requests")
    args = parse_args(parser)
    # forked PreCache workers hang on dask's threaded scheduler
    dask.config.set(scheduler="synchronous")

    size, request_size = (96, 32) if args.quick else (160, 64)
    gt, mask = volume(size)
    steps = {}
    for threads in (1, 2):
        print(f"# batch step, {threads} thread(s) ...", file=sys.stderr, flush=True)
        steps[threads] = batch_step_seconds(gt, mask, args.batches, request_size, threads)
    rates = {}
    for workers in (1, 2):
        print(f"# PreCache(num_workers={workers}) ...", file=sys.stderr, flush=True)
        rates[workers] = batches_per_second(gt, mask, workers, args.batches, request_size)
    with tempfile.TemporaryDirectory(prefix="numba_cache_") as cache_dir:
        cold = first_call_seconds(cache_dir)
        warm = first_call_seconds(cache_dir)

    print(f"\n{describe()}")
    print(
        f"(3, {size}, {size}, {size}) gt, {request_size}^3 requests of target and "
        f"weights (mask_distances), {args.batches} timed batches\n"
    )
    print("| threads | target alone s | target + weights s | ratio (bar <= 1.4) |")
    print("|---:|---:|---:|---|")
    step_ok = True
    for threads, (alone, whole) in steps.items():
        ratio = whole / alone
        step_ok &= ratio <= 1.4
        print(
            f"| {threads} | {alone:.4f} | {whole:.4f} | {ratio:.2f}x "
            f"{'ok' if ratio <= 1.4 else 'MISS'} |"
        )
    print()
    print("| PreCache workers | batches/s |")
    print("|---:|---:|")
    for workers, rate in rates.items():
        print(f"| {workers} | {rate:.2f} |")
    ratio = rates[2] / rates[1]
    print(f"\n2 workers / 1 worker: {ratio:.2f}x (bar: >= 1) {'ok' if ratio >= 1 else 'MISS'}")
    print(
        f"first call in a fresh process (import included): {cold:.1f} s with an empty "
        f"numba cache, {warm:.1f} s with the cache it left"
    )
    return 0 if ratio >= 1 and step_ok else 1


if __name__ == "__main__":
    sys.exit(main())
