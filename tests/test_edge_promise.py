"""The promise at the padded edge: with the gt and the mask padded with 0 and
``mask_distances``, a voxel next to the data's edge whose target the padding
decided gets distance weight 0, for thin sections too (voxel (40, 4, 4) with a
scale factor of 16, one-slice volumes), and the controls hold as before."""

import math

import dask
import gunpowder as gp
import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from gp_hotdistance import (
    AddHotDistance,
    BalanceHotDistance,
    HotDistancePredictor,
    distance_mask,
    hot_distance_target,
    trust_reach,
)

dask.config.set(scheduler="synchronous")


def column(shape, radius):
    """One class: a disc of ``radius`` voxels in-plane through every slice, and
    a small cube, so that objects reach the data's edge along every axis."""
    _, y, x = np.indices(shape)
    gt = ((y - shape[1] / 2) ** 2 + (x - shape[2] / 2) ** 2 < radius**2).astype(np.uint8)
    gt[:, :4, :4] = 1  # touches the y and x edges too
    return gt[None]


def array(data, voxel_size):
    spatial = len(voxel_size)
    axes = ["c"] * (data.ndim - spatial) + ["z", "y", "x"][-spatial:]
    types = ["channel"] * (data.ndim - spatial) + ["space"] * spatial
    return Array(data, offset=(0,) * spatial, voxel_size=voxel_size, axis_names=axes, types=types)


def padded_batch(gt, voxel_size, scale_factor):
    """Target and weights of the whole data through gp.Pad (gt and mask,
    padded with 0) and both nodes, with ``mask_distances``."""
    voxel_size = Coordinate(voxel_size)
    predictor = HotDistancePredictor(["cell"], scale_factor, mask_distances=True)
    context = predictor.padding(voxel_size)
    gt_key, mask_key = gp.ArrayKey("EDGE_GT"), gp.ArrayKey("EDGE_MASK")
    target_key, weights_key = gp.ArrayKey("EDGE_TARGET"), gp.ArrayKey("EDGE_WEIGHTS")
    mask = np.ones(gt.shape[1:], np.uint8)
    pipeline = (
        (
            gp.ArraySource(gt_key, array(gt, voxel_size), interpolatable=False),
            gp.ArraySource(mask_key, array(mask, voxel_size), interpolatable=False),
        )
        + gp.MergeProvider()
        + gp.Pad(gt_key, context)
        + gp.Pad(mask_key, context)
        + AddHotDistance(predictor, gt_key, target_key, mask_key)
        + BalanceHotDistance(predictor, gt_key, target_key, weights_key, mask_key)
    )
    roi = Roi((0, 0, 0), Coordinate(gt.shape[1:]) * voxel_size)
    request = gp.BatchRequest()
    request[target_key] = gp.ArraySpec(roi=roi)
    request[weights_key] = gp.ArraySpec(roi=roi)
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    return predictor, batch[target_key].data, batch[weights_key].data


def next_to_the_edge(shape):
    """Voxels that share a face with what lies beyond the data."""
    touching = np.zeros(shape, bool)
    for axis in range(len(shape)):
        index = [slice(None)] * len(shape)
        for end in (0, -1):
            index[axis] = end
            touching[tuple(index)] = True
    return touching


CASES = {
    # the cases: thin sections, the padding half a section away
    "(40, 4, 4) at scale 16": ((6, 40, 40), (40, 4, 4), 16.0),
    "one slice (40, 4, 4) at scale 16": ((1, 40, 40), (40, 4, 4), 16.0),
    # controls, which held before
    "(40, 4, 4) at scale 50": ((6, 40, 40), (40, 4, 4), 50.0),
    "(8, 8, 8) at scale 16": ((12, 20, 20), (8, 8, 8), 16.0),
}


