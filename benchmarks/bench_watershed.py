"""Benchmark: the watershed of ``instance_segmentation`` against the number of
components.

Usage:
    python benchmarks/bench_watershed.py [--runs N] [--edges 32 80]

The input is the worst case for a per-component step: one-voxel specks on a
grid of pitch 3 (a prediction that is noise, or a network early in
training), voxel size 8 nm, ``scale_factor`` 16 nm, so the number of
components grows with the voxels. For each edge (a cube) it prints the
median time of ``method="watershed"`` and ``method="components"`` over
``--runs`` runs, and for the largest edge against the smallest the ratio of
the watershed's times next to the ratio of the voxels. Linear time: the
ratio of times is within 2x of the ratio of voxels.
"""

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))  # the package of this checkout

from gp_hotdistance import instance_segmentation  # noqa: E402
from machine import describe, parse_args  # noqa: E402  (benchmarks/machine.py)

VOXEL_SIZE = (8.0, 8.0, 8.0)
SCALE_FACTOR = 16.0
PITCH = 3


def specks(edge):
    distance = np.full((edge,) * 3, -0.5, dtype=np.float32)
    distance[::PITCH, ::PITCH, ::PITCH] = 0.5
    return distance


def median_time(runs, *args, **kwargs):
    """Median seconds of ``instance_segmentation(*args, **kwargs)``."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        instance_segmentation(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per method and edge")
    parser.add_argument(
        "--edges", type=int, nargs="+", default=[32, 80], help="cube edges in voxels"
    )
    args = parse_args(parser)
    print(describe())
    print(
        f"specks on a pitch-{PITCH} grid, voxel size {VOXEL_SIZE}, scale_factor "
        f"{SCALE_FACTOR}; median of {args.runs} runs"
    )
    print(f"{'edge':>5} {'voxels':>9} {'components':>10} {'watershed s':>12} {'components s':>13}")
    rows = []
    for edge in sorted(args.edges):
        distance = specks(edge)
        labels = instance_segmentation(distance, VOXEL_SIZE, scale_factor=SCALE_FACTOR)
        count = int(labels.max())
        watershed = median_time(args.runs, distance, VOXEL_SIZE, scale_factor=SCALE_FACTOR)
        components = median_time(args.runs, distance, VOXEL_SIZE, method="components")
        rows.append((edge, distance.size, watershed))
        print(f"{edge:>5} {distance.size:>9} {count:>10} {watershed:>12.4f} {components:>13.4f}")
    if len(rows) > 1:
        (small, small_voxels, small_time), (large, large_voxels, large_time) = rows[0], rows[-1]
        voxels = large_voxels / small_voxels
        times = large_time / small_time
        verdict = "linear (within 2x)" if times <= 2 * voxels else "NOT linear"
        print(
            f"edge {large} against {small}: voxels x{voxels:.1f}, watershed time "
            f"x{times:.1f}, time ratio / voxel ratio {times / voxels:.2f}: {verdict}"
        )


if __name__ == "__main__":
    main()
