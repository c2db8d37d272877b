"""Blockwise precomputation on daisy: equal to the in-memory target, block
size independent, resumable, clear errors, and the command line."""

import ast
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.ndimage
import zarr
from funlib.persistence import open_ds, prepare_ds

from commands import precompute_command
from gp_hotdistance import HotDistancePredictor, precompute
from gp_hotdistance.__main__ import main
from gp_hotdistance.precompute import (
    InvalidDataError,
    PrecomputeResult,
    distance_mask_dataset_name,
    done_dataset_name,
    precompute_target,
)
from oracles import reference_hot_distance_target

SHAPE = (40, 48, 48)
OFFSET = (200, 40, -80)
VOXEL_SIZE = (10, 4, 4)
SCALE_FACTOR = 10.0
CLASSES = ["mito", "er"]
# 3 x 3 x 3 blocks; the last along each axis is shrunk (40 = 16 + 16 + 8)
BLOCK_SIZE = (16, 16, 16)


ZARR_3 = int(zarr.__version__.split(".")[0]) >= 3
# the zarr formats this stack writes: zarr 2 writes format 2 only
ZARR_FORMATS = [2, 3] if ZARR_3 else [2]


def write_dataset(path, data, channels=True, dtype=np.uint8, zarr_format=None):
    names = (["c"] if channels else []) + ["z", "y", "x"]
    types = (["channel"] if channels else []) + ["space"] * 3
    extra = {} if zarr_format is None or not ZARR_3 else {"zarr_format": zarr_format}
    array = prepare_ds(
        path,
        data.shape,
        offset=OFFSET,
        voxel_size=VOXEL_SIZE,
        axis_names=names,
        types=types,
        dtype=dtype,
        **extra,
    )
    array[array.roi] = data
    return array


def make_gt():
    """Class 0: smooth blobs everywhere. Class 1: one small box, so most of
    the volume is farther from its faces than the context, where a block's
    target saturates."""
    rng = np.random.default_rng(7)
    blobs = scipy.ndimage.gaussian_filter(rng.random(SHAPE), (1, 3, 3)) > 0.5
    box = np.zeros(SHAPE, bool)
    box[30:34, 5:12, 36:44] = True
    return np.stack([blobs, box]).astype(np.uint8)


def make_mask():
    mask = np.ones(SHAPE, np.uint8)
    mask[5:15, 20:30, 10:40] = 0
    return mask


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    """A container with gt and mask, and the in-memory whole-volume target and
    distance mask."""
    container = str(tmp_path_factory.mktemp("precompute") / "data.zarr")
    gt = make_gt()
    mask = make_mask()
    write_dataset(os.path.join(container, "gt"), gt)
    write_dataset(os.path.join(container, "mask"), mask, channels=False)
    predictor = HotDistancePredictor(CLASSES, SCALE_FACTOR, mask_distances=True)
    # the whole volume through funlib and dask, as a user would: this also
    # leaves dask's threaded scheduler used in this process before forking
    gt_array = open_ds(os.path.join(container, "gt"))
    target = np.asarray(predictor.create_target(gt_array)[gt_array.roi])
    distance_mask = predictor.create_distance_mask(target[2:], mask, VOXEL_SIZE)
    return {
        "container": container,
        "gt": gt,
        "mask": mask,
        "predictor": predictor,
        "target": target,
        "distance_mask": distance_mask,
    }


@pytest.fixture(scope="module")
def blockwise(volume):
    """The blockwise outputs with BLOCK_SIZE and 2 workers."""
    result = precompute_target(
        volume["container"],
        "gt",
        "blocks/target",
        volume["predictor"],
        mask="mask",
        block_size=BLOCK_SIZE,
        num_workers=2,
        progress=False,
    )
    return result


def read(path):
    array = open_ds(path)
    return array, array[array.roi]


def saturated(target):
    """Where the whole-volume target is past the context: the nearest face is
    farther than the blocks can see, and only the tolerance binds."""
    return np.abs(target) >= np.float32(1 - 1e-3)


def test_blockwise_equals_whole_volume(volume, blockwise):
    assert blockwise == PrecomputeResult(
        target=os.path.join(volume["container"], "blocks/target"),
        distance_mask=os.path.join(volume["container"], "blocks/target_distance_mask"),
        total_blocks=27,
        skipped_blocks=0,
        processed_blocks=27,
    )
    target_array, target = read(blockwise.target)
    assert target.dtype == np.float32 and target.shape == (4,) + SHAPE
    assert tuple(target_array.roi.offset) == OFFSET
    assert tuple(target_array.voxel_size) == VOXEL_SIZE
    assert target_array.attrs["channel_names"] == [
        "mito_hot",
        "er_hot",
        "mito_distance",
        "er_distance",
    ]
    expected = volume["target"]
    assert np.abs(target - expected).max() <= 1e-3
    # within the context the blocks see the same faces: identical values
    near = ~saturated(expected)
    assert np.array_equal(target[near], expected[near])
    # the box class must exercise the saturated case, and the blocks differ there
    assert saturated(expected[3]).mean() > 0.5
    assert np.abs(target - expected).max() > 0
    # an independent oracle (the reference's doubled grid) on the whole volume
    oracle = reference_hot_distance_target(volume["gt"], VOXEL_SIZE, SCALE_FACTOR)
    assert np.abs(target - oracle).max() <= 1e-3 + 1e-6

    mask_array, distance_mask = read(blockwise.distance_mask)
    assert distance_mask.dtype == np.uint8 and distance_mask.shape == (2,) + SHAPE
    assert tuple(mask_array.roi.offset) == OFFSET
    assert np.array_equal(distance_mask, volume["distance_mask"])
    # both values occur: the mask's unknown box and the volume's edges matter
    assert 0 < distance_mask.mean() < 1


