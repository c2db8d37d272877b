"""Inputs a hostile but realistic user passes: each was accepted silently or
failed with an error from inside numpy or numba before, and now gets a
clear ``ValueError`` / ``TypeError`` that names the argument (or, where the
input is valid, the right answer, checked against brute force)."""

import os

import numpy as np
import pytest

from commands import precompute_command
from gp_hotdistance import face_distance
from oracles import brute_force_face_distance


def test_face_distance_refuses_nan_labels():
    # before: NaN differs from itself, so every NaN voxel was a label of its
    # own and got faces all round ([1, 1, 1] here), silently
    with pytest.raises(ValueError, match="^labels holds 2 NaN values"):
        face_distance(np.array([np.nan, np.nan, 1.0]), (2,))


def test_face_distance_refuses_object_labels():
    # before: numba's TypingError from inside the kernel
    with pytest.raises(TypeError, match="^labels must be a bool, integer or float array.*object"):
        face_distance(np.array([0, 1], dtype=object), (1,))


@pytest.mark.parametrize(
    "dtype, outside",
    [
        (np.uint8, 256),
        (np.uint8, -1),
        (np.int64, 1.5),
        (np.bool_, 2),
        (np.int64, "x"),
        (np.float64, np.nan),
        (np.int64, 2**70),
    ],
)
def test_face_distance_refuses_an_outside_the_dtype_does_not_hold(dtype, outside):
    # before: 1.5 was cast to 1 and 2 to True silently; 256, -1, 2**70 and
    # 'x' raised numpy's OverflowError / ValueError without naming outside
    labels = np.array([0, 0, 1]).astype(dtype)
    with pytest.raises(ValueError, match="^outside must be a label that labels' dtype"):
        face_distance(labels, outside=outside)


@pytest.mark.parametrize(
    "dtype, outside",
    [(np.uint8, 1), (np.uint8, np.int64(0)), (np.int64, 1.0), (np.float32, 0.5), (np.bool_, True)],
)
def test_face_distance_with_an_exact_outside_equals_brute_force(dtype, outside):
    rng = np.random.default_rng(3)
    labels = (rng.random((4, 5, 3)) < 0.5).astype(dtype)
    if dtype is np.float32:
        labels = labels * np.float32(0.5)
    voxel_size = (3.0, 1.0, 2.0)
    # the oracle: the array surrounded by one layer of outside, brute force
    padded = np.pad(labels, 1, constant_values=labels.dtype.type(outside))
    expected = brute_force_face_distance(padded, voxel_size)[1:-1, 1:-1, 1:-1]
    np.testing.assert_allclose(
        face_distance(labels, voxel_size, outside=outside), expected, rtol=1e-6
    )


def counts_node():
    import gunpowder as gp

    from gp_hotdistance import BalanceHotDistance, HotDistancePredictor

    predictor = HotDistancePredictor(["a", "b"], 8.0, mask_distances=False)
    return BalanceHotDistance(predictor, gp.ArrayKey("G"), gp.ArrayKey("T"), gp.ArrayKey("W"))


def test_load_state_dict_refuses_uint64_counts_past_int64():
    # before: 2**64 - 1 became -1 in every count, silently
    node = counts_node()
    with pytest.raises(ValueError, match=r"moving_class_counts'\] must hold counts below 2\*\*61"):
        node.load_state_dict({"moving_class_counts": np.full((4, 2), 2**64 - 1, np.uint64)})
    assert node.state_dict()["moving_class_counts"] == [[0, 0]] * 4
    # sums of two counts past int64 are refused too (they would wrap)
    with pytest.raises(ValueError, match=r"must hold counts below 2\*\*61"):
        node.load_state_dict({"moving_class_counts": np.full((4, 2), 2**62, np.uint64)})
    # the largest count allowed still loads exactly
    big = np.full((4, 2), 2**61 - 1, np.uint64)
    node.load_state_dict({"moving_class_counts": big})
    assert node.state_dict()["moving_class_counts"] == [[2**61 - 1] * 2] * 4


@pytest.mark.parametrize("channels", ["ab", 3, [1, 2], b"ab"])
def test_load_state_dict_refuses_channels_that_are_not_a_list_of_names(channels):
    # before: the string 'ab' matched ['a', 'b'] and loaded, and 3 raised
    # "'int' object is not iterable"
    with pytest.raises(TypeError, match=r"^state\['channels'\] must be a list of class names"):
        counts_node().load_state_dict({"channels": channels, "moving_class_counts": [[1, 2]] * 4})


def test_load_state_dict_takes_a_tuple_of_names():
    node = counts_node()
    node.load_state_dict({"channels": ("a", "b"), "moving_class_counts": [[1, 2]] * 4})
    assert node.state_dict() == {"channels": ["a", "b"], "moving_class_counts": [[1, 2]] * 4}