@pytest.mark.parametrize("case", list(CASES))
def test_padding_decided_targets_next_to_the_edge_get_weight_0(case):
    shape, voxel_size, scale_factor = CASES[case]
    gt = column(shape, radius=12)
    predictor, target, weights = padded_batch(gt, voxel_size, scale_factor)
    # the whole data's target, where beyond the data is not a face
    whole = hot_distance_target(gt, voxel_size, scale_factor)
    made_up = np.abs(target[1] - whole[1]) > predictor.tolerance
    edge = next_to_the_edge(shape)
    assert np.count_nonzero(made_up & edge) > 40  # the case has them
    # the promise: weight 0 for each of them; their one-hot weight stays
    assert np.all(weights[1][made_up & edge] == 0)
    assert np.all(weights[0][edge] > 0)


def test_thin_sections_the_made_up_value_is_the_half_section():
    """The issue's numbers: the made-up target next to the z edges is
    tanh(20 / 16) = 0.848, above the threshold 0.8, where the whole data has
    up to 0.98; all of them get weight 0 now."""
    gt = column((6, 40, 40), radius=12)
    _, target, weights = padded_batch(gt, (40, 4, 4), 16.0)
    whole = hot_distance_target(gt, (40, 4, 4), 16.0)
    inside = gt[0].astype(bool)
    z_faces = np.zeros(inside.shape, bool)
    z_faces[[0, -1]] = True
    decided = z_faces & inside & (whole[1] > np.float32(math.tanh(20 / 16)))
    assert np.count_nonzero(decided) > 100
    np.testing.assert_allclose(target[1][decided], math.tanh(20 / 16), rtol=1e-6)
    assert math.tanh(20 / 16) > 0.8
    assert np.all(weights[1][decided] == 0)


def test_distance_mask_distrusts_a_one_slice_volume_where_the_outside_decides():
    """numpy level: one slice of (40, 4, 4) voxels, no mask (outside the array
    unknown): the outside is 20 away across z, so a target at least
    tanh(20 / 16) is decided by what lies there; nearer ones are measured."""
    gt = column((1, 40, 40), radius=12)
    target = hot_distance_target(gt, (40, 4, 4), 16.0)
    trusted = distance_mask(target[1:], None, (40, 4, 4), 16.0)[0].astype(bool)
    decided = np.abs(target[1]) >= np.float32(math.tanh(20 / 16))
    assert decided.any() and (~decided).any()
    assert not np.any(trusted & decided)


def test_trust_reach_covers_half_the_largest_voxel():
    assert trust_reach(16.0, voxel_size=(40, 4, 4)) == pytest.approx(20.0, rel=2e-6)
    assert trust_reach(16.0, voxel_size=(40, 4, 4)) >= 20.0
    assert trust_reach(50.0, voxel_size=(40, 4, 4)) == trust_reach(50.0)
    assert trust_reach(16.0, voxel_size=(8, 8, 8)) == trust_reach(16.0)


@pytest.mark.parametrize(
    "scale_factor, tolerance, threshold, voxel_size",
    [
        (10.0, 1e-3, 0.8, (40, 4, 4)),
        (10.0, 0.2, 0.8, (8, 8, 8)),  # threshold = 1 - tolerance
        (10.0, 0.1, 0.95, (8, 8, 8)),  # threshold > 1 - tolerance
        (2.0, 1e-3, 0.8, (40, 4, 4)),  # half a section beyond the context
    ],
)
def test_the_mask_is_never_requested_beyond_the_gt(scale_factor, tolerance, threshold, voxel_size):
    """The nodes' docstring: the trust reach, which sets the mask's request,
    is within the predictor's padding, which sets the gt's."""
    predictor = HotDistancePredictor(
        ["cell"], scale_factor, mask_distances=True, tolerance=tolerance, threshold=threshold
    )
    voxel_size = Coordinate(voxel_size)
    reach = trust_reach(scale_factor, threshold, voxel_size=tuple(voxel_size))
    padding = predictor.padding(voxel_size)
    for axis, size in enumerate(voxel_size):
        assert padding[axis] >= reach + size / 2