def test_independent_of_block_size(volume, blockwise):
    other = precompute_target(
        volume["container"],
        "gt",
        "other",
        volume["predictor"],
        mask="mask",
        block_size=(8, 40, 20),
        num_workers=1,
        progress=False,
    )
    assert other.total_blocks == 5 * 2 * 3
    _, first = read(blockwise.target)
    _, second = read(other.target)
    near = ~saturated(volume["target"])
    assert np.array_equal(first[near], second[near])
    # where the nearest face is beyond the context the two tilings see
    # different faces; both stay within the tolerance of the true value
    assert np.abs(first - second).max() <= 1e-3
    assert np.array_equal(read(other.distance_mask)[1], read(blockwise.distance_mask)[1])


def test_one_block_and_one_class_without_channel_axis(tmp_path, volume):
    container = str(tmp_path / "one.zarr")
    write_dataset(os.path.join(container, "gt"), volume["gt"][0], channels=False)
    predictor = HotDistancePredictor(["mito"], SCALE_FACTOR, mask_distances=False)
    result = precompute_target(container, "gt", "target", predictor, block_size=64, progress=False)
    assert result.total_blocks == 1 and result.distance_mask is None
    # one block sees the whole volume: exactly the in-memory target
    _, target = read(result.target)
    assert np.array_equal(target, volume["target"][[0, 2]])
    assert not os.path.exists(os.path.join(container, distance_mask_dataset_name("target")))


def test_resume_processes_only_the_missing_blocks(tmp_path, volume):
    container = str(tmp_path / "resume.zarr")
    write_dataset(os.path.join(container, "gt"), volume["gt"])
    predictor = HotDistancePredictor(CLASSES, SCALE_FACTOR, mask_distances=False)
    run = {"block_size": (16, 24, 24), "num_workers": 2, "progress": False}
    first = precompute_target(container, "gt", "target", predictor, **run)
    assert (first.total_blocks, first.processed_blocks) == (12, 12)

    # the state an interrupted run leaves: some blocks not marked done (and
    # half written), the others done
    done = zarr.open_array(os.path.join(container, done_dataset_name("target")), mode="r+")
    target = zarr.open_array(first.target, mode="r+")
    assert done.shape == (3, 2, 2) and done[...].all()
    undone = [(0, 0, 1), (1, 1, 0), (2, 1, 1)]  # (2, ...) is a shrunk edge block
    for index in undone:
        done[index] = 0
        z, y, x = index
        target[:, z * 16 : (z + 1) * 16, y * 24 : (y + 1) * 24, x * 24 : x * 24 + 12] = np.nan
    # a done block with a value the run would never write: it must stay
    target[:, 16:32, 0:24, 0:24] = 7.0

    second = precompute_target(container, "gt", "target", predictor, **run)
    assert (second.skipped_blocks, second.processed_blocks) == (9, 3)
    assert done[...].all()
    result = target[...]
    assert np.all(result[:, 16:32, 0:24, 0:24] == 7.0)
    result[:, 16:32, 0:24, 0:24] = volume["target"][:, 16:32, 0:24, 0:24]
    assert np.abs(result - volume["target"]).max() <= 1e-3

    # a complete run is not redone
    third = precompute_target(container, "gt", "target", predictor, **run)
    assert (third.skipped_blocks, third.processed_blocks) == (12, 0)


def test_bad_value_in_a_block_stops_the_run_and_the_next_run_retries(tmp_path, volume, monkeypatch):
    container = str(tmp_path / "failing.zarr")
    gt = volume["gt"].copy()
    # not binary, and farther from the other blocks than their padding (5, 11,
    # 11 voxels): only the block (1, 0, 0) reads it
    gt[0, 24, 12, 12] = 2
    gt_array = write_dataset(os.path.join(container, "gt"), gt)
    predictor = HotDistancePredictor(CLASSES, SCALE_FACTOR, mask_distances=False)
    assert predictor.padding(VOXEL_SIZE) == (50, 44, 44)
    run = {"block_size": (16, 24, 24), "num_workers": 2, "progress": False}
    # the sample checked before the run finds it: nothing is written
    with pytest.raises(
        InvalidDataError,
        match=r"gt dataset 'gt' holds \[2\] in block "
        r"\(1, 0, 0\) .*nothing was written",
    ):
        precompute_target(container, "gt", "target", predictor, **run)
    assert not os.path.exists(os.path.join(container, "target"))

    # without the sample, the block finds it and stops the run
    monkeypatch.setattr(precompute, "_SAMPLE_BLOCKS", 0)
    with pytest.raises(
        InvalidDataError,
        match=r"gt dataset 'gt', block \(1, 0, 0\) .*"
        r"only 0 and 1.*found \[2\].*run stopped",
    ):
        precompute_target(container, "gt", "target", predictor, **run)
    done = zarr.open_array(os.path.join(container, done_dataset_name("target")), mode="r")
    assert done[1, 0, 0] == 0
    done_first = int(done[...].sum())

    gt_array._source_data[0, 24, 12, 12] = volume["gt"][0, 24, 12, 12]
    result = precompute_target(container, "gt", "target", predictor, **run)
    assert (result.skipped_blocks, result.processed_blocks) == (done_first, 12 - done_first)
    assert np.abs(read(result.target)[1] - volume["target"]).max() <= 1e-3


