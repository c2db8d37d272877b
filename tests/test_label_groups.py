"""Label images with class groups: every entry point gives exactly what the
binary channels made by hand with ``np.isin`` give, and instance-aware
distances equal brute force over the faces between different ids."""

import os

import dask
import gunpowder as gp
import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array, open_ds, prepare_ds
from scipy import ndimage

from commands import precompute_command
from gp_hotdistance import (
    AddHotDistance,
    BalanceHotDistance,
    HotDistancePredictor,
    instance_segmentation,
)
from gp_hotdistance.__main__ import main
from gp_hotdistance.precompute import precompute_target
from oracles import brute_force_face_distance

# forked PreCache workers and daisy workers hang on dask's threaded scheduler
dask.config.set(scheduler="synchronous")

CLASSES = ["mito", "mito_mem", "er", "cell"]
# overlapping groups; "cell" is every non-zero id
GROUPS = {"mito": [3, 4, 5], "mito_mem": [4], "er": [7, 8], "cell": "nonzero"}
SCALE = 20.0


def label_image(shape, seed, ids=10):
    """Smooth regions of ids 0 to ``ids - 1``."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), 2)
    edges = np.quantile(noise, np.linspace(0, 1, ids + 1)[1:-1])
    return np.digitize(noise, edges).astype(np.uint16)


def by_hand(labels, groups=GROUPS, classes=CLASSES):
    """The binary channels of ``labels``, made with ``np.isin``."""
    channels = []
    for name in classes:
        ids = groups[name]
        channels.append(labels != 0 if ids == "nonzero" else np.isin(labels, ids))
    return np.stack(channels).astype(np.uint8)


def as_array(data, offset, voxel_size):
    spatial = len(voxel_size)
    channels = data.ndim - spatial
    return Array(
        data,
        offset=offset,
        voxel_size=voxel_size,
        axis_names=["c^"] * channels + ["z", "y", "x"][-spatial:],
        types=["channel"] * channels + ["space"] * spatial,
    )


def predictors(**kwargs):
    grouped = HotDistancePredictor(CLASSES, SCALE, True, groups=GROUPS, **kwargs)
    binary = HotDistancePredictor(CLASSES, SCALE, True)
    return grouped, binary


# ------------------------------------------------------------------- predictor


@pytest.mark.parametrize("dtype", ["<u2", ">u8", "<i4", ">i2"])
def test_predictor_label_image_equals_its_binary_channels(dtype):
    labels = label_image((10, 24, 20), seed=1).astype(dtype)
    channels = by_hand(labels)
    grouped, binary = predictors()
    voxel_size = (40, 8, 8)
    gt, gt_binary = (
        as_array(labels, (0, 0, 0), voxel_size),
        as_array(channels, (0, 0, 0), voxel_size),
    )
    target = grouped.create_target(gt)
    expected = binary.create_target(gt_binary)
    np.testing.assert_array_equal(target[target.roi], expected[expected.roi])
    mask = as_array((labels != 2).astype(np.uint8), (0, 0, 0), voxel_size)
    counts = np.arange(16, dtype=np.int64).reshape(8, 2)
    weights, new_counts = grouped.create_weight(gt, target, mask, counts)
    expected_weights, expected_counts = binary.create_weight(gt_binary, expected, mask, counts)
    np.testing.assert_array_equal(weights[weights.roi], expected_weights[expected_weights.roi])
    np.testing.assert_array_equal(new_counts, expected_counts)
    np.testing.assert_array_equal(
        grouped.process(labels, voxel_size), binary.process(channels, voxel_size)
    )


def test_big_endian_uint64_ids_beyond_float_precision():
    # 2**60 + 1 and 2**60 + 2 are one float64: compared as floats they would merge
    big = 2**60
    labels = np.zeros((4, 6), np.dtype(">u8"))
    labels[:, :2] = big + 1
    labels[:, 2:4] = big + 2
    predictor = HotDistancePredictor(
        ["a", "b"], 2.0, False, groups={"a": [big + 1], "b": [big + 2]}
    )
    target = predictor.compute_target(labels, (1, 1))
    np.testing.assert_array_equal(target[0], labels == big + 1)
    np.testing.assert_array_equal(target[1], labels == big + 2)


def test_unannotated_ids_zero_the_mask_of_every_class():
    labels = label_image((8, 20, 20), seed=2)
    grouped, binary = predictors(unannotated=[9, 6])
    user_mask = np.ones(labels.shape, np.uint8)
    user_mask[:, :5] = 0
    target = grouped.compute_target(labels, (4, 4, 4))
    weights, counts = grouped.process_weight(labels, target, user_mask, (4, 4, 4))
    known = user_mask & ~np.isin(labels, [9, 6])
    expected, expected_counts = binary.process_weight(
        by_hand(labels), target, known.astype(np.uint8), (4, 4, 4)
    )
    np.testing.assert_array_equal(weights, expected)
    np.testing.assert_array_equal(counts, expected_counts)
    assert np.all(weights[:, np.isin(labels, [9, 6])] == 0)
    # without a user mask the unannotated ids alone make it
    weights, _ = grouped.process_weight(labels, target, None, (4, 4, 4))
    expected, _ = binary.process_weight(
        by_hand(labels), target, (~np.isin(labels, [9, 6])).astype(np.uint8), (4, 4, 4)
    )
    np.testing.assert_array_equal(weights, expected)


def test_nonzero_class_of_a_hundred_thousand_ids():
    shape = (40, 50, 50)  # 10**5 voxels, each its own id, some of them 0
    rng = np.random.default_rng(3)
    labels = rng.permutation(np.arange(1, 10**5 + 1, dtype=np.uint64)).reshape(shape)
    labels[rng.random(shape) < 0.2] = 0
    voxel_size = (10, 4, 6)
    semantic = HotDistancePredictor(["cell"], 8.0, False, groups={"cell": "nonzero"})
    target = semantic.compute_target(labels, voxel_size)
    binary = HotDistancePredictor(["cell"], 8.0, False)
    np.testing.assert_array_equal(target, binary.compute_target(labels != 0, voxel_size))
    # every voxel an instance: each one's nearest face between different ids
    # is half the smallest voxel size away
    instances = HotDistancePredictor(
        ["cell"], 8.0, False, groups={"cell": "nonzero"}, instances=["cell"]
    )
    target = instances.compute_target(labels, voxel_size)
    inside = labels != 0
    np.testing.assert_allclose(target[1][inside], np.tanh(2.0 / 8.0), rtol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_instance_aware_distances_equal_brute_force(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(3, 8, size=3))
    voxel_size = tuple(float(v) for v in rng.choice([1.0, 2.0, 3.5], size=3))
    labels = rng.integers(0, 6, size=shape).astype(np.int32)
    groups = {"a": [1, 2, 3], "b": [3, 5]}
    predictor = HotDistancePredictor(["a", "b"], 3.0, False, groups=groups, instances=["a", "b"])
    raw = predictor.compute_target(labels, voxel_size, normalize=None)
    for c, name in enumerate(["a", "b"]):
        inside = np.isin(labels, groups[name])
        ids = np.where(inside, labels, 0)
        distance = brute_force_face_distance(ids, voxel_size)
        expected = np.where(inside, distance, -distance)
        np.testing.assert_allclose(raw[2 + c], expected, rtol=1e-6)
        np.testing.assert_array_equal(raw[c], inside)


def test_touching_instances_come_apart_only_with_instance_aware_distances():
    labels = np.zeros((14, 14, 22), np.uint8)
    labels[3:11, 3:11, 3:11] = 1
    labels[3:11, 3:11, 11:19] = 2  # touches the first cube along a whole face
    groups = {"obj": [1, 2]}
    voxel_size, scale = (1, 1, 1), 4.0
    found = {}
    for name, instances in [("semantic", None), ("instances", ["obj"])]:
        predictor = HotDistancePredictor(["obj"], scale, False, groups=groups, instances=instances)
        distance = predictor.compute_target(labels, voxel_size)[1]
        # above the outer layer of voxels (half a voxel from a face)
        segmentation = instance_segmentation(
            distance,
            voxel_size,
            threshold=float(np.tanh(1.0 / scale)),
            scale_factor=scale,
        )
        found[name] = int(segmentation.max())
    assert found == {"semantic": 1, "instances": 2}


# ----------------------------------------------------------------------- nodes


def pipeline_batches(gt, mask, predictor, offset, voxel_size, padding, rois=None, seeds=()):
    """Batches of target and weights; with ``rois`` at those ROIs, else at
    ``gp.RandomLocation``'s choice (returned as ``rois``)."""
    gt_key, mask_key = gp.ArrayKey("GT"), gp.ArrayKey("MASK")
    target_key, weights_key = gp.ArrayKey("TARGET"), gp.ArrayKey("WEIGHTS")
    shift_key = gp.ArrayKey("SHIFT")
    sources = (
        gp.ArraySource(gt_key, as_array(gt, offset, voxel_size), interpolatable=False),
        gp.ArraySource(mask_key, as_array(mask, offset, voxel_size), interpolatable=False),
    ) + gp.MergeProvider()
    pipeline = sources + gp.Pad(gt_key, padding) + gp.Pad(mask_key, padding)
    if rois is None:
        pipeline += gp.RandomLocation(random_shift_key=shift_key)
    balance = BalanceHotDistance(predictor, gt_key, target_key, weights_key, mask_key)
    pipeline += AddHotDistance(predictor, gt_key, target_key, mask_key) + balance
    size = Coordinate(6, 16, 16) * voxel_size
    results, used = [], []
    with gp.build(pipeline):
        for i in range(3):
            request = gp.BatchRequest()
            roi = Roi(offset, size) if rois is None else rois[i]
            request[target_key] = gp.ArraySpec(roi=roi)
            request[weights_key] = gp.ArraySpec(roi=roi)
            if rois is None:
                request[shift_key] = gp.ArraySpec(nonspatial=True)
            batch = pipeline.request_batch(request)
            if rois is None:
                roi = roi.shift(Coordinate(batch[shift_key].data))
            used.append(roi)
            results.append(
                (batch[target_key].data, batch[weights_key].data, balance.moving_class_counts)
            )
    return results, used