def test_a_rerun_after_the_gt_changed_says_that_done_blocks_were_kept(tmp_path, capsys):
    # before: the second run printed "0 processed, 1 already done" and kept the
    # target of the old gt without a word; now it says how to recompute
    from funlib.persistence import open_ds, prepare_ds

    from gp_hotdistance import HotDistancePredictor
    from gp_hotdistance.__main__ import main

    container = str(tmp_path / "data.zarr")
    gt = np.zeros((1, 8, 8, 8), np.uint8)
    gt[0, 2:5, 2:5, 2:5] = 1
    array = prepare_ds(
        f"{container}/gt",
        gt.shape,
        offset=(0, 0, 0),
        voxel_size=(4, 4, 4),
        axis_names=["c^", "z", "y", "x"],
        dtype=np.uint8,
    )
    array[array.roi] = gt
    arguments = precompute_command(container, "gt", "target", "a", 8)
    assert main(arguments) == 0
    assert "kept" not in capsys.readouterr().out
    array = open_ds(f"{container}/gt", mode="r+")
    array[array.roi] = np.roll(gt, 3, axis=1)
    assert main(arguments) == 0
    out = capsys.readouterr().out
    assert "0 processed, 1 already done" in out
    assert "1 block done by an earlier run was kept as it is" in out and "--overwrite" in out
    assert main(arguments + ["--overwrite"]) == 0
    # the oracle: the whole volume's target of the new gt, in memory
    predictor = HotDistancePredictor(["a"], 8.0, mask_distances=False)
    expected = np.asarray(predictor.create_target(open_ds(f"{container}/gt"))[array.roi])
    target = open_ds(f"{container}/target")
    np.testing.assert_array_equal(target[target.roi], expected)


def test_a_complete_run_rerun_with_mask_distances_names_the_setting(tmp_path, capsys):
    # before: "'target' ... is not an interrupted precompute run to resume",
    # which hid that the run was complete and only a setting differed
    from funlib.persistence import prepare_ds

    from gp_hotdistance.__main__ import main

    container = str(tmp_path / "data.zarr")
    for name, channels in (("gt", True), ("mask", False)):
        shape = ((1,) if channels else ()) + (8, 8, 8)
        names = (["c^"] if channels else []) + ["z", "y", "x"]
        array = prepare_ds(
            f"{container}/{name}",
            shape,
            offset=(0, 0, 0),
            voxel_size=(4, 4, 4),
            axis_names=names,
            dtype=np.uint8,
        )
        array[array.roi] = np.ones(shape, np.uint8)
    arguments = precompute_command(container, "gt", "target", "a", 8)
    assert main(arguments) == 0
    capsys.readouterr()
    assert main(arguments + ["--mask", "mask", "--mask-distances"]) == 2
    error = capsys.readouterr().err
    assert "from a run with other settings" in error and "mask" in error
    # a removed output of a run with the same settings is named as missing
    import shutil

    shutil.rmtree(f"{container}/target")
    assert main(arguments) == 2
    assert "'target' is missing, so it cannot be resumed" in capsys.readouterr().err


def test_to_target_range_takes_a_numpy_integer_channel_axis():
    # before: np.int64(1), e.g. from an array's shape arithmetic, was a TypeError
    from scipy.special import expit

    from gp_hotdistance import HotDistancePredictor

    predictor = HotDistancePredictor(["a"], 8.0, mask_distances=False)
    output = np.array([[[-2.0, 0.0, 3.0], [-1.5, 0.2, 1.5]]])  # (batch 1, 2 channels, 3)
    result = predictor.to_target_range(output, channel_axis=np.int64(1))
    # the oracle: the logistic function and a clip, written out
    np.testing.assert_allclose(result[0, 0], expit(output[0, 0]), rtol=1e-6)
    np.testing.assert_array_equal(result[0, 1], [-1.0, 0.2, 1.0])


@pytest.mark.parametrize("dtype", [str, complex, object])
def test_to_target_range_refuses_a_non_numeric_prediction(dtype):
    # before: strings raised numpy's "could not convert string to float", and
    # complex numbers lost their imaginary part with only a ComplexWarning
    from gp_hotdistance import HotDistancePredictor

    predictor = HotDistancePredictor(["a"], 8.0, mask_distances=False)
    with pytest.raises(TypeError, match="^prediction must be a numeric"):
        predictor.to_target_range(np.zeros((2, 3)).astype(dtype))


def test_a_log_dir_that_cannot_be_made_is_refused_before_anything_is_written(tmp_path, capsys):
    # before: every daisy worker failed on it, after the outputs were made,
    # and the run left an empty target and done markers behind
    from funlib.persistence import prepare_ds

    from gp_hotdistance.__main__ import main

    container = str(tmp_path / "data.zarr")
    array = prepare_ds(
        f"{container}/gt",
        (1, 8, 8, 8),
        offset=(0, 0, 0),
        voxel_size=(4, 4, 4),
        axis_names=["c^", "z", "y", "x"],
        dtype=np.uint8,
    )
    array[array.roi] = np.ones((1, 8, 8, 8), np.uint8)
    blocker = tmp_path / "a_file"
    blocker.write_text("mine")
    arguments = precompute_command(container, "gt", "target", "a", 8)
    assert main(arguments + ["--log-dir", str(blocker / "logs")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "log_dir" in error[0] and "a_file" in error[0]
    assert set(os.listdir(container)) - {".zgroup", "zarr.json"} == {"gt"}
    assert blocker.read_text() == "mine"
    # a log dir that can be made works
    assert main(arguments + ["--log-dir", str(tmp_path / "logs")]) == 0
    assert (tmp_path / "logs").is_dir()
