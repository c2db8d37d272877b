"""The core's distances, targets and weights against independent oracles."""

import math

import numpy as np
import pytest
from scipy import ndimage

import gp_hotdistance as hd
from oracles import (
    brute_force_face_distance,
    doubled_grid_face_distance,
    reference_hot_distance_target,
)

rng = np.random.default_rng(20261124)


def random_labels(shape, fraction=0.4):
    return (rng.random(shape) < fraction).astype(np.uint8)


def random_voxel_size(ndim):
    return tuple(float(v) for v in rng.uniform(0.5, 6.0, size=ndim))


CASES = [
    ((17,), (3.0,)),
    ((9, 13), (4.0, 1.5)),
    ((6, 7, 8), (40.0, 4.0, 4.0)),
    ((5, 9, 4), (1.0, 1.0, 1.0)),
    ((1, 8, 8), (2.0, 3.0, 5.0)),
    ((8, 1, 6), (2.0, 3.0, 5.0)),
]


@pytest.mark.parametrize("shape,voxel_size", CASES)
@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_face_distance_equals_brute_force(shape, voxel_size, fraction):
    labels = random_labels(shape, fraction)
    expected = brute_force_face_distance(labels, voxel_size)
    got = hd.face_distance(labels, voxel_size)
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-6)


@pytest.mark.parametrize("trial", range(20))
def test_face_distance_equals_brute_force_random(trial):
    ndim = int(rng.integers(1, 4))
    shape = tuple(int(s) for s in rng.integers(1, 10, size=ndim))
    voxel_size = random_voxel_size(ndim)
    labels = random_labels(shape, rng.random())
    expected = brute_force_face_distance(labels, voxel_size)
    got = hd.face_distance(labels, voxel_size)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-6)


def test_face_distance_multi_label():
    labels = rng.integers(0, 4, size=(6, 7, 5)).astype(np.int64) * 1000
    voxel_size = (3.0, 2.0, 1.0)
    np.testing.assert_allclose(
        hd.face_distance(labels, voxel_size),
        brute_force_face_distance(labels, voxel_size),
        rtol=1e-6,
    )


@pytest.mark.parametrize("voxel_size", [(8, 8, 8), (40, 4, 4)])
def test_target_equals_doubled_grid_on_blobs(voxel_size):
    smooth = ndimage.gaussian_filter(rng.random((2, 40, 48, 36)), (0, 3, 3, 3))
    gt = (smooth > np.quantile(smooth, 0.6)).astype(np.uint8)
    gt[1] = smooth[1] > np.quantile(smooth[1], 0.95)
    expected = reference_hot_distance_target(gt, voxel_size, 50.0)
    got = hd.hot_distance_target(gt, voxel_size, 50.0)
    assert np.abs(got - expected).max() <= 1e-5


def test_oracles_agree_with_each_other():
    labels = random_labels((7, 6, 9))
    voxel_size = (5.0, 2.0, 3.0)
    np.testing.assert_allclose(
        doubled_grid_face_distance(labels, voxel_size),
        brute_force_face_distance(labels, voxel_size),
        rtol=1e-6,
    )


def test_closed_form_1d():
    # faces at 2.5 and 5.5 (index units), voxel size 2
    labels = np.array([0, 0, 0, 1, 1, 1, 0, 0])
    got = hd.signed_face_distance(labels, (2.0,))
    expected = np.array([-5, -3, -1, 1, 3, 1, -1, -3], dtype=np.float32)
    np.testing.assert_array_equal(got, expected)


def test_closed_form_anisotropic_point():
    # a single foreground voxel in 3-D: the nearest face is across the
    # smallest voxel size
    labels = np.zeros((5, 5, 5), np.uint8)
    labels[2, 2, 2] = 1
    got = hd.signed_face_distance(labels, (40.0, 4.0, 6.0))
    assert got[2, 2, 2] == pytest.approx(2.0)
    # voxel (2, 0, 2): nearest face is the y-face at y = 1.5 -> 1.5 * 4
    assert got[2, 0, 2] == pytest.approx(-6.0)
    # voxel (0, 2, 2): the lower z-face of (2, 2, 2) lies at z = 1.5, 60 away;
    # its other faces lie at z = 2, 80 away
    assert got[0, 2, 2] == pytest.approx(-60.0)


@pytest.mark.parametrize("value", [0, 1])
def test_channel_without_face_saturates(value):
    gt = np.full((1, 6, 7), value, np.uint8)
    target = hd.hot_distance_target(gt, (1.0, 1.0), 3.0)
    sign = 1.0 if value else -1.0
    np.testing.assert_array_equal(target[1], np.full((6, 7), sign, np.float32))
    raw = hd.signed_face_distance(gt[0], (1.0, 1.0))
    assert np.all(raw == sign * np.inf)


