"""Benchmark: numba's compile time, from an empty cache in a fresh process.

Usage:
    python benchmarks/bench_compile.py [--avx2]

A fresh subprocess with ``NUMBA_CACHE_DIR`` set to a new, empty folder times
``import gp_hotdistance``, then the first call of each of: the target
(``hot_distance_target`` of a binary uint8 gt), the weights with
``mask_distances`` (``hot_distance_weights``), the distance mask
(``distance_mask``) and ``face_distance`` of a uint64 multi-label array.
Goal: all of it together at most 20 s on a 2-core machine. Then the first
call with each of a row of other dtypes, byte orders and layouts (goal: 0 s
of compiling; the column "new kernels" counts the kernel specialisations the
call added, which should be 0). A second subprocess repeats the first part
with the cache the first one left (what every later process pays).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

GOAL_S = 20.0

CHILD = r"""
import json, sys, time
start, cpu = time.perf_counter(), time.process_time()
import numpy as np
import gp_hotdistance as hd
from gp_hotdistance._kernels import face, passes
rows = [("import gp_hotdistance", time.perf_counter() - start, None,
         time.process_time() - cpu)]

def compiled():
    return sum(len(getattr(f, "signatures", ())) for m in (face, passes)
               for f in vars(m).values() if hasattr(f, "signatures"))

def timed(name, call):
    before = compiled()
    start, cpu = time.perf_counter(), time.process_time()
    call()
    rows.append((name, time.perf_counter() - start, compiled() - before,
                 time.process_time() - cpu))

rng = np.random.default_rng(0)
gt = (rng.random((2, 24, 28, 32)) < 0.3).astype(np.uint8)
mask = (rng.random((24, 28, 32)) < 0.95).astype(np.uint8)
voxel_size = (40.0, 4.0, 4.0)
labels = rng.integers(0, 5, (24, 28, 32)).astype(np.uint64)
state = {}
timed("target (uint8 gt)",
      lambda: state.update(target=hd.hot_distance_target(gt, voxel_size, 50.0)))
timed("weights, mask_distances",
      lambda: hd.hot_distance_weights(gt, state["target"], mask, voxel_size, 50.0,
                                      mask_distances=True))
timed("distance mask",
      lambda: hd.distance_mask(state["target"][2:], mask, voxel_size, 50.0))
timed("face_distance (uint64 labels)", lambda: hd.face_distance(labels, voxel_size))
first = sum(row[1] for row in rows)
first_cpu = sum(row[3] for row in rows)
if sys.argv[1] == "all":
    path = sys.argv[2]
    memmap = np.lib.format.open_memmap(path, mode="w+", dtype=">i2", shape=labels.shape)
    memmap[...] = labels
    memmap.flush()
    read_only = np.load(path, mmap_mode="r")
    later = {
        "face_distance uint8": labels.astype(np.uint8),
        "face_distance uint16": labels.astype(np.uint16),
        "face_distance int64": labels.astype(np.int64),
        "face_distance float32": labels.astype(np.float32),
        "face_distance bool": labels > 2,
        "face_distance '>u8'": labels.astype(">u8"),
        "face_distance '>f8'": labels.astype(">f8"),
        "face_distance F-ordered": np.asfortranarray(labels),
        "face_distance strided": labels[::2, ::-1],
        "face_distance read-only memmap '>i2'": read_only,
    }
    for name, array in later.items():
        timed(name, lambda array=array: hd.face_distance(array, voxel_size))
    swapped = state["target"].astype(">f4")
    timed("target of a bool gt", lambda: hd.hot_distance_target(gt.astype(bool), voxel_size, 50.0))
    timed("target of a '>f4' F-ordered gt",
          lambda: hd.hot_distance_target(np.asfortranarray(gt.astype(">f4")), voxel_size, 50.0))
    timed("weights of a '>f4' target, bool mask",
          lambda: hd.hot_distance_weights(gt, swapped, mask.astype(bool), voxel_size, 50.0,
                                          mask_distances=True))
    timed("distance mask of '>f8' distances",
          lambda: hd.distance_mask(swapped[2:].astype(">f8"), mask, voxel_size, 50.0))
    timed("target on 2 threads", lambda: hd.hot_distance_target(gt, voxel_size, 50.0, threads=2))
print(json.dumps({"rows": rows, "first": first, "first_cpu": first_cpu}))
"""


def run_child(cache_dir, which, tmpdir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.join(HERE, "..")] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    )
    out = subprocess.run(
        [sys.executable, "-c", CHILD, which, os.path.join(tmpdir, "labels.npy")],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    sys.path.insert(0, HERE)
    from machine import describe, parse_args

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parse_args(parser)
    with tempfile.TemporaryDirectory(prefix="bench_compile_") as tmpdir:
        cache_dir = os.path.join(tmpdir, "numba_cache")
        os.mkdir(cache_dir)
        print("# compiling from an empty numba cache ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        cold = run_child(cache_dir, "all", tmpdir)
        wall = time.perf_counter() - start
        print("# again with the cache it left ...", file=sys.stderr, flush=True)
        warm = run_child(cache_dir, "first", tmpdir)

    print(describe())
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average (1 min) after the run: {load:.1f}")
    print(
        f"fresh process, NUMBA_CACHE_DIR an empty folder (whole child {wall:.1f} s "
        f"wall, interpreter start included)\n"
    )
    print("| step | s, empty cache | CPU s | new kernels | s, cache it left |")
    print("|---|---:|---:|---:|---:|")
    warm_rows = {row[0]: row[1] for row in warm["rows"]}
    for name, seconds, new, cpu in cold["rows"]:
        again = warm_rows.get(name)
        print(
            f"| {name} | {seconds:.2f} | {cpu:.2f} | {'' if new is None else new} | "
            f"{'' if again is None else f'{again:.2f}'} |"
        )
    later = cold["rows"][5:]
    later_new = sum(row[2] for row in later)
    later_s = sum(row[1] for row in later)
    ok = cold["first"] <= GOAL_S and later_new == 0
    print(
        f"\nimport and first target, weights, distance mask and uint64 face_distance: "
        f"{cold['first']:.1f} s from an empty cache ({cold['first_cpu']:.1f} s of CPU; "
        f"goal <= {GOAL_S:g} s), "
        f"{warm['first']:.1f} s with the cache it left"
    )
    print(
        f"{len(later)} later dtypes, byte orders and layouts: {later_s:.2f} s, "
        f"{later_new} new kernel specialisations (goal 0) {'ok' if ok else 'MISS'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