def test_hopeless_run_stops_with_one_message(tmp_path, capfd, monkeypatch):
    """A gt stored as 0/255 over 180 blocks: one line on stderr, exit 1,
    found by the sample before the run, or else by the first block."""
    container = str(tmp_path / "byte.zarr")
    write_dataset(os.path.join(container, "gt"), make_gt() * np.uint8(255))
    arguments = cli(container, "--block-size", "8", "--workers", "2")
    assert main(arguments) == 1
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "gp-hotdistance precompute: failed: gt dataset 'gt' holds [255] in block ("
    )
    assert not os.path.exists(os.path.join(container, "cli"))

    monkeypatch.setattr(precompute, "_SAMPLE_BLOCKS", 0)
    assert main(arguments) == 1
    lines = capfd.readouterr().err.strip().splitlines()
    # daisy 2 adds one line for a worker that starts after the run has ended
    # ("daisy server ... is not reachable; assuming the run has ended")
    ours = [line for line in lines if line.startswith("gp-hotdistance")]
    assert len(ours) == 1 and len(lines) <= 1 + 2, lines
    assert ours[0].startswith("gp-hotdistance precompute: failed: gt dataset 'gt', block (")
    assert "only 0 and 1" in ours[0] and "found [255]" in ours[0]
    done = zarr.open_array(os.path.join(container, done_dataset_name("cli")), mode="r")
    assert done.size == 5 * 6 * 6 and not done[...].any()


# a run whose worker dies: MODE "run" kills the whole run (the worker's
# parent, the main process, then the worker) when the worker's fourth block
# starts; MODE "worker" kills the worker at its first block, once; MODE
# "block" kills every worker that gets the first block. The class
# is defined in __main__ so that daisy 2 (which pickles the process function
# into spawned workers) sends it by value.
KILLING_RUN = """
import os, signal, sys
from gp_hotdistance import HotDistancePredictor
from gp_hotdistance import precompute

MODE, MARKER = sys.argv[2], sys.argv[3]


class Writer(precompute._BlockWriter):
    def write_block(self, read_roi, write_roi):
        self.written = getattr(self, "written", 0)
        if MODE == "run" and self.written == 3:
            os.kill(os.getppid(), signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)
        if MODE == "block" and write_roi.offset == self.origin:
            os.kill(os.getpid(), signal.SIGKILL)
        if MODE == "worker" and not os.path.exists(MARKER):
            open(MARKER, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        super().write_block(read_roi, write_roi)
        self.written += 1


precompute._BlockWriter = Writer
predictor = HotDistancePredictor(["mito", "er"], {scale}, mask_distances=True)
result = precompute.precompute_target(
    sys.argv[1], "gt", "target", predictor, mask="mask", block_size={block},
    num_workers=1, progress=False,
)
print(result.processed_blocks)
"""


def killing_run(container, mode, python=sys.executable):
    script = textwrap.dedent(KILLING_RUN).format(scale=SCALE_FACTOR, block=(16, 24, 24))
    marker = container + ".killed"
    return subprocess.run(
        [python, "-c", script, container, mode, marker],
        start_new_session=True,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )


def resume_and_check(container, volume, done_before):
    predictor = HotDistancePredictor(CLASSES, SCALE_FACTOR, mask_distances=True)
    result = precompute_target(
        container,
        "gt",
        "target",
        predictor,
        mask="mask",
        block_size=(16, 24, 24),
        num_workers=2,
        progress=False,
    )
    assert (result.skipped_blocks, result.processed_blocks) == (done_before, 12 - done_before)
    assert np.abs(read(result.target)[1] - volume["target"]).max() <= 1e-3
    assert np.array_equal(read(result.distance_mask)[1], volume["distance_mask"])


def write_inputs(container, volume, zarr_format=None):
    write_dataset(os.path.join(container, "gt"), volume["gt"], zarr_format=zarr_format)
    write_dataset(
        os.path.join(container, "mask"), volume["mask"], channels=False, zarr_format=zarr_format
    )


def test_resume_after_the_run_was_killed(tmp_path, volume):
    container = str(tmp_path / "killed.zarr")
    write_inputs(container, volume)
    killed = killing_run(container, "run")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    done = zarr.open_array(os.path.join(container, done_dataset_name("target")), mode="r")
    assert int(done[...].sum()) == 3
    resume_and_check(container, volume, 3)


def test_killed_worker_is_retried(tmp_path, volume):
    container = str(tmp_path / "worker.zarr")
    write_inputs(container, volume)
    completed = killing_run(container, "worker")
    assert completed.returncode == 0, completed.stderr
    assert os.path.exists(container + ".killed")  # a worker was killed
    assert completed.stdout.split() == ["12"]
    resume_and_check(container, volume, 12)


def test_block_whose_worker_always_dies_is_reported_and_retried_later(tmp_path, volume):
    container = str(tmp_path / "dying.zarr")
    write_inputs(container, volume)
    failed = killing_run(container, "block")
    assert failed.returncode == 1, failed.stderr
    assert "RuntimeError: 1 of 12 blocks of 'target' were not written" in failed.stderr
    done = zarr.open_array(os.path.join(container, done_dataset_name("target")), mode="r")
    assert np.array_equal(np.argwhere(done[...] == 0), [[0, 0, 0]])
    resume_and_check(container, volume, 11)