def test_thin_sheet_and_line_and_border():
    gt = np.zeros((3, 7, 8, 9), np.uint8)
    gt[0, 3] = 1  # a one-voxel-thick sheet
    gt[1, 2, 4, :] = 1  # a one-voxel-thick line touching two borders
    gt[2, :, :3, :2] = 1  # a block touching the border
    voxel_size = (3.0, 1.0, 2.0)
    target = hd.hot_distance_target(gt, voxel_size, 5.0)
    for c in range(3):
        d = brute_force_face_distance(gt[c], voxel_size)
        expected = np.tanh(np.where(gt[c] == 1, d, -d) / 5.0)
        np.testing.assert_allclose(target[3 + c], expected, atol=1e-6)
    # the sheet's voxels sit half a voxel from both of its faces
    np.testing.assert_allclose(target[3, 3], np.tanh(1.5 / 5.0), rtol=1e-6)


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.int32, np.uint64, np.float32])
def test_label_dtypes(dtype):
    labels = random_labels((2, 5, 6, 7))
    expected = hd.hot_distance_target(labels.astype(bool), (1, 2, 3), 4.0)
    got = hd.hot_distance_target(labels.astype(dtype), (1, 2, 3), 4.0)
    np.testing.assert_array_equal(got, expected)


def test_stray_value_is_an_error_not_a_wrap():
    # the reference casts to uint8, so 256 would wrap to 0
    gt = np.zeros((1, 4, 4), np.uint64)
    gt[0, 1, 1] = 256
    with pytest.raises(ValueError, match="only 0 and 1"):
        hd.hot_distance_target(gt, (1, 1), 1.0)
    nan = np.zeros((1, 4, 4), np.float32)
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="only 0 and 1"):
        hd.hot_distance_target(nan, (1, 1), 1.0)


def test_target_layout_2d():
    gt = random_labels((3, 12, 10))
    target = hd.hot_distance_target(gt, (2.0, 3.0), 6.0)
    assert target.shape == (6, 12, 10) and target.dtype == np.float32
    np.testing.assert_array_equal(target[:3], gt)
    for c in range(3):
        d = brute_force_face_distance(gt[c], (2.0, 3.0))
        expected = np.tanh(np.where(gt[c] == 1, d, -d) / 6.0)
        np.testing.assert_allclose(target[3 + c], expected, atol=1e-6)


# -- context ------------------------------------------------------------------


def test_context_distance_closed_form():
    assert hd.context_distance(10.0, 1e-3) == pytest.approx(10 * math.atanh(0.999))
    # a threshold past 1 - tolerance widens the context
    assert hd.context_distance(10.0, 1e-3, 0.9999) == pytest.approx(10 * math.atanh(0.9999))


@pytest.mark.parametrize("voxel_size", [(4, 4, 4), (40, 4, 4), (3, 7, 5)])
def test_crop_consistency_with_padding(voxel_size):
    scale_factor = 12.0
    context = hd.context_distance(scale_factor, 1e-3)
    pad = hd.padding_voxels(context, voxel_size)
    smooth = ndimage.gaussian_filter(rng.random((2, 40, 60, 60)), (0, 2, 3, 3))
    gt = (smooth > np.quantile(smooth, 0.7)).astype(np.uint8)
    whole = hd.hot_distance_target(gt, voxel_size, scale_factor)
    worst = 0.0
    for _ in range(4):
        start = [int(rng.integers(p, s - p - 4)) for p, s in zip(pad, gt.shape[1:])]
        size = [
            int(rng.integers(1, min(8, s - p - st) + 1))
            for p, s, st in zip(pad, gt.shape[1:], start)
        ]
        grown = tuple(slice(st - p, st + sz + p) for st, sz, p in zip(start, size, pad))
        inner = tuple(slice(p, p + sz) for p, sz in zip(pad, size))
        crop = hd.hot_distance_target(gt[(slice(None),) + grown], voxel_size, scale_factor)
        window = tuple(slice(st, st + sz) for st, sz in zip(start, size))
        worst = max(
            worst, np.abs(crop[(slice(None),) + inner] - whole[(slice(None),) + window]).max()
        )
    assert worst <= 1e-3


def test_crop_without_padding_differs():
    # the test above can fail: without context the error is large
    gt = np.zeros((1, 1, 1, 40), np.uint8)
    gt[..., 20:] = 1
    whole = hd.hot_distance_target(gt, (1, 1, 1), 4.0)
    crop = hd.hot_distance_target(gt[..., 25:30], (1, 1, 1), 4.0)
    assert np.abs(crop - whole[..., 25:30]).max() > 0.1


# -- weights ------------------------------------------------------------------


def test_balance_weights_two_calls_by_hand():
    first = np.array([[0, 0, 0, 1]])
    w1, counts1 = hd.balance_weights(first)
    # counts (3 bg, 1 fg), fractions 3/5 and 1/5
    np.testing.assert_allclose(w1, [[0.5 / 0.6] * 3 + [0.5 / 0.2]])
    second = np.array([[1, 1, 0, 1]])
    w2, counts2 = hd.balance_weights(second, counts=counts1)
    # counts (4 bg, 4 fg) over 8 voxels: fractions 4/9 each
    np.testing.assert_array_equal(counts2, [[4, 4]])
    np.testing.assert_allclose(w2, [[0.5 / (4 / 9)] * 4], rtol=1e-6)
    # the input counts are not modified
    np.testing.assert_array_equal(counts1, [[3, 1]])


