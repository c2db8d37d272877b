"""Benchmark: blockwise precomputation on daisy, 1 and 2 local workers, and 2
workers started through a launcher command.

Usage:
    python benchmarks/bench_precompute.py            # 256^3 and 192^3, blocks of 64^3 (~4 min on 2 cores)
    python benchmarks/bench_precompute.py --quick    # smoke: 96^3 and 64^3, blocks of 32^3
    python benchmarks/bench_precompute.py --avx2     # numba compiles for AVX2 (benchmarks/machine.py)

For each volume (3 classes, voxel size 8 nm, scale factor 50, mask_distances
with a mask) the script writes the gt to a zarr container slab by slab (the
volume is never in this process's memory), then runs
``gp_hotdistance.precompute.precompute_target`` with 1 and with 2 local
workers, and with 2 workers through a launcher (``worker_command="{command}"``:
the shell starts each ``python -m gp_hotdistance worker`` as a separate
process, which imports the package afresh and connects back to the scheduler
over TCP, as on a cluster; ``overwrite=True`` each time) and reports

* voxels/s: gt voxels / wall time of the whole call (daisy's start-up and
  the workers' forks included);
* peak memory per worker: VmHWM of each daisy worker process, read in the
  worker after each block. The benchmark wraps the worker's block function
  (``_BlockWriter.write_block``, a private name): before its first block a
  worker resets its VmHWM (``/proc/self/clear_refs``) and notes its RSS, which
  is mostly what it shares with this process after the fork (imports); "block
  extra" is the peak minus that RSS, the memory that the blocks cost;
  daisy 2 spawns its workers, which import the module afresh, so there the
  wrapper does not reach them and these figures are left empty; the same for
  the launcher's workers (separate programs). A launcher's worker uses as many
  threads as the cores it may run on, a local one ``cores / workers``;
* for reference, the whole volume in memory (``predictor.create_target`` and
  ``create_distance_mask`` in a fresh subprocess): time and VmHWM growth.

The worker peaks should be the same for both volume sizes: they depend on the
block size (plus the padding), not on the volume.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from funlib.geometry import Coordinate
from funlib.persistence import prepare_ds

from gp_hotdistance import HotDistancePredictor, precompute
from gp_hotdistance.precompute import precompute_target
from machine import describe, parse_args  # benchmarks/machine.py

CLASSES = ["a", "b", "c"]
VOXEL_SIZE = (8, 8, 8)
SCALE_FACTOR = 50.0


# ------------------------------------------------------------------ inputs
def write_volume(container, size, slab=32, seed=0):
    """Binary gt (3, size^3) and a mask, written slab by slab: each class is
    a sum of random plane waves thresholded at 0.3 of its range (blobs about
    10-40 voxels across)."""
    rng = np.random.default_rng(seed)
    shape = (size,) * 3
    gt = prepare_ds(
        os.path.join(container, "gt"),
        (3,) + shape,
        offset=(0, 0, 0),
        voxel_size=VOXEL_SIZE,
        axis_names=["c", "z", "y", "x"],
        types=["channel", "space", "space", "space"],
        dtype=np.uint8,
        chunk_shape=(3, 64, 64, 64),
    )
    mask = prepare_ds(
        os.path.join(container, "mask"),
        shape,
        offset=(0, 0, 0),
        voxel_size=VOXEL_SIZE,
        axis_names=["z", "y", "x"],
        types=["space"] * 3,
        dtype=np.uint8,
        chunk_shape=(64, 64, 64),
    )
    waves = [
        (
            rng.normal(size=(8, 3)) * rng.uniform(0.05, 0.25, size=(8, 1)),
            rng.uniform(0, 2 * np.pi, size=8),
        )
        for _ in CLASSES
    ]
    y, x = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    for z0 in range(0, size, slab):
        z = np.arange(z0, min(z0 + slab, size))[:, None, None]
        labels = np.empty((3, len(z), size, size), np.uint8)
        for c, (vectors, phases) in enumerate(waves):
            field = sum(np.cos(k[0] * z + k[1] * y + k[2] * x + p) for k, p in zip(vectors, phases))
            labels[c] = field > 0.3 * len(phases) / 2
        gt._source_data[:, z0 : z0 + len(z)] = labels
        # the mask: unknown in a slab through the middle of the volume
        known = np.ones((len(z), size, size), np.uint8)
        known[:, size // 2 - 4 : size // 2 + 4] = 0
        mask._source_data[z0 : z0 + len(z)] = known


# ------------------------------------------------------------------ memory
def status_kb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


# where the workers report; set before a run, inherited by the forked workers
REPORT_DIR = None
_worker_state = {}
_write_block = precompute._BlockWriter.write_block


def measured_write_block(self, read_roi, write_roi):
    """The worker's block function, reporting the worker's memory."""
    if not _worker_state:
        # the first block in this worker: forget the peak before it
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _worker_state.update(rss_start_kb=status_kb("VmRSS"), blocks=0)
    _write_block(self, read_roi, write_roi)
    _worker_state["blocks"] += 1
    _worker_state["hwm_kb"] = status_kb("VmHWM")
    path = os.path.join(REPORT_DIR, f"{os.getpid()}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(_worker_state, f)
    os.replace(path + ".tmp", path)


precompute._BlockWriter.write_block = measured_write_block


IN_MEMORY = """
import json, os, sys, time
import numpy as np
from funlib.persistence import open_ds
from gp_hotdistance import HotDistancePredictor