OTHER_PYTHON = os.environ.get("GP_HOTDISTANCE_OTHER_PYTHON")


@pytest.mark.skipif(
    not OTHER_PYTHON,
    reason="set GP_HOTDISTANCE_OTHER_PYTHON to the other stack's python to test "
    "resuming, on this stack, a run of the other stack",
)
def test_resume_a_run_of_the_other_stack(tmp_path, volume):
    container = str(tmp_path / "other.zarr")
    write_inputs(container, volume, zarr_format=2)  # what both stacks read
    killed = killing_run(container, "run", python=OTHER_PYTHON)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resume_and_check(container, volume, 3)


@pytest.mark.parametrize("zarr_format", ZARR_FORMATS)
def test_outputs_take_the_zarr_format_of_the_gt(tmp_path, volume, zarr_format):
    container = str(tmp_path / "format.zarr")
    write_inputs(container, volume, zarr_format=zarr_format)
    predictor = HotDistancePredictor(CLASSES, SCALE_FACTOR, mask_distances=True)
    result = precompute_target(
        container, "gt", "target", predictor, mask="mask", block_size=(16, 24, 24), progress=False
    )
    metadata = ".zarray" if zarr_format == 2 else "zarr.json"
    for name in ["target", "target_done", "target_distance_mask"]:
        assert os.path.exists(os.path.join(container, name, metadata))
    assert np.abs(read(result.target)[1] - volume["target"]).max() <= 1e-3


# -- errors ------------------------------------------------------------------


def test_errors(volume, blockwise, tmp_path):
    container = volume["container"]
    predictor = volume["predictor"]
    plain = HotDistancePredictor(CLASSES, SCALE_FACTOR, mask_distances=False)
    with pytest.raises(FileNotFoundError, match="container .*missing.zarr.* does not exist"):
        precompute_target(str(tmp_path / "missing.zarr"), "gt", "t", plain)
    with pytest.raises(FileNotFoundError, match="gt dataset 'labels' does not exist"):
        precompute_target(container, "labels", "t", plain)
    with pytest.raises(FileNotFoundError, match="mask dataset 'nomask' does not exist"):
        precompute_target(container, "gt", "t", predictor, mask="nomask")
    with pytest.raises(ValueError, match="gt dataset 'gt' has 2 channels .* 3 classes"):
        precompute_target(container, "gt", "t", HotDistancePredictor(["a", "b", "c"], 1.0, False))
    with pytest.raises(ValueError, match="gt dataset 'mask' has no channel axis"):
        precompute_target(container, "mask", "t", plain)
    for block_size in [(0, 16, 16), (16, 16), 2.5, "16"]:
        with pytest.raises(ValueError, match="block_size must be"):
            precompute_target(container, "gt", "t", plain, block_size=block_size)
    with pytest.raises(ValueError, match="num_workers must be a positive int"):
        precompute_target(container, "gt", "t", plain, num_workers=0)
    with pytest.raises(ValueError, match="mask is only used for the distance mask"):
        precompute_target(container, "gt", "t", plain, mask="mask")
    with pytest.raises(ValueError, match="out 'gt' would write over the input 'gt'"):
        precompute_target(container, "gt", "gt", plain)
    with pytest.raises(ValueError, match="would write over the input 'mask_done'"):
        precompute_target(container, "gt", "mask", predictor, mask="mask_done")
    # an existing dataset that no run of ours made
    with pytest.raises(FileExistsError, match="'mask' already exists .*--overwrite"):
        precompute_target(container, "gt", "mask", plain)
    # an earlier run with other settings
    with pytest.raises(FileExistsError, match="other settings .*block_size: \\[16, 16, 16\\]"):
        precompute_target(container, "gt", "blocks/target", predictor, mask="mask", block_size=32)
    # nothing was written by the refused calls
    assert not os.path.exists(os.path.join(container, "t"))
    assert read(os.path.join(container, "mask"))[1].ndim == 3


def test_overwrite_replaces_only_outputs_of_this_package(tmp_path, volume):
    container = str(tmp_path / "overwrite.zarr")
    write_dataset(os.path.join(container, "gt"), volume["gt"])
    predictor = HotDistancePredictor(CLASSES, SCALE_FACTOR, mask_distances=False)
    first = precompute_target(container, "gt", "target", predictor, block_size=16, progress=False)
    assert first.total_blocks == 27
    # other settings: refused without overwrite, replaced with it
    with pytest.raises(FileExistsError, match="other settings"):
        precompute_target(container, "gt", "target", predictor, block_size=64, progress=False)
    result = precompute_target(
        container, "gt", "target", predictor, block_size=64, overwrite=True, progress=False
    )
    assert (result.total_blocks, result.processed_blocks) == (1, 1)
    assert np.array_equal(read(result.target)[1], volume["target"])


def make_existing(container, kind, name):
    """Put something this package did not write at ``name``."""
    path = os.path.join(container, name)
    if kind == "funlib dataset inside":  # prepare_ds leaves the parent without metadata
        write_dataset(os.path.join(path, "raw"), make_mask(), channels=False)
        return os.path.join(path, "raw")
    if kind == "dataset":
        write_dataset(path, make_mask(), channels=False)
    elif kind == "group":
        zarr.open_group(path, mode="w")
    elif kind == "directory":
        os.makedirs(os.path.join(path, "notes"))
    elif kind == "file":
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as file:
            file.write("mine")
    return path