def test_balance_weights_clip_and_mask():
    labels = np.array([[0] * 99 + [1]])
    mask = np.ones(100, np.uint8)
    mask[:10] = 0
    w, counts = hd.balance_weights(labels, mask)
    np.testing.assert_array_equal(counts, [[89, 1]])
    assert np.all(w[0, :10] == 0)
    # background fraction 89/91 is clipped to 0.95, foreground 1/91 to 0.05
    np.testing.assert_allclose(w[0, 10:99], 0.5 / 0.95, rtol=1e-6)
    assert w[0, 99] == pytest.approx(0.5 / 0.05)


def test_hot_distance_weights_counts_and_masks():
    gt = np.array([[[0, 0, 1, 1]], [[1, 0, 0, 0]]])  # (2, 1, 4)
    target = hd.hot_distance_target(gt, (1, 1), 2.0)
    shared = np.array([[1, 1, 1, 0]])
    w_shared, c_shared = hd.hot_distance_weights(gt, target, shared, (1, 1), 2.0)
    per_class = np.stack([shared, shared])
    w_per, c_per = hd.hot_distance_weights(gt, target, per_class, (1, 1), 2.0)
    np.testing.assert_array_equal(w_shared, w_per)
    np.testing.assert_array_equal(c_shared, c_per)
    np.testing.assert_array_equal(c_shared, [[2, 1], [2, 1], [2, 1], [2, 1]])
    assert np.all(w_shared[:, 0, 3] == 0)
    # a second call continues the counts
    _, c_again = hd.hot_distance_weights(gt, target, shared, (1, 1), 2.0, counts=c_shared)
    np.testing.assert_array_equal(c_again, 2 * c_shared)


def test_distance_weights_are_balanced_and_masked():
    gt = np.zeros((1, 1, 30), np.uint8)
    gt[..., 10:14] = 1
    target = hd.hot_distance_target(gt, (1, 1), 3.0)
    mask = np.ones((1, 30), np.uint8)
    mask[0, 20:] = 0
    w, counts = hd.hot_distance_weights(gt, target, mask, (1, 1), 3.0, mask_distances=True)
    trusted = hd.distance_mask(target[1:], mask, (1, 1), 3.0)[0, 0].astype(bool)
    known = trusted.sum()
    fg = (trusted & (gt[0, 0] == 1)).sum()
    np.testing.assert_array_equal(counts[1], [known - fg, fg])
    expected = (
        np.where(
            gt[0, 0] == 1,
            0.5 / np.clip(fg / (1 + known), 0.05, 0.95),
            0.5 / np.clip((known - fg) / (1 + known), 0.05, 0.95),
        )
        * trusted
    )
    np.testing.assert_allclose(w[1, 0], expected, rtol=1e-6)
    # the one-hot weights are not distance-masked
    assert np.all(w[0, 0, :20] > 0) and np.all(w[0, 0, 20:] == 0)


def test_unknown_distance_brute_force():
    mask = (rng.random((6, 7, 5)) < 0.8).astype(np.uint8)
    voxel_size = (2.0, 1.0, 3.0)
    # the unknown region's faces: faces between known and unknown voxels, and
    # the outer faces; brute force on the mask padded by one unknown voxel
    padded = np.pad(mask, 1)
    expected = brute_force_face_distance(padded, voxel_size)[1:-1, 1:-1, 1:-1]
    expected[mask == 0] = 0
    np.testing.assert_allclose(hd.unknown_distance(mask, voxel_size), expected, rtol=1e-6)


def test_distance_mask_closed_form():
    distances = np.tanh(np.array([[0.5, 1.5, 2.5, 3.5]]) / 2.0)
    mask = np.array([1, 1, 1, 1])
    unknown = np.array([0.5, 1.5, 1.5, 0.5])  # the two outer faces
    expected = np.minimum(np.abs(distances) + 0.05, 0.8) < np.tanh(unknown / 2.0)
    got = hd.distance_mask(distances, mask, (1,), 2.0)
    np.testing.assert_array_equal(got, expected.astype(np.uint8))


def test_kernel_runs_in_a_forked_child():
    # gp.PreCache forks its workers after the main process computed targets
    import multiprocessing

    labels = random_labels((8, 9, 10))
    expected = hd.face_distance(labels, (1, 2, 3))
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        got = pool.apply_async(hd.face_distance, (labels, (1, 2, 3))).get(timeout=120)
    np.testing.assert_array_equal(got, expected)


def test_concurrent_calls_from_threads():
    from concurrent.futures import ThreadPoolExecutor

    labels = [random_labels((10, 11, 12)) for _ in range(6)]
    expected = [hd.face_distance(lab) for lab in labels]
    with ThreadPoolExecutor(3) as executor:
        got = list(executor.map(hd.face_distance, labels))
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
