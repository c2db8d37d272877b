"""A request larger than the data: the error names the target's context and
gp.Pad, after RandomLocation (unbounded specs downstream of it) and without it
(a request beyond the ROI the node provides)."""

import dask
import gunpowder as gp
import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from gp_hotdistance import AddHotDistance, BalanceHotDistance, HotDistancePredictor

dask.config.set(scheduler="synchronous")

VOXEL_SIZE = Coordinate(8, 8, 8)
SHAPE = (20, 20, 20)
DATA = Roi((0, 0, 0), Coordinate(SHAPE) * VOXEL_SIZE)


def array(data):
    axes = ["c"] * (data.ndim - 3) + ["z", "y", "x"]
    types = ["channel"] * (data.ndim - 3) + ["space"] * 3
    return Array(data, offset=(0, 0, 0), voxel_size=VOXEL_SIZE, axis_names=axes, types=types)


def keys():
    return tuple(
        gp.ArrayKey(name) for name in ("RQ_GT", "RQ_MASK", "RQ_RAW", "RQ_TARGET", "RQ_WEIGHTS")
    )


def pipeline(*, random_location, pad=False):
    gt_key, mask_key, raw_key, target_key, weights_key = keys()
    gt = np.zeros((1,) + SHAPE, np.uint8)
    gt[0, 5:15, 5:15, 5:15] = 1
    predictor = HotDistancePredictor(["cell"], 8.0, mask_distances=True)
    source = (
        gp.ArraySource(gt_key, array(gt), interpolatable=False),
        gp.ArraySource(mask_key, array(np.ones(SHAPE, np.uint8)), interpolatable=False),
        gp.ArraySource(raw_key, array(np.zeros(SHAPE, np.float32)), interpolatable=True),
    ) + gp.MergeProvider()
    if pad:
        context = predictor.padding(VOXEL_SIZE)
        source += gp.Pad(gt_key, context) + gp.Pad(mask_key, context)
    if random_location:
        source += gp.RandomLocation()
    return (
        source
        + AddHotDistance(predictor, gt_key, target_key)
        + BalanceHotDistance(predictor, gt_key, target_key, weights_key, mask_key)
    )


def request(roi, *request_keys):
    result = gp.BatchRequest()
    for key in request_keys:
        result[key] = gp.ArraySpec(roi=roi)
    return result


def message(error):
    """The text of an exception and of everything it was raised from."""
    parts = []
    while error is not None:
        parts.append(str(error))
        error = error.__cause__ or error.__context__
    return "\n".join(parts)


@pytest.mark.parametrize("random_location", [True, False], ids=["RandomLocation", "bounded"])
@pytest.mark.parametrize("outputs", ["target", "weights", "both"])
def test_a_request_larger_than_the_data_names_the_context_and_pad(random_location, outputs):
    _, _, _, target_key, weights_key = keys()
    wanted = {"target": [target_key], "weights": [weights_key], "both": [target_key, weights_key]}[
        outputs
    ]
    roi = DATA if random_location else DATA.grow(-VOXEL_SIZE, -VOXEL_SIZE)
    built = pipeline(random_location=random_location)
    with gp.build(built):
        with pytest.raises(Exception) as raised:
            built.request_batch(request(roi, *wanted))
    text = message(raised.value)
    assert "target's context" in text and "gp.Pad(RQ_GT, (40, 40, 40))" in text, text
    if random_location:
        assert "Can not satisfy request" in text  # gunpowder's own words are kept


@pytest.mark.parametrize("random_location", [True, False], ids=["RandomLocation", "bounded"])
def test_padded_data_serves_the_request(random_location):
    _, _, _, target_key, weights_key = keys()
    built = pipeline(random_location=random_location, pad=True)
    with gp.build(built):
        batch = built.request_batch(request(DATA, target_key, weights_key))
    assert batch[weights_key].data.shape == (2,) + SHAPE


def test_an_unrelated_key_out_of_bounds_gets_no_hint():
    _, _, raw_key, target_key, _ = keys()
    built = pipeline(random_location=False, pad=True)
    wanted = request(Roi((0, 0, 0), (80, 80, 80)), target_key)
    wanted[raw_key] = gp.ArraySpec(roi=Roi((-80, 0, 0), (80, 80, 80)))  # raw is not padded
    with gp.build(built):
        with pytest.raises(Exception) as raised:
            built.request_batch(wanted)
    text = message(raised.value)
    assert "RQ_RAW" in text and "gp.Pad(" not in text, text
