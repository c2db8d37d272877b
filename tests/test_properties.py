"""Property tests: random small volumes against brute-force oracles.

Every property draws a spatial rank (1 to 3), a shape, an anisotropic voxel
size, binary labels for 1 to 3 classes in one of several dtypes, a mask and
moving counts, and checks the library against computations that share no code
with it: the face-midpoint brute force of ``oracles.py``, a brute force of the
unknown region's faces written here, and the class-balancing formula written
out by hand. The number of examples comes from the hypothesis profile (see
``conftest.py``); ``--hypothesis-show-statistics`` reports how many ran.

Also here: determinism (bit-identical results on repeated calls and with 1 or
2 or more threads) and that no call mutates its inputs.
"""

import copy

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array
from gunpowder import ArraySpec
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

import gp_hotdistance as hd
from gp_hotdistance import HotDistancePredictor
from oracles import brute_force_face_distance

LABEL_DTYPES = [np.bool_, np.uint8, np.int32, np.uint64, np.float32]
MASK_DTYPES = [np.bool_, np.uint8, np.float32]
DENSITIES = [0.0, 0.05, 0.3, 0.5, 0.9, 1.0]
# a voxel where the library and the oracle fall on either side of the
# distance mask's comparison by less than this (in tanh units) is a tie
TIE_MARGIN = 1e-4

PROPERTY_SETTINGS = settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


# ---------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------


@st.composite
def shapes(draw):
    rank = draw(st.integers(1, 3))
    return tuple(draw(st.integers(1, 12)) for _ in range(rank))


def voxel_sizes(rank, integer):
    if integer:
        entry = st.integers(1, 50)
    else:
        entry = st.one_of(
            st.integers(1, 50),
            st.floats(0.1, 50.0, allow_nan=False, allow_infinity=False),
        )
    return st.tuples(*[entry] * rank)


def binary_array(draw, shape, dtype, name):
    """A random binary array: noise of a drawn density, sometimes a block."""
    seed = draw(st.integers(0, 2**32 - 1), label=f"{name} seed")
    rng = np.random.default_rng(seed)
    if draw(st.booleans(), label=f"{name} is a block"):
        values = np.zeros(shape, bool)
        corner = tuple(rng.integers(0, s) for s in shape)
        stop = tuple(rng.integers(c + 1, s + 1) for c, s in zip(corner, shape))
        values[tuple(slice(a, b) for a, b in zip(corner, stop))] = True
    else:
        density = draw(st.sampled_from(DENSITIES), label=f"{name} density")
        values = rng.random(shape) < density
    return values.astype(dtype)


@st.composite
def cases(draw, integer_voxel_size=False):
    """A random problem: gt ``(C, ...)``, voxel size, scale factor, mask,
    prior counts and the API to call."""
    shape = draw(shapes())
    classes = draw(st.integers(1, 3))
    voxel_size = draw(voxel_sizes(len(shape), integer_voxel_size))
    dtype = draw(st.sampled_from(LABEL_DTYPES))
    gt = np.stack([binary_array(draw, shape, dtype, f"gt{c}") for c in range(classes)])
    mask_kind = draw(st.sampled_from(["none", "shared", "per class"]))
    mask = None
    if mask_kind != "none":
        mask_dtype = draw(st.sampled_from(MASK_DTYPES))
        mask_shape = shape if mask_kind == "shared" else (classes,) + shape
        mask = binary_array(draw, mask_shape, mask_dtype, "mask")
    counts = None
    if draw(st.booleans(), label="prior counts"):
        seed = draw(st.integers(0, 2**32 - 1))
        counts = np.random.default_rng(seed).integers(0, 2000, (2 * classes, 2))
    if draw(st.booleans(), label="scale relative to the voxel size"):
        # a few voxels: distances span the whole tanh range, and the distance
        # mask both trusts and rejects voxels
        scale_factor = float(np.mean(voxel_size)) * draw(st.floats(0.1, 5.0))
    else:
        scale_factor = draw(st.floats(0.5, 200.0))
    event(f"rank {len(shape)}")
    event(f"mask {mask_kind}")
    note(
        f"shape {shape}, classes {classes}, voxel size {voxel_size}, dtype "
        f"{np.dtype(dtype)}, mask {mask_kind}, scale {scale_factor}"
    )
    return dict(
        gt=gt,
        voxel_size=voxel_size,
        scale_factor=scale_factor,
        mask=mask,
        counts=counts,
    )


