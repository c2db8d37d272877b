"""Benchmark: a label image with 40 class groups against the 40 binary
channels it stands for.

Usage:
    python benchmarks/bench_groups.py [--runs N] [--quick] [--avx2]

The label image holds 40 classes of random balls (about 2% of the volume
each, overlapping), each class two part ids (a core and a shell, as a
mitochondrion's lumen and membrane), in ``uint64``. Timed, alternating within
each run, 1 thread, medians over ``--runs``:

- ``channels``: ``HotDistancePredictor(classes, ...).compute_target`` of the
  40 binary channels (``uint8``, made with ``np.isin`` beforehand, not timed);
- ``groups``: ``HotDistancePredictor(classes, ..., groups=...)
  .compute_target`` of the label image;

and likewise ``process_weight`` (with ``mask_distances``). Bar: the label
image costs at most 10% more than the channels. The two targets are checked
to be equal.
"""

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))  # the package of this checkout


from gp_hotdistance import HotDistancePredictor  # noqa: E402
from machine import describe, parse_args  # noqa: E402  (benchmarks/machine.py)

SCALE = 50.0
VOXEL_SIZE = (8.0, 8.0, 8.0)
CLASSES = 40
BAR = 1.10


def make_labels(side, rng):
    """A ``uint64`` label image of 40 classes of balls, class ``c`` the ids
    ``1000 + 2c`` (core) and ``1001 + 2c`` (shell); later balls overwrite."""
    shape = (side,) * 3
    labels = np.zeros(shape, dtype=np.uint64)
    zz, yy, xx = np.ogrid[tuple(slice(0, s) for s in shape)]
    for c in range(CLASSES):
        painted = 0
        while painted < 0.02 * labels.size:
            r = rng.uniform(3, 8)
            centre = [rng.uniform(0, s) for s in shape]
            squared = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2
            ball = squared <= r * r
            labels[ball] = 1001 + 2 * c
            labels[squared <= (r - 1.5) ** 2] = 1000 + 2 * c
            painted += int(ball.sum())
    return labels


def median_times(calls, runs):
    for call in calls.values():
        call()  # compiled and warm
    times = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a 32^3 volume instead of 96^3")
    args = parse_args(parser)
    side = 32 if args.quick else 96
    rng = np.random.default_rng(0)
    labels = make_labels(side, rng)
    names = [f"class{c}" for c in range(CLASSES)]
    groups = {name: [1000 + 2 * c, 1001 + 2 * c] for c, name in enumerate(names)}
    channels = np.stack([np.isin(labels, ids) for ids in groups.values()]).astype(np.uint8)
    grouped = HotDistancePredictor(names, SCALE, True, groups=groups)
    binary = HotDistancePredictor(names, SCALE, True)

    target = binary.compute_target(channels, VOXEL_SIZE)
    equal = np.array_equal(target, grouped.compute_target(labels, VOXEL_SIZE))
    rows = {
        "target": median_times(
            {
                "channels": lambda: binary.compute_target(channels, VOXEL_SIZE),
                "groups": lambda: grouped.compute_target(labels, VOXEL_SIZE),
            },
            args.runs,
        ),
        "weights": median_times(
            {
                "channels": lambda: binary.process_weight(channels, target, None, VOXEL_SIZE),
                "groups": lambda: grouped.process_weight(labels, target, None, VOXEL_SIZE),
            },
            args.runs,
        ),
    }
    print(describe())
    print(
        f"{CLASSES} classes of balls (2 ids each), {side}^3 uint64 labels at 8 nm, "
        f"scale_factor {SCALE:g}, 1 thread, medians of {args.runs}; targets equal: {equal}\n"
    )
    print("| call | 40 channels s | label image s | label image / channels | bar |")
    print("|---|---:|---:|---:|---|")
    misses = 0
    for name, medians in rows.items():
        ratio = medians["groups"] / medians["channels"]
        ok = ratio <= BAR
        misses += not ok
        print(
            f"| {name} | {medians['channels']:.3f} | {medians['groups']:.3f} | {ratio:.3f} "
            f"| <= {BAR:.2f} {'ok' if ok else 'MISS'} |"
        )
    return 1 if misses or not equal else 0


if __name__ == "__main__":
    sys.exit(main())