def hwm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024

container = sys.argv[1]
predictor = HotDistancePredictor(["a", "b", "c"], 50.0, mask_distances=True)


def whole_volume():
    gt = open_ds(os.path.join(container, "gt"))
    mask = open_ds(os.path.join(container, "mask"))
    target = predictor.create_target(gt)
    data = np.asarray(target[target.roi])
    return data, predictor.create_distance_mask(data[3:], mask[mask.roi], gt.voxel_size)


whole_volume()  # numba warm-up; then measure a second run
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = hwm()
start = time.perf_counter()
whole_volume()
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_extra_mb": hwm() - before, "peak_mb": hwm()}))
"""


# ------------------------------------------------------------------ runs
def run(container, size, block, workers, predictor, launcher=False):
    global REPORT_DIR
    REPORT_DIR = tempfile.mkdtemp(prefix="workers_")
    through = {"worker_command": "{command}", "host": "127.0.0.1"} if launcher else {}
    try:
        start = time.perf_counter()
        result = precompute_target(
            container,
            "gt",
            "target",
            predictor,
            mask="mask",
            block_size=block,
            num_workers=workers,
            overwrite=True,
            progress=False,
            **through,
        )
        seconds = time.perf_counter() - start
        reports = []
        for name in sorted(os.listdir(REPORT_DIR)):
            with open(os.path.join(REPORT_DIR, name)) as f:
                reports.append(json.load(f))
    finally:
        shutil.rmtree(REPORT_DIR)
    return {
        "size": size,
        "block": block,
        "blocks": result.total_blocks,
        "workers": f"{workers} via launcher" if launcher else str(workers),
        "seconds": seconds,
        "voxels_per_s": size**3 / seconds,
        "worker_blocks": [r["blocks"] for r in reports],
        "worker_peak_mb": [r["hwm_kb"] / 1024 for r in reports],
        "worker_extra_mb": [(r["hwm_kb"] - r["rss_start_kb"]) / 1024 for r in reports],
        "main_peak_mb": status_kb("VmHWM") / 1024,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    args = parse_args(parser)
    sizes, block = ((96, 64), 32) if args.quick else ((256, 192), 64)

    predictor = HotDistancePredictor(CLASSES, SCALE_FACTOR, mask_distances=True)
    padding = predictor.padding(Coordinate(VOXEL_SIZE)) / Coordinate(VOXEL_SIZE)
    region = tuple(block + 2 * p for p in padding)
    print(describe())
    print(
        f"block {block}^3 voxels, padding {tuple(padding)} voxels per side: "
        f"each block reads {region} voxels"
    )

    rows, references = [], []
    workdir = tempfile.mkdtemp(prefix="bench_precompute_")
    try:
        for size in sizes:
            container = os.path.join(workdir, f"v{size}.zarr")
            start = time.perf_counter()
            write_volume(container, size)
            print(f"\nvolume 3 x {size}^3 written in {time.perf_counter() - start:.1f} s")
            for workers, launcher in ((1, False), (2, False), (2, True)):
                row = run(container, size, block, workers, predictor, launcher)
                rows.append(row)
                print(
                    f"  {row['workers']} worker(s): {row['blocks']} blocks in {row['seconds']:.1f} s"
                    f" = {row['voxels_per_s'] / 1e6:.3f} Mvoxel/s; worker VmHWM "
                    + ", ".join(f"{p:.0f}" for p in row["worker_peak_mb"])
                    + " MB (block extra "
                    + ", ".join(f"{p:.0f}" for p in row["worker_extra_mb"])
                    + " MB; blocks per worker "
                    + ", ".join(str(b) for b in row["worker_blocks"])
                    + f"); main process VmHWM {row['main_peak_mb']:.0f} MB"
                )
            reference = subprocess.run(
                [sys.executable, "-c", IN_MEMORY, container],
                capture_output=True,
                text=True,
                check=True,
            )
            ref = json.loads(reference.stdout.strip().splitlines()[-1])
            ref["size"] = size
            references.append(ref)
            print(
                f"  in memory, whole volume: {ref['seconds']:.1f} s = "
                f"{size**3 / ref['seconds'] / 1e6:.3f} Mvoxel/s; VmHWM growth "
                f"{ref['peak_extra_mb']:.0f} MB"
            )
            shutil.rmtree(container)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print("\n| volume | workers | blocks | seconds | Mvoxel/s | worker VmHWM MB | block extra MB |")
    print("|---|---|---:|---:|---:|---|---|")
    for row in rows:
        print(
            f"| 3 x {row['size']}^3 | {row['workers']} | {row['blocks']} | "
            f"{row['seconds']:.1f} | {row['voxels_per_s'] / 1e6:.3f} | "
            + ", ".join(f"{p:.0f}" for p in row["worker_peak_mb"])
            + " | "
            + ", ".join(f"{p:.0f}" for p in row["worker_extra_mb"])
            + " |"
        )
    for ref in references:
        print(
            f"| 3 x {ref['size']}^3 in memory | - | - | {ref['seconds']:.1f} | "
            f"{ref['size'] ** 3 / ref['seconds'] / 1e6:.3f} | - | "
            f"{ref['peak_extra_mb']:.0f} (VmHWM growth) |"
        )


if __name__ == "__main__":
    main()