def layouts(draw, array):
    """``array`` as given, Fortran-ordered or as a reversed (strided) view:
    the library must not depend on the memory layout."""
    if array is None:
        return None
    layout = draw(st.sampled_from(["C", "F", "reversed view"]), label="layout")
    if layout == "F":
        return np.asfortranarray(array)
    if layout == "reversed view":
        reversed_copy = np.ascontiguousarray(array[(Ellipsis,) + (slice(None, None, -1),)])
        return reversed_copy[(Ellipsis,) + (slice(None, None, -1),)]
    return array


# ---------------------------------------------------------------------------
# oracles written here
# ---------------------------------------------------------------------------


def brute_force_unknown_distance(known, voxel_size):
    """Distance from each known voxel centre to the nearest face between a
    known voxel and an unknown one, where everything outside the array is
    unknown; 0 at unknown voxels. float64."""
    known = np.asarray(known).astype(bool)
    spacing = np.asarray(voxel_size, dtype=np.float64)
    # surround the array with a layer of unknown voxels
    padded = np.pad(known, 1, constant_values=False)
    faces = []
    for axis in range(padded.ndim):
        first = np.moveaxis(padded, axis, 0)
        change = np.moveaxis(first[:-1] != first[1:], 0, axis)
        centres = np.argwhere(change).astype(np.float64)
        centres[:, axis] += 0.5
        faces.append(centres - 1.0)  # back to the unpadded indices
    faces = np.concatenate(faces) * spacing
    result = np.zeros(known.shape)
    inside = np.argwhere(known).astype(np.float64) * spacing
    if len(inside):
        squared = ((inside[:, None, :] - faces[None, :, :]) ** 2).sum(axis=-1)
        result[known] = np.sqrt(squared.min(axis=1))
    return result


def oracle_target(gt, voxel_size, scale_factor):
    """float64 ``(C, ...)`` tanh of the signed face distance."""
    distances = []
    for channel in gt:
        d = brute_force_face_distance(channel, voxel_size)
        d = np.where(channel != 0, d, -d)  # +-inf where there is no face
        distances.append(np.tanh(d / scale_factor))
    return np.stack(distances)


def channel_masks(mask, gt):
    """The known voxels of each channel as bool ``(C, ...)``."""
    if mask is None:
        return np.ones(gt.shape, bool)
    return np.broadcast_to(np.asarray(mask) != 0, gt.shape)


def hand_balanced(foreground, known, prior, clipmin, clipmax):
    """Weights and counts of one channel, from the formula in the brief:
    ``0.5 / clip(count / (1 + total), clipmin, clipmax)`` per class."""
    background_seen = int(np.sum(known & ~foreground))
    foreground_seen = int(np.sum(known & foreground))
    counts = np.array(prior, dtype=np.int64) + [background_seen, foreground_seen]
    total = counts[0] + counts[1]
    weight_background = 0.5 / min(max(counts[0] / (1 + total), clipmin), clipmax)
    weight_foreground = 0.5 / min(max(counts[1] / (1 + total), clipmin), clipmax)
    weights = np.where(foreground, weight_foreground, weight_background)
    return np.where(known, weights, 0.0), counts


def oracle_trusted(expected_target, known, voxel_size, scale_factor, epsilon, threshold):
    """The distance mask's rule on oracle values: trusted where ``min(|t| +
    epsilon, threshold) < tanh(u / scale_factor)``, with ``u`` the distance to
    the unknown region, and, within the larger of ``scale_factor *
    artanh(threshold)`` and half the largest voxel, where ``|t| < tanh(u /
    scale_factor)`` (the target not decided by the unknown region); also
    ``margin``, how far each voxel is from a tie."""
    within = max(scale_factor * np.arctanh(threshold), max(voxel_size) / 2)
    trusted = np.empty(known.shape, bool)
    margin = np.empty(known.shape)
    for c in range(known.shape[0]):
        unknown = brute_force_unknown_distance(known[c], voxel_size)
        measured = np.minimum(np.abs(expected_target[c]) + epsilon, threshold)
        reach = np.tanh(unknown / scale_factor)
        near = unknown <= within
        decided = near & (np.abs(expected_target[c]) >= reach)
        trusted[c] = known[c] & (measured < reach) & ~decided
        ties = np.minimum(
            np.abs(reach - measured),
            np.where(near, np.abs(reach - np.abs(expected_target[c])), np.inf),
        )
        ties = np.minimum(ties, np.abs(unknown - within) / scale_factor)
        margin[c] = np.where(known[c], ties, np.inf)
    return trusted, margin


