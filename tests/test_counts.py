"""BalanceHotDistance's moving class counts across processes.

The counts must be shared by every gp.PreCache worker under each of
multiprocessing's start methods (fork, spawn, forkserver), and a worker
killed at any moment (PreCache SIGTERMs its workers) must neither lose a
counted batch, nor leave half a batch visible, nor block anybody. The
oracle is the number of batches made times the voxels of a batch, and,
for a kill inside the lock, the counts from before the killed write.

The pipelines run in a fresh interpreter (``tests/precache_counts.py``) with
the start method set there, under a time limit, so that a hang fails the
test instead of hanging the run, and the test session's start method is not
changed.
"""

import json
import multiprocessing
import os
import pickle
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import dask
import gunpowder as gp
import numpy as np
import pytest
from funlib.geometry import Roi
from funlib.persistence import Array

import precache_counts
from gp_hotdistance import AddHotDistance, BalanceHotDistance, HotDistancePredictor

dask.config.set(scheduler="synchronous")

ROOT = Path(__file__).resolve().parents[1]
METHODS = multiprocessing.get_all_start_methods()
HANG = 600  # seconds: far more than a run takes on a loaded 2-core machine


def start_methods():
    return [
        pytest.param(m, marks=pytest.mark.skipif(m not in METHODS, reason=f"no {m} here"))
        for m in ("fork", "spawn", "forkserver")
    ]


def run_script(method, batches, teardowns):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "tests")] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    try:
        done = subprocess.run(
            [
                sys.executable,
                str(ROOT / "tests" / "precache_counts.py"),
                method,
                "--batches",
                str(batches),
                "--teardowns",
                str(teardowns),
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=HANG,
            env=env,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"the {method} pipeline hung for {HANG} s: {hung.stderr!r}"[-3000:])
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("method", start_methods())
def test_precache_workers_share_the_counts_and_teardowns_leave_them_whole(method):
    # fork is cheap; a spawned worker imports everything anew
    teardowns = 10 if method == "fork" else 2
    result = run_script(method, batches=3, teardowns=teardowns)
    assert result["method"] == method

    # every batch the workers made is counted in the main process, once:
    # 3 requested, 2 in the cache, and one more held by each of the 2 workers
    counts = result["counts"]
    assert counts["batches_made"] == 3 + 2 + 2
    voxels = counts["batches_made"] * counts["voxels_per_batch"]
    assert counts["totals_while_built"] == [voxels] * 4
    assert counts["totals_after_teardown"] == [voxels] * 4

    # after each teardown the state is readable (no hang) and whole: all
    # channels counted the same whole batches, and each pipeline made one
    loop = result["teardowns"]
    assert len(loop["totals"]) == teardowns
    previous = 0
    for totals in loop["totals"]:
        assert len(set(totals)) == 1, totals
        assert totals[0] % loop["voxels_per_batch"] == 0, totals
        assert totals[0] >= previous + loop["voxels_per_batch"], totals
        previous = totals[0]


def wait_for(function, seconds=60):
    """``function()``'s result, or a failure if it takes ``seconds``."""
    result = []
    thread = threading.Thread(target=lambda: result.append(function()), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{function} did not return within {seconds} s: blocked")
    return result[0]


@pytest.mark.parametrize("method", start_methods())
def test_a_process_killed_inside_the_lock_blocks_nobody_and_half_writes_nothing(method):
    context = multiprocessing.get_context(method)
    counts = BalanceHotDistance(
        HotDistancePredictor(["mito", "er"], 8.0, mask_distances=False),
        gp.ArrayKey("GT"),
        gp.ArrayKey("TARGET"),
        gp.ArrayKey("WEIGHTS"),
    )._counts
    before = np.arange(8, dtype=np.int64).reshape(4, 2)
    counts.assign(before)

    ready = context.Event()
    holder = context.Process(target=precache_counts.hold_and_die, args=(counts, ready))
    holder.start()
    try:
        assert ready.wait(HANG), "the child never took the lock"
    finally:
        precache_counts.kill(holder)
    # readable at once, and the killed half-write is not visible
    np.testing.assert_array_equal(wait_for(counts.snapshot), before)

    # other processes count on, concurrently, and lose nothing
    adders = [context.Process(target=precache_counts.add_ones, args=(counts, 50)) for _ in range(2)]
    for adder in adders:
        adder.start()
    for adder in adders:
        adder.join(HANG)
        assert adder.exitcode == 0
    np.testing.assert_array_equal(wait_for(counts.snapshot), before + 100)


def test_a_node_unpickled_outside_multiprocessing_warns_once_and_keeps_its_counts():
    predictor = HotDistancePredictor(["mito"], 8.0, mask_distances=False)
    gt_key, target_key, weights_key = (
        gp.ArrayKey("GT"),
        gp.ArrayKey("TARGET"),
        gp.ArrayKey("WEIGHTS"),
    )
    node = BalanceHotDistance(predictor, gt_key, target_key, weights_key)
    node.load_state_dict({"moving_class_counts": [[3, 4], [5, 6]]})
    copy = pickle.loads(pickle.dumps(node))  # e.g. saved to disk and loaded elsewhere

    gt = np.zeros((12, 12), np.uint8)
    gt[:, 6:] = 1
    source = gp.ArraySource(
        gt_key,
        Array(
            gt, offset=(0, 0), voxel_size=(4, 4), axis_names=["y", "x"], types=["space", "space"]
        ),
        interpolatable=False,
    )
    request = gp.BatchRequest()
    request[weights_key] = gp.ArraySpec(roi=Roi((0, 0), (48, 48)))

    def run(balance):
        pipeline = (
            source + gp.Pad(gt_key, None) + AddHotDistance(predictor, gt_key, target_key) + balance
        )
        with gp.build(pipeline):
            pipeline.request_batch(request)

    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        run(copy)
        run(copy)  # built again: no second warning
    unshared = [w for w in warned if "no longer shared" in str(w.message)]
    assert len(unshared) == 1
    assert unshared[0].category is RuntimeWarning
    # the copy counts on from the pickled counts (two batches of 12 x 12
    # voxels, half of them foreground); the original does not see it
    seen = 2 * 72
    assert copy.state_dict()["moving_class_counts"] == [[3 + seen, 4 + seen], [5 + seen, 6 + seen]]
    assert node.state_dict()["moving_class_counts"] == [[3, 4], [5, 6]]

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        run(node)  # the original is shared: no warning
