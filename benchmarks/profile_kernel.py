"""Profile: the face-distance kernel's three steps, one label set at a time.

Usage:
    python benchmarks/profile_kernel.py [--against PATH] [--runs N] [--avx2] [SET ...]

Times each step of ``gp_hotdistance._kernels.face._face_distance_kernel`` alone
(in plane, across planes, final) on 1 thread on channel 0 of the label
sets of ``bench_target.py``. A set is written ``KIND:VOXEL``: ``dense``,
``sparse`` or ``blobs``, at ``8x8x8`` or ``40x4x4`` (nm); the default is all
six. Each step's input is the previous step's output, so a
step is timed on what it sees inside the kernel. CPU time
(``time.process_time``), medians of ``--runs``.

With ``--against PATH``, the package of another checkout (for example a
``git worktree add --detach /tmp/old <commit>``) runs too, the two kernels
alternating run by run in this process, and the table gives both and the
ratio (this checkout's time over the other's: below 1, this one is
faster): on a noisy machine the only comparison worth reading. Both compile
into a fresh, temporary numba cache then. The labels are uint8 (bool for a
checkout from before the face codes), as ``hot_distance_target`` passes
them to the kernel; this checkout's passes read their face codes.
"""

import argparse
import atexit
import importlib
import importlib.util
import inspect
import os
import shutil
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = ("dense", "sparse", "blobs")
STEPS = ("in plane", "across planes", "final")


def load_kernels(checkout, name):
    """The ``_kernels`` module of the package in ``checkout``, imported as
    ``name`` (so that two checkouts can live in one process; numba's cache
    then records that name, hence the fresh cache with ``--against``)."""
    package = os.path.join(checkout, "gp_hotdistance")
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(package, "__init__.py"), submodule_search_locations=[package]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    try:
        return importlib.import_module(name + "._kernels.face")
    except ModuleNotFoundError:  # a checkout from before the kernels became a package
        return importlib.import_module(name + "._kernels")


def step_inputs(kernels, labels, voxel_size, scale):
    """Each step as a call, with the call that restores its input (or None).
    The passes of this checkout read face codes (computed once here, not
    timed), older ones the labels and the label outside."""
    spacing2 = tuple(float(v * v) for v in voxel_size)
    cap2 = (kernels.TANH_SATURATION * scale) ** 2
    outside = labels.dtype.type(0)
    has_outside = (False, False, False)
    if hasattr(kernels, "face_codes"):
        # passes over a range of planes (first, last), on face codes
        codes = np.empty(labels.shape, dtype=np.uint8)
        kernels.face_codes(labels.view(np.uint8), np.uint8(0), codes, 0, labels.shape[0])
        labels = codes
        head = ()  # the passes take no label for outside
        planes, slabs = (0, labels.shape[0]), (0, labels.shape[1])
    else:
        head = (outside,)
        planes = slabs = (1,)  # parallel passes, one chunk on one numba thread
    out = np.empty(labels.shape, dtype=np.float32)
    scratch = np.empty_like(out)
    kernels._in_plane_pass(labels, spacing2, *head, has_outside, cap2, out, *planes)
    after_in_plane = out.copy()
    kernels._across_planes_pass(labels, spacing2, *head, has_outside, cap2, out, scratch, *slabs)
    after_across, along_z = out.copy(), scratch.copy()

    def in_plane():
        kernels._in_plane_pass(labels, spacing2, *head, has_outside, cap2, out, *planes)

    def across():
        kernels._across_planes_pass(
            labels, spacing2, *head, has_outside, cap2, out, scratch, *slabs
        )

    # this checkout's final step takes whether to write the one-hot too
    parameters = inspect.signature(kernels._final_pass.py_func).parameters
    one_hot = (False,) if "one_hot" in parameters else ()

    def final():
        kernels._final_pass(
            labels, spacing2, cap2, kernels.SIGNED, 1 / scale, *one_hot, out, scratch, *planes
        )

    def reset_across():
        out[...] = after_in_plane

    def reset_final():
        out[...] = after_across
        scratch[...] = along_z

    return ((in_plane, None), (across, reset_across), (final, reset_final))


def run_steps(steps, times=None):
    """Run each step once from its input; append its CPU time to ``times``."""
    for s, (run, reset) in enumerate(steps):
        if reset is not None:
            reset()
        start = time.process_time()
        run()
        if times is not None:
            times[s].append(time.process_time() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sets", nargs="*", metavar="SET")
    parser.add_argument("--against", metavar="PATH", help="another checkout to compare with")
    parser.add_argument("--runs", type=int, default=7)
    sys.path.insert(0, HERE)
    from machine import describe, parse_args

    args = parse_args(parser)
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")
    if args.against and not any(
        os.path.isfile(os.path.join(args.against, "gp_hotdistance", *path))
        for path in (("_kernels", "face.py"), ("_kernels.py",))
    ):
        parser.error(
            f"--against must be a checkout of this project, {args.against!r} has no gp_hotdistance/_kernels"
        )
    if args.against:
        # two packages with the same file names: keep their compiled kernels
        # apart, and out of the checkouts' own caches
        cache = tempfile.mkdtemp(prefix="profile_kernel_")
        atexit.register(shutil.rmtree, cache, ignore_errors=True)
        os.environ["NUMBA_CACHE_DIR"] = cache
    from bench_target import SCALE, VOXEL_SIZES, make_inputs

    sets = args.sets or [f"{kind}:{voxel}" for kind in KINDS for voxel in VOXEL_SIZES]
    for label_set in sets:
        kind, _, voxel = label_set.partition(":")
        if kind not in KINDS or voxel not in VOXEL_SIZES:
            parser.error(
                f"a set is KIND:VOXEL with KIND one of {', '.join(KINDS)} and VOXEL "
                f"one of {', '.join(VOXEL_SIZES)}, got {label_set!r}"
            )

    from gp_hotdistance._kernels import (
        face as _kernels,
    )  # this checkout's (bench_target puts it first)

    versions = {"this": _kernels}
    if args.against:
        versions["against"] = load_kernels(os.path.abspath(args.against), "gp_hotdistance_against")
    print(describe())
    header = "| set | step | " + " | ".join(f"{name} ms" for name in versions)
    print(header + (" | this / against |" if args.against else " |"))
    print("|---|---|" + "---:|" * (len(versions) + bool(args.against)))
    for label_set in sets:
        kind, _, voxel = label_set.partition(":")
        gt, _ = make_inputs(kind, 128)
        labels = np.ascontiguousarray(gt[0] != 0)
        steps = {
            name: step_inputs(k, labels, VOXEL_SIZES[voxel], SCALE) for name, k in versions.items()
        }
        times = {name: [[] for _ in STEPS] for name in versions}
        for name in versions:  # a first run, not timed: compiles what the cache lacks
            run_steps(steps[name])
        for _ in range(args.runs):
            for name in versions:
                run_steps(steps[name], times[name])
        for s, step in enumerate(STEPS):
            medians = [1e3 * np.median(times[name][s]) for name in versions]
            row = f"| {label_set} | {step} | " + " | ".join(f"{m:.1f}" for m in medians)
            if args.against:
                row += f" | {medians[0] / medians[1]:.2f}"
            print(row + " |", flush=True)


if __name__ == "__main__":
    main()