def snapshot(path):
    """Every file under ``path`` with its bytes."""
    if os.path.isfile(path):
        with open(path, "rb") as file:
            return {path: file.read()}
    found = {}
    for folder, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(folder, name), "rb") as file:
                found[os.path.join(folder, name)] = file.read()
    return found


KINDS = ["funlib dataset inside", "dataset", "group", "directory", "file"]


@pytest.mark.parametrize("zarr_format", ZARR_FORMATS)
@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("at", ["cli", "cli_done", "cli_distance_mask"])
@pytest.mark.parametrize("kind", KINDS)
def test_never_writes_over_what_it_did_not_write(
    tmp_path, volume, capsys, kind, at, overwrite, zarr_format
):
    container = str(tmp_path / "user.zarr")
    write_inputs(container, volume, zarr_format=zarr_format)
    path = make_existing(container, kind, at)
    before = snapshot(os.path.join(container, at))
    status = main(
        cli(
            container, "--mask", "mask", "--mask-distances", *(["--overwrite"] if overwrite else [])
        )
    )
    assert status == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"'{at}'" in lines[0] and os.path.join(container, at) in lines[0]
    if overwrite:
        assert "not written by gp_hotdistance" in lines[0]
    else:
        assert "already exists" in lines[0]
    # untouched, and nothing else was written
    assert snapshot(os.path.join(container, at)) == before
    assert os.path.exists(path)
    assert set(os.listdir(container)) - {".zgroup", "zarr.json"} == {"gt", "mask", at}


@pytest.mark.parametrize("zarr_format", ZARR_FORMATS)
@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize(
    "gt, mask, out, relation",
    [
        ("labels/gt", None, "labels", "contains"),
        ("labels/gt", "masks/mask", "masks", "contains"),
        ("gt", None, "gt/target", "lies inside"),
        ("gt", None, "gt", "is"),
    ],
)
def test_never_writes_over_an_input(
    tmp_path, volume, capsys, gt, mask, out, relation, overwrite, zarr_format
):
    container = str(tmp_path / "inputs.zarr")
    write_dataset(os.path.join(container, gt), volume["gt"], zarr_format=zarr_format)
    arguments = precompute_command(container, gt, out, "mito,er", 10, "--block-size", "64")
    if mask is not None:
        write_dataset(
            os.path.join(container, mask), volume["mask"], channels=False, zarr_format=zarr_format
        )
        arguments += ["--mask", mask, "--mask-distances"]
    if overwrite:
        arguments.append("--overwrite")
    before = snapshot(container)
    status = main(arguments)
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(lines) == 1, lines
    assert f"would write over the input '{mask or gt}'" in lines[0]
    assert f"{relation} it" in lines[0]
    assert snapshot(container) == before


def test_output_beside_an_input_is_allowed(tmp_path, volume):
    container = str(tmp_path / "sibling.zarr")
    write_dataset(os.path.join(container, "labels/gt"), volume["gt"])
    predictor = HotDistancePredictor(CLASSES, SCALE_FACTOR, mask_distances=False)
    # its name starts with the gt's, but it lies beside it
    result = precompute_target(
        container, "labels/gt", "labels/gt_done", predictor, block_size=64, progress=False
    )
    assert np.array_equal(read(result.target)[1], volume["target"])


def test_string_arguments_of_the_wrong_type(volume):
    plain = HotDistancePredictor(CLASSES, SCALE_FACTOR, mask_distances=False)
    predictor = volume["predictor"]
    for arguments in [
        (1, "t", plain, {}),
        ("gt", b"t", plain, {}),
        ("gt", "t", predictor, {"mask": 3}),
    ]:
        gt, out, chosen, options = arguments
        with pytest.raises(TypeError, match="must be a dataset name \\(str\\)"):
            precompute_target(volume["container"], gt, out, chosen, **options)
    with pytest.raises(TypeError):
        precompute_target(volume["container"], "gt", "t", plain, None)  # keyword-only
    for name in ["a/../gt", "./t", "a//b", "/"]:
        with pytest.raises(ValueError, match="dataset name inside the container"):
            precompute_target(volume["container"], "gt", name, plain)


def cli(container, *extra):
    return precompute_command(container, "gt", "cli", "mito,er", 10, *extra)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--zarr", "/nonexistent/x.zarr"], "zarr container '/nonexistent/x.zarr' does not exist"),
        (["--gt", "labels"], "gt dataset 'labels' does not exist"),
        (["--mask", "nomask", "--mask-distances"], "mask dataset 'nomask' does not exist"),
        (["--out", "mask"], "output 'mask' already exists"),
        (["--classes", "a,b,c"], "has 2 channels"),
        (["--classes", "a,,b"], "argument --classes: expected class names"),
        (["--block-size", "16,16"], "block_size must be 3 positive ints"),
        (["--block-size", "16,x,16"], "argument --block-size: expected positive voxel counts"),
        (["--block-size", "0"], "argument --block-size: expected positive voxel counts"),
        (["--workers", "0"], "argument --workers: expected a positive integer"),
        (["--scale-factor", "-1"], "argument --scale-factor: expected a positive number"),
    ],
)
def test_command_line_errors(volume, capsys, arguments, message):
    # later options win, so each case overrides one good argument
    try:
        status = main(cli(volume["container"]) + arguments)
    except SystemExit as exit_info:  # argparse's own errors
        status = exit_info.code
    assert status == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("gp-hotdistance")
    assert message in lines[0]
    assert not os.path.exists(os.path.join(volume["container"], "cli"))