def test_nodes_with_random_location_and_pad_equal_the_binary_channels():
    voxel_size, offset = Coordinate(20, 8, 8), Coordinate(-100, 40, 0)
    labels = label_image((14, 40, 40), seed=5).astype(">u8")
    mask = np.ones(labels.shape, np.uint8)
    mask[:, :6] = 0
    grouped, binary = predictors(unannotated=[9])
    padding = Coordinate(4, 16, 16) * voxel_size
    got, rois = pipeline_batches(labels, mask, grouped, offset, voxel_size, padding)
    # the unannotated ids as a mask, and the groups as binary channels by hand
    known = (mask & ~np.isin(labels, [9])).astype(np.uint8)
    expected, _ = pipeline_batches(
        by_hand(labels), known, binary, offset, voxel_size, padding, rois=rois
    )
    for (target, weights, counts), (target2, weights2, counts2) in zip(got, expected):
        np.testing.assert_array_equal(target, target2)
        np.testing.assert_array_equal(weights, weights2)
        np.testing.assert_array_equal(counts, counts2)


# ------------------------------------------------------------------ precompute


def write(path, data, voxel_size=(10, 4, 4)):
    channels = data.ndim - 3
    array = prepare_ds(
        path,
        data.shape,
        offset=(0, 0, 0),
        voxel_size=voxel_size,
        axis_names=["c^"] * channels + ["z", "y", "x"],
        types=["channel"] * channels + ["space"] * 3,
        dtype=data.dtype,
    )
    array[array.roi] = data


