"""Inputs a hostile but realistic user passes: each was accepted silently or
failed with an error from inside numpy or numba before, and now gets a
clear ``ValueError`` / ``TypeError`` that names the argument (or, where the
input is valid, the right answer, checked against brute force)."""

import numpy as np
import pytest
from oracles import brute_force_face_distance

from gp_hotdistance import face_distance


def test_face_distance_refuses_nan_labels():
    # before: NaN differs from itself, so every NaN voxel was a label of its
    # own and got faces all round ([1, 1, 1] here), silently
    with pytest.raises(ValueError, match="^labels holds 2 NaN values"):
        face_distance(np.array([np.nan, np.nan, 1.0]), (2,))


def test_face_distance_refuses_object_labels():
    # before: numba's TypingError from inside the kernel
    with pytest.raises(TypeError, match="^labels must be an array of numbers.*object"):
        face_distance(np.array([0, 1], dtype=object), (1,))


@pytest.mark.parametrize(
    "dtype, outside",
    [(np.uint8, 256), (np.uint8, -1), (np.int64, 1.5), (np.bool_, 2), (np.int64, "x"),
     (np.float64, np.nan), (np.int64, 2**70)],
)
def test_face_distance_refuses_an_outside_the_dtype_does_not_hold(dtype, outside):
    # before: 1.5 was cast to 1 and 2 to True silently; 256, -1, 2**70 and
    # 'x' raised numpy's OverflowError / ValueError without naming outside
    labels = np.array([0, 0, 1]).astype(dtype)
    with pytest.raises(ValueError, match="^outside must be a label that labels' dtype"):
        face_distance(labels, outside=outside)


@pytest.mark.parametrize(
    "dtype, outside", [(np.uint8, 1), (np.uint8, np.int64(0)), (np.int64, 1.0),
                       (np.float32, 0.5), (np.bool_, True)],
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
    np.testing.assert_allclose(face_distance(labels, voxel_size, outside=outside), expected,
                               rtol=1e-6)
