"""Helpers of ``tests/test_counts.py`` that run in other processes.

Run as a script, it builds ``ArraySource -> Pad -> RandomLocation ->
AddHotDistance -> BalanceHotDistance -> PreCache`` under the multiprocessing
start method given on the command line, and prints its figures as one line
of JSON::

    python tests/precache_counts.py spawn --batches 4 --teardowns 5

It is a separate interpreter so that the test session's start method is not
changed, and so that the test can stop it if it hangs.
"""

import argparse
import json
import multiprocessing
import os
import signal
import sys
import time

import dask
import gunpowder as gp
import numpy as np
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from gp_hotdistance import AddHotDistance, BalanceHotDistance, HotDistancePredictor

# forked PreCache workers hang on dask's threaded scheduler once the main
# process has used it
dask.config.set(scheduler="synchronous")

VOXEL_SIZE = Coordinate(8, 8, 8)
CLASSES = ["mito", "er"]


def pipeline_of(balance, predictor, keys, num_workers, cache_size):
    """The pipeline of the issue, with ``balance`` as its BalanceHotDistance."""
    gt_key, target_key, _ = keys
    rng = np.random.default_rng(0)
    gt = (rng.random((2, 16, 16, 16)) < 0.3).astype(np.uint8)
    source = gp.ArraySource(
        gt_key,
        Array(
            gt,
            offset=(0, 0, 0),
            voxel_size=VOXEL_SIZE,
            axis_names=["c^", "z", "y", "x"],
            types=["channel", "space", "space", "space"],
        ),
        interpolatable=False,
    )
    return (
        source
        + gp.Pad(gt_key, predictor.padding(VOXEL_SIZE))
        + gp.RandomLocation()
        + AddHotDistance(predictor, gt_key, target_key)
        + balance
        + gp.PreCache(cache_size=cache_size, num_workers=num_workers)
    )


def setup(voxels):
    predictor = HotDistancePredictor(CLASSES, 8.0, mask_distances=False)
    keys = gp.ArrayKey("GT"), gp.ArrayKey("TARGET"), gp.ArrayKey("WEIGHTS")
    balance = BalanceHotDistance(predictor, *keys)
    request = gp.BatchRequest()
    request[keys[2]] = gp.ArraySpec(roi=Roi((0, 0, 0), Coordinate(voxels) * VOXEL_SIZE))
    return predictor, keys, balance, request


def totals(counts):
    """Voxels counted per target channel (background plus foreground)."""
    return np.asarray(counts).sum(axis=1).tolist()


def run_counts(batches, num_workers=2, cache_size=2, wait=120.0):
    """Request ``batches`` batches of 8x8x8; once the workers have filled the
    cache and each holds one more batch, they make no more: the counts must
    then be those of ``batches + cache_size + num_workers`` batches."""
    predictor, keys, balance, request = setup((8, 8, 8))
    pipeline = pipeline_of(balance, predictor, keys, num_workers, cache_size)
    made = batches + cache_size + num_workers
    with gp.build(pipeline):
        for _ in range(batches):
            batch = pipeline.request_batch(request)
            assert batch[keys[2]].data.shape == (4, 8, 8, 8)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if min(totals(balance.moving_class_counts)) >= made * 8**3:
                break
            time.sleep(0.2)
        time.sleep(2.0)  # the workers are blocked now: nothing more comes
        during = totals(balance.moving_class_counts)
    after = totals(balance.state_dict()["moving_class_counts"])
    return {
        "batches_made": made,
        "voxels_per_batch": 8**3,
        "totals_while_built": during,
        "totals_after_teardown": after,
    }


def run_teardowns(teardowns, num_workers=2):
    """One BalanceHotDistance reused across PreCache pipelines of 2x2x2
    batches, built and torn down in a loop; the state read after each."""
    predictor, keys, balance, request = setup((2, 2, 2))
    states = []
    for _ in range(teardowns):
        pipeline = pipeline_of(balance, predictor, keys, num_workers, cache_size=1)
        with gp.build(pipeline):
            pipeline.request_batch(request)
        states.append(totals(balance.state_dict()["moving_class_counts"]))
    return {"teardowns": teardowns, "voxels_per_batch": 2**3, "totals": states}


# ---------------------------------------------------- children of test_counts.py


def hold_and_die(counts, ready):
    """Take the counts' lock, half-write the spare buffer, and wait there to
    be killed."""
    with counts._locked():
        spare = counts._buffers[1 - counts._current[0]]
        spare.reshape(-1)[: spare.size // 2] = 10**9
        ready.set()
        while True:
            time.sleep(1)


def add_ones(counts, times):
    """Add ones to every count, ``times`` times."""
    for _ in range(times):
        counts.add(np.ones(counts.shape, np.int64))


def kill(process):
    os.kill(process.pid, signal.SIGKILL)
    process.join()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("method", choices=["fork", "spawn", "forkserver"])
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--teardowns", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    # importing gunpowder already fixed the default context: override it
    multiprocessing.set_start_method(args.method, force=True)
    result = {"method": multiprocessing.get_start_method()}
    if args.batches:
        result["counts"] = run_counts(args.batches, num_workers=args.workers)
    if args.teardowns:
        result["teardowns"] = run_teardowns(args.teardowns, num_workers=args.workers)
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