def test_python_m_gp_hotdistance(volume):
    container = volume["container"]
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "gp_hotdistance",
            *cli(
                container,
                "--mask",
                "mask",
                "--mask-distances",
                "--block-size",
                "16,24,24",
                "--workers",
                "2",
            ),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "12 blocks, 12 processed, 0 already done" in completed.stdout
    assert np.abs(read(os.path.join(container, "cli"))[1] - volume["target"]).max() <= 1e-3
    assert np.array_equal(
        read(os.path.join(container, "cli_distance_mask"))[1], volume["distance_mask"]
    )


# -- workers through a launcher ------------------------------------------------

LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launcher.py")
ROOT = os.path.dirname(os.path.dirname(LAUNCHER))


def fresh(*options):
    """A worker command template that starts each worker through
    tests/launcher.py in a fresh environment: only PATH and PYTHONPATH (this
    checkout) are passed, nothing else of this process."""
    return (
        f"env -i PATH=/usr/bin:/bin PYTHONPATH={ROOT} {sys.executable} {LAUNCHER} "
        f"{' '.join(options)} {{command}}"
    )


def test_workers_started_by_a_launcher_one_killed(tmp_path, volume):
    """Three workers, each a separate process in a fresh environment; one
    is killed after its first block: its blocks go to the others and the
    result equals the in-memory target."""
    container = str(tmp_path / "launched.zarr")
    write_inputs(container, volume)
    kill = str(tmp_path / "killed")
    plans = []
    result = precompute_target(
        container,
        "gt",
        "target",
        volume["predictor"],
        mask="mask",
        block_size=BLOCK_SIZE,
        num_workers=3,
        progress=False,
        host="127.0.0.1",
        worker_command=fresh("--kill-first", kill),
        on_plan=plans.append,
    )
    assert os.path.exists(kill + ".killed")  # a worker was killed after a block
    assert (result.total_blocks, result.processed_blocks) == (27, 27)
    assert np.abs(read(result.target)[1] - volume["target"]).max() <= 1e-3
    assert np.array_equal(read(result.distance_mask)[1], volume["distance_mask"])
    (plan,) = plans
    assert (plan.blocks, plan.done_blocks, plan.workers) == (27, 0, 3)
    assert plan.block_size == BLOCK_SIZE and plan.context == (5, 11, 11)
    # float32 target (4 channels) and uint8 distance mask (2), no compression
    assert plan.output_bytes == int(np.prod(SHAPE)) * (4 * 4 + 2) + 27
    # the run folder (writer, progress) is gone
    assert not os.path.exists(os.path.join(container, "target_done", "run"))


def test_launcher_that_fails_to_start(tmp_path, volume):
    container = str(tmp_path / "nolauncher.zarr")
    write_inputs(container, volume)
    plain = HotDistancePredictor(CLASSES, SCALE_FACTOR, mask_distances=False)
    with pytest.raises(
        RuntimeError,
        match=r"the worker command '/nonexistent/srun -n1 "
        r".*' failed to start: .*command not found",
    ):
        precompute_target(
            container,
            "gt",
            "target",
            plain,
            block_size=BLOCK_SIZE,
            num_workers=2,
            progress=False,
            host="127.0.0.1",
            worker_command="/nonexistent/srun -n1 {command}",
        )
    done = zarr.open_array(os.path.join(container, "target_done"), mode="r")
    assert not done[...].any()


def test_worker_that_cannot_reach_the_scheduler(tmp_path, volume):
    """The scheduler is announced at an address of a documentation network
    (nothing there): each worker gives up after its connect timeout, and
    the run stops with a message instead of waiting."""
    container = str(tmp_path / "unreachable.zarr")
    write_inputs(container, volume)
    plain = HotDistancePredictor(CLASSES, SCALE_FACTOR, mask_distances=False)
    with pytest.raises(
        RuntimeError,
        match=r"could not reach the scheduler at "
        r"192\.0\.2\.1:\d+ .*DAISY_HOST",
    ):
        precompute_target(
            container,
            "gt",
            "target",
            plain,
            block_size=BLOCK_SIZE,
            num_workers=1,
            progress=False,
            host="192.0.2.1",
            connect_timeout=2,
            worker_command=fresh(),
        )


def test_worker_command_line_errors(capfd):
    # nothing listens on port 1; the worker says so and exits with status 3
    arguments = [
        "worker",
        "--zarr",
        "/nonexistent.zarr",
        "--out",
        "t",
        "--scheduler",
        "127.0.0.1:1",
        "--task-id",
        "t",
        "--worker-id",
        "0",
        "--connect-timeout",
        "1",
    ]
    assert main(arguments) == 3
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach the scheduler at 127.0.0.1:1" in err[0], err
    assert main(arguments[:5] + ["--scheduler", "nohostport"] + arguments[7:]) == 2
    assert "--scheduler must be HOST:PORT" in capfd.readouterr().err


def test_worker_command_template_errors(volume):
    plain = HotDistancePredictor(CLASSES, SCALE_FACTOR, mask_distances=False)
    with pytest.raises(ValueError, match=r"worker_command must contain \{command\}"):
        precompute_target(volume["container"], "gt", "t", plain, worker_command="srun")
    with pytest.raises(TypeError, match="worker_command must be a shell command"):
        precompute_target(volume["container"], "gt", "t", plain, worker_command=["srun"])


# -- one unreadable chunk costs one block ----------------------------------------