# ---------------------------------------------------------------------------
# calling the library three ways
# ---------------------------------------------------------------------------


def make_array(data, voxel_size, offset_voxels, channels):
    spatial = len(voxel_size)
    names = (["c"] if channels else []) + ["z", "y", "x"][-spatial:]
    types = (["channel"] if channels else []) + ["space"] * spatial
    offset = Coordinate(offset_voxels) * Coordinate(voxel_size)
    return Array(data, offset=offset, voxel_size=voxel_size, axis_names=names, types=types)


def compute(api, case, mask_distances, draw):
    """Target, weights and counts by ``api``: ``core`` functions, the
    predictor on numpy, or the predictor on funlib Arrays."""
    gt, mask, voxel_size = case["gt"], case["mask"], case["voxel_size"]
    scale_factor, counts = case["scale_factor"], case["counts"]
    classes = gt.shape[0]
    if api == "core":
        target = hd.hot_distance_target(gt, voxel_size, scale_factor)
        weights, new_counts = hd.hot_distance_weights(
            gt,
            target,
            mask,
            voxel_size,
            scale_factor,
            counts=counts,
            mask_distances=mask_distances,
        )
        return target, weights, new_counts
    predictor = HotDistancePredictor(
        [f"class{c}" for c in range(classes)], scale_factor, mask_distances
    )
    # one class may come without a channel axis
    labels = gt[0] if classes == 1 and draw(st.booleans(), label="drop axis") else gt
    if api == "numpy":
        target = predictor.process(labels, voxel_size, "tanh")
        weights, new_counts = predictor.process_weight(labels, target, mask, voxel_size, counts)
        return target, weights, new_counts
    offset = draw(st.tuples(*[st.integers(-5, 5)] * len(voxel_size)), label="offset")
    gt_array = make_array(labels, voxel_size, offset, labels.ndim > len(voxel_size))
    mask_array = None
    if mask is not None:
        mask_array = make_array(mask, voxel_size, offset, mask.ndim > len(voxel_size))
    target_array = predictor.create_target(gt_array)
    assert target_array.roi == gt_array.roi
    assert target_array.voxel_size == gt_array.voxel_size
    weights_array, new_counts = predictor.create_weight(gt_array, target_array, mask_array, counts)
    assert weights_array.roi == gt_array.roi
    return target_array[target_array.roi], weights_array[weights_array.roi], new_counts