def test_precompute_label_image_equals_its_binary_channels(tmp_path, capsys):
    container = str(tmp_path / "data.zarr")
    labels = label_image((20, 24, 24), seed=6).astype(np.uint64)
    write(os.path.join(container, "labels"), labels)
    write(os.path.join(container, "mask"), (labels != 1).astype(np.uint8))
    grouped = HotDistancePredictor(CLASSES, 10.0, True, groups=GROUPS, unannotated=[9])
    result = precompute_target(
        container, "labels", "target", grouped, mask="mask", block_size=(8, 16, 16), progress=False
    )
    binary = HotDistancePredictor(CLASSES, 10.0, True)
    expected = binary.compute_target(by_hand(labels), (10, 4, 4))
    target = open_ds(result.target)
    assert np.abs(target[target.roi] - expected).max() <= binary.tolerance
    known = (labels != 1) & ~np.isin(labels, [9])
    expected_mask = binary.create_distance_mask(expected[4:], known.astype(np.uint8), (10, 4, 4))
    distance_mask = open_ds(result.distance_mask)
    # the blocks see the whole volume's unknown region within the trust reach
    np.testing.assert_array_equal(distance_mask[distance_mask.roi], expected_mask)

    # a resume with other groups is refused, naming both
    other = HotDistancePredictor(CLASSES, 10.0, True, groups=dict(GROUPS, er=[7]), unannotated=[9])
    with pytest.raises(
        FileExistsError, match=r"groups: .*'er': \[7, 8\].* then, .*'er': \[7\].* now"
    ):
        precompute_target(container, "labels", "target", other, mask="mask", progress=False)

    # the command line, groups as name=ids
    status = main(
        precompute_command(
            container,
            "labels",
            "cli",
            ",".join(CLASSES),
            10,
            "--groups",
            "mito=3,4,5;mito_mem=4;er=7,8;cell=nonzero",
            "--block-size",
            "8,16,16",
        )
    )
    assert status == 0, capsys.readouterr().err
    cli = open_ds(os.path.join(container, "cli"))
    plain = HotDistancePredictor(CLASSES, 10.0, False).compute_target(by_hand(labels), (10, 4, 4))
    assert np.abs(cli[cli.roi] - plain).max() <= binary.tolerance
    # and as JSON, where a binary dataset with groups is refused
    status = main(precompute_command(container, "mask", "cli2", "a", 10, "--groups", '{"a": [1]}'))
    assert status == 0
    write(os.path.join(container, "channels"), by_hand(labels))
    status = main(
        precompute_command(
            container,
            "channels",
            "cli3",
            ",".join(CLASSES),
            10,
            "--groups",
            '{"mito": [3], "mito_mem": [4], "er": [7], "cell": "nonzero"}',
        )
    )
    assert status == 2
    assert "label image without a channel axis" in capsys.readouterr().err