def chunk_file(container, dataset, zarr_format, index):
    if zarr_format == 3:
        return os.path.join(container, dataset, "c", *map(str, index))
    with open(os.path.join(container, dataset, ".zarray")) as file:
        separator = json.load(file).get("dimension_separator") or "."
    return os.path.join(container, dataset, *separator.join(map(str, index)).split("/"))


@pytest.mark.parametrize("zarr_format", ZARR_FORMATS)
def test_unreadable_chunk_fails_only_its_blocks(tmp_path, capfd, zarr_format):
    """A (1, 32^3) gt in 8^3 chunks, one chunk truncated; blocks of 8 and a
    padding of 5 voxels: the
    blocks whose read ROI touches that chunk fail, every other block is
    written, stderr stays short; once restored, a rerun writes exactly the
    failed blocks."""
    container = str(tmp_path / "chunk.zarr")
    rng = np.random.default_rng(3)
    gt = (scipy.ndimage.gaussian_filter(rng.random((32, 32, 32)), 2) > 0.5)[None]
    extra = {"zarr_format": zarr_format} if ZARR_3 else {}
    array = prepare_ds(
        os.path.join(container, "gt"),
        gt.shape,
        offset=(0, 0, 0),
        voxel_size=(1, 1, 1),
        axis_names=["c^", "z", "y", "x"],
        types=["channel", "space", "space", "space"],
        chunk_shape=(1, 8, 8, 8),
        dtype=np.uint8,
        **extra,
    )
    array[array.roi] = gt.astype(np.uint8)
    bad = (0, 3, 3, 3)  # the chunk at z, y, x 24:32
    path = chunk_file(container, "gt", zarr_format, bad)
    with open(path, "rb") as file:
        good = file.read()
    with open(path, "wb") as file:
        file.write(good[: len(good) // 2])

    predictor = HotDistancePredictor(["cell"], 1.0, mask_distances=False)
    pad = np.array(predictor.padding((1, 1, 1)))
    # the blocks whose read ROI (the block grown by the padding) overlaps the
    # chunk: an interval test per axis
    chunk_begin, chunk_end = np.array(bad[1:]) * 8, np.array(bad[1:]) * 8 + 8
    expected = {
        index
        for index in np.ndindex(4, 4, 4)
        if np.all(np.array(index) * 8 - pad < chunk_end)
        and np.all(np.array(index) * 8 + 8 + pad > chunk_begin)
    }
    assert 0 < len(expected) < 64
    # the sample checked before the run reads the last block, the bad chunk,
    # too: it leaves that block to the run
    assert (3, 3, 3) in expected
    arguments = precompute_command(
        container, "gt", "target", "cell", 1, "--block-size", "8", "--workers", "2"
    )
    assert main(arguments) == 1
    captured = capfd.readouterr()
    err = captured.err.strip().splitlines()
    final = [line for line in err if line.startswith("gp-hotdistance precompute")]
    assert len(final) == 1, err
    assert len(err) <= len(expected) + 1 + 2, err  # a line per block, a summary
    message = final[0]
    assert f"{len(expected)} of 64 blocks of 'target' failed" in message
    assert "while reading gt dataset 'gt'" in message
    assert f"The other {64 - len(expected)} blocks were written" in message
    assert "run again" in message and f"and {len(expected) - 3} more" in message
    done = zarr.open_array(os.path.join(container, "target_done"), mode="r")[...]
    assert {tuple(i) for i in np.argwhere(done == 0)} == expected

    with open(path, "wb") as file:
        file.write(good)
    assert main(arguments) == 0
    out = capfd.readouterr().out
    assert f"resuming: {64 - len(expected)} of 64 blocks already done" in out
    assert f"64 blocks, {len(expected)} processed, {64 - len(expected)} already done" in out
    gt_array = open_ds(os.path.join(container, "gt"))
    whole = np.asarray(predictor.create_target(gt_array)[gt_array.roi])
    assert np.abs(read(os.path.join(container, "target"))[1] - whole).max() <= 1e-3


# -- a subset: --roi -------------------------------------------------------------


def test_roi_processes_only_the_blocks_covering_it(tmp_path, volume):
    container = str(tmp_path / "roi.zarr")
    write_inputs(container, volume)
    plain = HotDistancePredictor(CLASSES, SCALE_FACTOR, mask_distances=False)
    run = {"block_size": BLOCK_SIZE, "num_workers": 2, "progress": False}
    # z 200+150 .. +100 covers z blocks 0 and 1 (160 world units each); y 40+4
    # .. +60 and x -80 .. -80+1 cover the first block only
    roi = ((350, 44, -80), (100, 60, 1))
    result = precompute_target(container, "gt", "target", plain, roi=roi, **run)
    assert (result.total_blocks, result.processed_blocks) == (2, 2)
    done = zarr.open_array(os.path.join(container, "target_done"), mode="r")[...]
    assert {tuple(i) for i in np.argwhere(done)} == {(0, 0, 0), (1, 0, 0)}
    target_array, target = read(result.target)
    assert target_array.roi == open_ds(os.path.join(container, "gt")).roi  # full extent
    inside = np.s_[:, :32, :16, :16]
    assert np.abs(target[inside] - volume["target"][inside]).max() <= 1e-3
    # the rest of the volume later: the two blocks are skipped
    rest = precompute_target(container, "gt", "target", plain, **run)
    assert (rest.total_blocks, rest.skipped_blocks, rest.processed_blocks) == (27, 2, 25)
    assert np.abs(read(rest.target)[1] - volume["target"]).max() <= 1e-3


@pytest.mark.parametrize(
    "roi, error, message",
    [
        (((0, 0, 0), (10, 10, 10)), ValueError, "must lie inside the gt's ROI"),
        (((200, 40, -80), (0, 8, 8)), ValueError, "roi must not be empty"),
        (((200, 40), (8, 8)), ValueError, "roi must have 3 spatial axes"),
        ("200,40,-80", TypeError, "roi must be a funlib Roi or \\(offset, shape\\)"),
    ],
)
def test_bad_roi(volume, roi, error, message):
    plain = HotDistancePredictor(CLASSES, SCALE_FACTOR, mask_distances=False)
    with pytest.raises(error, match=message):
        precompute_target(volume["container"], "gt", "t", plain, roi=roi)
    assert not os.path.exists(os.path.join(volume["container"], "t"))


# -- consolidated metadata, and a format the stack cannot read ---------------------


@pytest.mark.parametrize("zarr_format", ZARR_FORMATS)
@pytest.mark.parametrize("consolidated", [True, False])
def test_consolidated_metadata_is_refreshed(tmp_path, volume, zarr_format, consolidated):
    container = str(tmp_path / "consolidated.zarr")
    extra = {"zarr_format": zarr_format} if ZARR_3 else {}
    zarr.open_group(container, mode="w", **extra)
    write_inputs(container, volume, zarr_format=zarr_format if ZARR_3 else None)
    if consolidated:
        zarr.consolidate_metadata(container, **extra)
    plain = HotDistancePredictor(CLASSES, SCALE_FACTOR, mask_distances=False)
    precompute_target(
        container, "gt", "labels/target", plain, block_size=BLOCK_SIZE, progress=False
    )
    if zarr_format == 2:
        assert os.path.exists(os.path.join(container, ".zmetadata")) == consolidated
    else:
        with open(os.path.join(container, "zarr.json")) as file:
            root = json.load(file)
        assert (root.get("consolidated_metadata") is not None) == consolidated
    if consolidated:
        group = zarr.open_consolidated(container, mode="r", **extra)
        assert group["labels/target"].shape == (4, *SHAPE)
        assert "labels/target_done" in group


def test_format_3_input(tmp_path):
    """zarr 2 cannot read a format-3 gt: the message says so (not "does not
    exist"); zarr 3 reads it, and the target is the in-memory one."""
    plain = HotDistancePredictor(["a"], SCALE_FACTOR, mask_distances=False)
    if ZARR_3:
        container = str(tmp_path / "three.zarr")
        data = np.zeros((1, 8, 8, 8), np.uint8)
        data[0, 2:6, 2:6, 2:6] = 1
        gt = write_dataset(os.path.join(container, "gt3"), data, zarr_format=3)
        assert os.path.exists(os.path.join(container, "gt3", "zarr.json"))
        precompute_target(container, "gt3", "t", plain, progress=False)
        target = open_ds(os.path.join(container, "t"))
        assert np.array_equal(target[target.roi], plain.create_target(gt)[gt.roi])
        return
    container = str(tmp_path / "three.zarr")
    os.makedirs(os.path.join(container, "gt3"))
    with open(os.path.join(container, "gt3", "zarr.json"), "w") as file:
        json.dump({"zarr_format": 3, "node_type": "array", "shape": [8, 8, 8]}, file)
    with pytest.raises(
        ValueError,
        match=r"gt dataset 'gt3' in .* is zarr format 3 "
        r"\(zarr.json\), which zarr 2\..* cannot read",
    ):
        precompute_target(container, "gt3", "t", plain)


# -- without the blockwise extra; --version ----------------------------------------

WITHOUT_DAISY = """
import sys
import gp_hotdistance  # gunpowder imports daisy and tqdm itself
sys.modules["daisy"] = None  # as if not installed
try:
    import gp_hotdistance.precompute
except ImportError as error:
    print("import:", error)
from gp_hotdistance.__main__ import main
sys.exit(main(["precompute", "--zarr", "x.zarr", "--gt", "gt", "--out", "t",
               "--classes", "a", "--scale-factor", "1"]))
"""


def test_without_the_blockwise_extra(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-c", WITHOUT_DAISY],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    extra = 'pip install "gp_hotdistance[blockwise]"'
    assert completed.returncode == 2, completed.stderr
    assert completed.stdout.startswith("import: gp_hotdistance.precompute needs daisy")
    assert extra in completed.stdout
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and extra in lines[0], lines


def test_the_package_does_not_import_daisy_or_tqdm():
    """Only gp_hotdistance.precompute (and the worker command) use them: no
    other module imports them (gunpowder does, so sys.modules cannot tell)."""
    import gp_hotdistance

    # the package under test: the checkout's, or the installed wheel's
    package = os.path.dirname(gp_hotdistance.__file__)
    offenders = []
    for directory, _, files in os.walk(package):
        if os.path.join(package, "precompute") in directory or "__pycache__" in directory:
            continue
        for name in files:
            if not name.endswith(".py"):
                continue
            with open(os.path.join(directory, name)) as file:
                tree = ast.parse(file.read())
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module]
                if any(n.split(".")[0] in ("daisy", "tqdm") for n in names):
                    offenders.append(f"{name}:{node.lineno}")
    assert not offenders


def test_version(capsys):
    import gp_hotdistance

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"gp-hotdistance {gp_hotdistance.__version__}"