# ---------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(data=st.data())
def test_target_and_weights_match_oracles(data):
    """Targets equal the brute force within 1e-5 (exactly +-1 without a
    face), one-hot channels equal the gt, weights follow the hand formula and
    the inputs are left as they were."""
    api = data.draw(st.sampled_from(["core", "numpy", "array"]), label="api")
    event(f"api {api}")
    case = data.draw(cases(integer_voxel_size=api == "array"))
    case["gt"] = layouts(data.draw, case["gt"])
    case["mask"] = layouts(data.draw, case["mask"])
    before = copy.deepcopy(case)
    gt, voxel_size, scale_factor = case["gt"], case["voxel_size"], case["scale_factor"]
    classes = gt.shape[0]

    target, weights, counts = compute(api, case, mask_distances=False, draw=data.draw)

    # nothing mutated
    for key in ("gt", "mask", "counts"):
        if before[key] is None:
            assert case[key] is None
        else:
            np.testing.assert_array_equal(case[key], before[key], err_msg=key)
            assert case[key].dtype == before[key].dtype
    assert counts is not case["counts"]

    # target
    assert target.shape == (2 * classes,) + gt.shape[1:]
    assert target.dtype == np.float32
    assert np.all(np.isfinite(target)) and np.all(np.abs(target) <= 1)
    np.testing.assert_array_equal(target[:classes], gt.astype(np.float64))
    expected = oracle_target(gt, voxel_size, scale_factor)
    np.testing.assert_allclose(target[classes:], expected, rtol=0, atol=1e-5)
    for c in range(classes):
        if np.all(gt[c] == gt[c].flat[0]):  # no face: saturated exactly
            assert np.all(target[classes + c] == (1.0 if gt[c].flat[0] else -1.0))

    # weights: one-hot and (without mask_distances) distance channels alike
    known = channel_masks(case["mask"], gt)
    prior = np.zeros((2 * classes, 2), np.int64) if case["counts"] is None else case["counts"]
    assert weights.shape == target.shape and weights.dtype == np.float32
    assert np.all(np.isfinite(weights)) and np.all(weights >= 0)
    assert counts.shape == (2 * classes, 2) and counts.dtype == np.int64
    for c in range(classes):
        foreground = gt[c] != 0
        for channel in (c, classes + c):
            expected_weights, expected_counts = hand_balanced(
                foreground, known[c], prior[channel], 0.05, 0.95
            )
            assert np.all(weights[channel][~known[c]] == 0)
            np.testing.assert_allclose(weights[channel], expected_weights, rtol=1e-6)
            np.testing.assert_array_equal(counts[channel], expected_counts)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_distance_mask_matches_oracle(data):
    """With ``mask_distances``, distance weights are non-zero exactly where
    the unknown region (mask 0 and outside the array) is clearly farther, in
    tanh space, than the measured boundary; the one-hot weights are unchanged
    and the balancing follows the hand formula over the trusted voxels."""
    api = data.draw(st.sampled_from(["core", "numpy", "array"]), label="api")
    event(f"api {api}")
    case = data.draw(cases(integer_voxel_size=api == "array"))
    before = copy.deepcopy(case)
    gt, voxel_size, scale_factor = case["gt"], case["voxel_size"], case["scale_factor"]
    classes = gt.shape[0]

    target, weights, counts = compute(api, case, mask_distances=True, draw=data.draw)

    for key in ("gt", "mask", "counts"):
        if before[key] is not None:
            np.testing.assert_array_equal(case[key], before[key], err_msg=key)
    assert np.all(np.isfinite(weights)) and np.all(weights >= 0)

    known = channel_masks(case["mask"], gt)
    expected_target = oracle_target(gt, voxel_size, scale_factor)
    trusted, margin = oracle_trusted(expected_target, known, voxel_size, scale_factor, 0.05, 0.8)
    clear = margin > TIE_MARGIN
    got_trusted = weights[classes:] > 0
    event(
        "trusted and untrusted known voxels"
        if trusted.any() and (known & ~trusted).any()
        else "all known voxels on one side"
    )
    np.testing.assert_array_equal(got_trusted[clear], trusted[clear])
    ties = np.count_nonzero(~clear & known)
    event("ties skipped" if ties else "no ties")
    note(f"ties skipped: {ties}")

    prior = np.zeros((2 * classes, 2), np.int64) if case["counts"] is None else case["counts"]
    for c in range(classes):
        foreground = gt[c] != 0
        hot_weights, hot_counts = hand_balanced(foreground, known[c], prior[c], 0.05, 0.95)
        np.testing.assert_allclose(weights[c], hot_weights, rtol=1e-6)
        np.testing.assert_array_equal(counts[c], hot_counts)
        # on a tie the library's side is taken, so the formula is still checked
        used = np.where(clear[c], trusted[c], got_trusted[c])
        distance_weights, distance_counts = hand_balanced(
            foreground, used, prior[classes + c], 0.05, 0.95
        )
        np.testing.assert_allclose(weights[classes + c], distance_weights, rtol=1e-6)
        np.testing.assert_array_equal(counts[classes + c], distance_counts)

    # the distance mask on its own, through the core and the predictor
    predictor = HotDistancePredictor(
        [f"class{c}" for c in range(classes)], scale_factor, mask_distances=True
    )
    for result in (
        hd.distance_mask(target[classes:], case["mask"], voxel_size, scale_factor),
        predictor.create_distance_mask(target[classes:], case["mask"], voxel_size),
    ):
        assert result.dtype == np.uint8 and result.shape == gt.shape
        np.testing.assert_array_equal(result[clear], trusted[clear])