@pytest.mark.parametrize("groups", ["mito=3;mito=4;er=7", '{"mito": [3], "mito": [4], "er": [7]}'])
def test_the_command_line_refuses_a_class_named_twice_in_groups(groups, tmp_path, capsys):
    # before: the later entry replaced the earlier one, and id 3 was dropped
    argv = ["precompute", "--zarr", str(tmp_path / "none.zarr"), "--gt", "labels"]
    argv += ["--out", "t", "--classes", "mito,er", "--groups", groups, "--scale-factor", "10"]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "groups names the class 'mito' twice" in capsys.readouterr().err


# ------------------------------------------------------------ funlib arrays


@pytest.mark.parametrize("chunks", [(4, 5, 6), (10, 24, 20), (3, 24, 7)])
def test_arrays_of_several_chunks_and_sub_rois_are_read_whole(chunks):
    """The predictor reads a funlib Array's dask graph in this thread; the
    result must equal numpy's slicing, whatever the chunks and ROI."""
    import dask.array as da

    labels = label_image((10, 24, 20), seed=8)
    voxel_size = (40, 8, 8)
    names = {"axis_names": ["z", "y", "x"], "types": ["space"] * 3}
    whole = Array(
        da.from_array(labels, chunks=chunks), offset=(0, 0, 0), voxel_size=voxel_size, **names
    )
    # a sliced dask array: its graph takes parts of several chunks
    part = Array(
        da.from_array(labels, chunks=chunks)[1:8, 2:22, 3:18],
        offset=(40, 16, 24),
        voxel_size=voxel_size,
        **names,
    )
    assert part.roi == Roi((40, 16, 24), (280, 160, 120))
    grouped, binary = predictors()
    for array, data in [(whole, labels), (part, labels[1:8, 2:22, 3:18])]:
        target = grouped.create_target(array)
        assert target.roi == array.roi
        expected = binary.compute_target(by_hand(data), voxel_size)
        np.testing.assert_array_equal(target[target.roi], expected)