@PROPERTY_SETTINGS
@given(data=st.data())
def test_unknown_distance_matches_oracle(data):
    """``unknown_distance`` is the distance to the nearest face of the
    unknown region, the outside of the array included; 0 where unknown."""
    shape = data.draw(shapes())
    voxel_size = data.draw(voxel_sizes(len(shape), integer=False))
    mask = binary_array(data.draw, shape, data.draw(st.sampled_from(MASK_DTYPES)), "mask")
    before = mask.copy()
    got = hd.unknown_distance(mask, voxel_size)
    np.testing.assert_array_equal(mask, before)
    expected = brute_force_unknown_distance(mask, voxel_size)
    assert got.dtype == np.float32 and got.shape == mask.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * max(voxel_size))
    assert np.all(got[mask == 0] == 0)
    # never farther than the array's outer faces along any axis
    edge = 0.5 * np.min(np.array(shape) * np.array(voxel_size))
    assert np.all(got <= edge * (1 + 1e-6))


# ---------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------


def _deterministic_case():
    rng = np.random.default_rng(7)
    gt = (rng.random((2, 23, 31, 29)) < 0.02).astype(np.uint8)
    mask = (rng.random((23, 31, 29)) < 0.9).astype(np.uint8)
    counts = rng.integers(0, 1000, (4, 2))
    return gt, mask, counts, (40.0, 4.0, 4.5), 30.0


def _run(gt, mask, counts, voxel_size, scale_factor, threads=1):
    target = hd.hot_distance_target(gt, voxel_size, scale_factor, threads=threads)
    weights, new_counts = hd.hot_distance_weights(
        gt,
        target,
        mask,
        voxel_size,
        scale_factor,
        counts=counts,
        mask_distances=True,
        threads=threads,
    )
    return target, weights, new_counts


def test_repeated_calls_are_bit_identical():
    case = _deterministic_case()
    first = _run(*case)
    second = _run(*case)
    for a, b in zip(first, second):
        assert a.dtype == b.dtype
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("threads", [2, 3, 64])
def test_thread_count_does_not_change_results(threads):
    case = _deterministic_case()
    one = _run(*case)
    many = _run(*case, threads=threads)
    for a, b in zip(one, many):
        assert a.tobytes() == b.tobytes()


# ---------------------------------------------------------------------------
# nothing mutated (the property tests above check numpy inputs)
# ---------------------------------------------------------------------------


def test_funlib_arrays_are_not_mutated():
    rng = np.random.default_rng(3)
    gt = (rng.random((2, 9, 10)) < 0.4).astype(np.uint8)
    mask = (rng.random((9, 10)) < 0.8).astype(np.uint8)
    counts = rng.integers(0, 50, (4, 2))
    predictor = HotDistancePredictor(["a", "b"], 12.0, mask_distances=True)
    gt_array = make_array(gt.copy(), (4, 3), (1, -2), channels=True)
    mask_array = make_array(mask.copy(), (4, 3), (1, -2), channels=False)
    gt_roi, mask_roi = gt_array.roi, mask_array.roi
    counts_before = counts.copy()

    target = predictor.create_target(gt_array)
    target_before = target[target.roi].copy()
    weights, new_counts = predictor.create_weight(gt_array, target, mask_array, counts)

    np.testing.assert_array_equal(gt_array[gt_array.roi], gt)
    np.testing.assert_array_equal(mask_array[mask_array.roi], mask)
    np.testing.assert_array_equal(target[target.roi], target_before)
    np.testing.assert_array_equal(counts, counts_before)
    assert gt_array.roi == gt_roi and mask_array.roi == mask_roi
    assert gt_array.voxel_size == Coordinate(4, 3)
    assert new_counts is not counts


def test_gt_region_for_roi_does_not_mutate_its_spec():
    predictor = HotDistancePredictor(["a"], 10.0, mask_distances=False)
    spec = ArraySpec(
        roi=Roi((40, 8, -4), (80, 16, 12)),
        voxel_size=Coordinate(40, 4, 4),
        interpolatable=False,
        dtype=np.uint8,
    )
    before = spec.copy()
    grown = predictor.gt_region_for_roi(spec)
    assert spec == before
    assert spec.roi == Roi((40, 8, -4), (80, 16, 12))
    assert grown is not spec and grown.roi is not spec.roi
    assert grown.roi.contains(spec.roi) and grown.roi != spec.roi
    # the new spec keeps everything but the ROI
    assert grown.voxel_size == spec.voxel_size and grown.dtype == spec.dtype
    assert grown.interpolatable == spec.interpolatable
