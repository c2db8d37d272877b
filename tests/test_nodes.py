"""AddHotDistance and BalanceHotDistance in real gunpowder pipelines.

Targets are compared with the doubled-grid oracle over the whole volume, and
weights and counts with class balancing worked out here by hand.
"""

import json

import dask
import gunpowder as gp
import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array
from gunpowder.nodes.batch_filter import BatchFilterError
from scipy import ndimage

from gp_hotdistance import AddHotDistance, BalanceHotDistance, HotDistancePredictor
from oracles import reference_hot_distance_target

# forked PreCache workers hang on dask's threaded scheduler once the main
# process has used it
dask.config.set(scheduler="synchronous")

VOXEL_SIZE = Coordinate(40, 8, 8)
OFFSET = Coordinate(-400, 80, -160)
SHAPE = (36, 64, 64)
CLASSES = ["mito", "er"]
SCALE = 40.0


def blobs(shape, classes, seed):
    rng = np.random.default_rng(seed)
    noise = [ndimage.gaussian_filter(rng.standard_normal(shape), 3) for _ in range(classes)]
    return np.stack([n > 0.05 for n in noise]).astype(np.uint8)


def as_array(data, offset=OFFSET, voxel_size=VOXEL_SIZE):
    spatial = len(voxel_size)
    channels = data.ndim - spatial
    axes = ["c"] * channels + ["z", "y", "x"][-spatial:]
    types = ["channel"] * channels + ["space"] * spatial
    return Array(data, offset=offset, voxel_size=voxel_size, axis_names=axes, types=types)


def whole_target(gt, voxel_size=VOXEL_SIZE):
    return reference_hot_distance_target(gt, voxel_size, SCALE)


def crop(data, roi, offset=OFFSET, voxel_size=VOXEL_SIZE):
    begin = (roi.begin - offset) / voxel_size
    end = (roi.end - offset) / voxel_size
    return data[(Ellipsis,) + tuple(slice(b, e) for b, e in zip(begin, end))]


def balanced(labels, known, counts, clipmin=0.05, clipmax=0.95):
    """Weights of one channel, worked out by hand; returns (weights, counts)."""
    labels = labels.astype(bool)
    known = np.ones_like(labels) if known is None else known.astype(bool)
    foreground = int((labels & known).sum())
    counts = counts + np.array([int(known.sum()) - foreground, foreground])
    fractions = np.clip(counts / (1.0 + counts.sum()), clipmin, clipmax)
    weights = np.where(labels, 0.5 / fractions[1], 0.5 / fractions[0]).astype(np.float32)
    return np.where(known, weights, 0).astype(np.float32), counts


@pytest.fixture(scope="module")
def volume():
    gt = blobs(SHAPE, len(CLASSES), seed=1)
    mask = np.ones(SHAPE, np.uint8)
    mask[8:20, 10:30, :] = 0
    return gt, mask


def keys():
    return gp.ArrayKey("GT"), gp.ArrayKey("MASK"), gp.ArrayKey("TARGET"), gp.ArrayKey("WEIGHTS")


def sources(gt, mask, gt_key, mask_key, offset=OFFSET, voxel_size=VOXEL_SIZE):
    arrays = [gp.ArraySource(gt_key, as_array(gt, offset, voxel_size), interpolatable=False)]
    if mask is not None:
        arrays.append(
            gp.ArraySource(mask_key, as_array(mask, offset, voxel_size), interpolatable=False)
        )
    return tuple(arrays) + gp.MergeProvider()


def weights_pipeline(predictor, gt, mask):
    """Sources of ``gt`` and ``mask``, then both nodes, on the keys of :func:`keys`."""
    gt_key, mask_key, target_key, weights_key = keys()
    return (
        sources(gt, mask, gt_key, mask_key)
        + AddHotDistance(predictor, gt_key, target_key)
        + BalanceHotDistance(predictor, gt_key, target_key, weights_key, mask_key)
    )


def roi_at(begin_voxels, shape_voxels, offset=OFFSET, voxel_size=VOXEL_SIZE):
    return Roi(
        offset + Coordinate(begin_voxels) * voxel_size, Coordinate(shape_voxels) * voxel_size
    )


def request_of(roi, *keys_):
    request = gp.BatchRequest()
    for key in keys_:
        request[key] = gp.ArraySpec(roi=roi)
    return request


# --------------------------------------------------------------------------- target


@pytest.mark.parametrize(
    "begin, shape",
    [((5, 20, 20), (8, 16, 16)), ((6, 21, 30), (5, 9, 13)), ((5, 20, 20), (26, 24, 24))],
)
def test_target_of_a_crop_equals_the_whole_volume_target(volume, begin, shape):
    gt, _ = volume
    gt_key, _, target_key, _ = keys()
    predictor = HotDistancePredictor(CLASSES, SCALE, mask_distances=False)
    pipeline = sources(gt, None, gt_key, None) + AddHotDistance(predictor, gt_key, target_key)
    roi = roi_at(begin, shape)
    with gp.build(pipeline):
        batch = pipeline.request_batch(request_of(roi, target_key))
    target = batch[target_key]
    assert target.spec.roi == roi
    assert target.spec.voxel_size == VOXEL_SIZE
    assert target.data.dtype == np.float32
    expected = crop(whole_target(gt), roi)
    assert target.data.shape == expected.shape
    assert np.abs(target.data - expected).max() <= predictor.tolerance


def test_provided_roi_is_the_gt_roi_shrunk_by_the_padding(volume):
    gt, mask = volume
    gt_key, mask_key, target_key, weights_key = keys()
    predictor = HotDistancePredictor(CLASSES, SCALE, mask_distances=True)
    add = AddHotDistance(predictor, gt_key, target_key)
    balance = BalanceHotDistance(predictor, gt_key, target_key, weights_key, mask_key)
    pipeline = sources(gt, mask, gt_key, mask_key) + add + balance
    padding = predictor.padding(VOXEL_SIZE)
    gt_roi = Roi(OFFSET, Coordinate(SHAPE) * VOXEL_SIZE)
    with gp.build(pipeline):
        for node, key in ((add, target_key), (balance, weights_key)):
            spec = node.spec[key]
            assert spec.roi == gt_roi.grow(-padding, -padding)
            assert spec.voxel_size == VOXEL_SIZE
            assert spec.dtype == np.float32


def test_target_near_the_edge_after_pad_with_a_single_class_without_channel_axis():
    gt = blobs((20, 40, 40), 1, seed=2)[0]
    gt_key, _, target_key, _ = keys()
    predictor = HotDistancePredictor(["mito"], SCALE, mask_distances=False)
    pipeline = (
        gp.ArraySource(gt_key, as_array(gt), interpolatable=False)
        + gp.Pad(gt_key, None)
        + AddHotDistance(predictor, gt_key, target_key)
    )
    roi = roi_at((0, 0, 0), (20, 40, 40))
    with gp.build(pipeline):
        assert pipeline.spec[target_key].roi.unbounded
        batch = pipeline.request_batch(request_of(roi, target_key))
    # beyond the data gp.Pad gives background, so the data's edge is a face
    padded = np.pad(gt, [(6, 6), (21, 21), (21, 21)])
    expected = whole_target(padded[np.newaxis])[:, 6:-6, 21:-21, 21:-21]
    assert np.abs(batch[target_key].data - expected).max() <= predictor.tolerance


def test_two_dimensional_pipeline_with_random_location():
    voxel_size = Coordinate(4, 4)
    offset = Coordinate(-40, 12)
    gt = blobs((80, 80), 2, seed=3)
    gt_key, _, target_key, weights_key = keys()
    shift_key = gp.ArrayKey("SHIFT")
    predictor = HotDistancePredictor(CLASSES, 10.0, mask_distances=True)
    pipeline = (
        sources(gt, None, gt_key, None, offset, voxel_size)
        + gp.RandomLocation(random_shift_key=shift_key)
        + AddHotDistance(predictor, gt_key, target_key)
        + BalanceHotDistance(predictor, gt_key, target_key, weights_key)
    )
    expected = reference_hot_distance_target(gt, voxel_size, 10.0)
    request = request_of(Roi((0, 0), (64, 64)), target_key, weights_key)
    request[shift_key] = gp.ArraySpec(nonspatial=True)
    with gp.build(pipeline):
        for _ in range(3):
            batch = pipeline.request_batch(request)
            # where in the data the batch came from
            roi = batch[target_key].spec.roi.shift(Coordinate(batch[shift_key].data))
            assert batch[target_key].data.shape == (4, 16, 16)
            assert batch[weights_key].data.shape == (4, 16, 16)
            wanted = crop(expected, roi, offset, voxel_size)
            assert np.abs(batch[target_key].data - wanted).max() <= predictor.tolerance


# -------------------------------------------------------------------------- weights


@pytest.mark.parametrize("mask_channels", [False, True])
def test_weights_and_counts_cover_the_requested_roi_only(volume, mask_channels):
    gt, mask = volume
    if mask_channels:
        mask = np.stack([mask, np.ones_like(mask)])
    gt_key, mask_key, target_key, weights_key = keys()
    predictor = HotDistancePredictor(CLASSES, SCALE, mask_distances=False)
    balance = BalanceHotDistance(predictor, gt_key, target_key, weights_key, mask_key)
    pipeline = (
        sources(gt, mask, gt_key, mask_key)
        + AddHotDistance(predictor, gt_key, target_key, mask_key)
        + balance
    )
    rois = [roi_at((5, 20, 20), (10, 12, 16)), roi_at((14, 25, 22), (8, 16, 8))]
    counts = np.zeros((4, 2), np.int64)
    with gp.build(pipeline):
        for roi in rois:
            batch = pipeline.request_batch(request_of(roi, weights_key))
            # a request for the weights alone gets the weights alone
            assert list(batch.arrays) == [weights_key]
            weights = batch[weights_key].data
            assert weights.shape == (4,) + tuple(roi.shape / VOXEL_SIZE)
            labels = crop(gt, roi)
            known = crop(mask, roi)
            for c in range(4):
                channel_known = known[c % 2] if mask_channels else known
                expected, counts[c] = balanced(labels[c % 2], channel_known, counts[c])
                np.testing.assert_allclose(weights[c], expected, rtol=1e-6)
    np.testing.assert_array_equal(balance.moving_class_counts, counts)


def test_mask_distances_zero_the_untrusted_distance_weights_of_a_crop(volume):
    gt, mask = volume
    gt_key, mask_key, target_key, weights_key = keys()
    predictor = HotDistancePredictor(CLASSES, SCALE, mask_distances=True)
    pipeline = weights_pipeline(predictor, gt, mask)
    roi = roi_at((6, 22, 22), (20, 20, 20))
    with gp.build(pipeline):
        batch = pipeline.request_batch(request_of(roi, target_key, weights_key))
    weights = batch[weights_key].data
    # over the whole volume, where the crop's context is known data too
    whole_gt, whole_mask = as_array(gt), as_array(mask)
    whole_weights, _ = predictor.create_weight(
        whole_gt, predictor.create_target(whole_gt), whole_mask
    )
    expected_trusted = crop(whole_weights[whole_weights.roi], roi)[2:] > 0
    np.testing.assert_array_equal(weights[2:] > 0, expected_trusted)
    # untrusted voxels are there and sit where the mask is known
    untrusted = (weights[2:] == 0) & (crop(mask, roi) == 1)
    assert untrusted.any()
    # and near the unknown region: the nearest unknown voxel centre is at most
    # half a voxel farther than its face, which must be within the threshold
    to_unknown = crop(ndimage.distance_transform_edt(mask, sampling=VOXEL_SIZE), roi)
    reach = SCALE * np.arctanh(predictor.threshold) + max(VOXEL_SIZE) / 2
    assert np.all(to_unknown[np.any(untrusted, axis=0)] <= reach)
    assert np.all(weights[:, crop(mask, roi) == 0] == 0)


def test_downstream_requests_for_the_inputs_are_served(volume):
    gt, mask = volume
    gt_key, mask_key, target_key, weights_key = keys()
    predictor = HotDistancePredictor(CLASSES, SCALE, mask_distances=True)
    pipeline = weights_pipeline(predictor, gt, mask)
    roi = roi_at((10, 28, 28), (4, 4, 4))
    wide = roi_at((0, 0, 0), SHAPE)  # larger than the grown ROI the nodes ask for
    request = request_of(roi, target_key, weights_key)
    request[gt_key] = gp.ArraySpec(roi=wide)
    request[mask_key] = gp.ArraySpec(roi=roi)
    before = request.copy()
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    assert request == before  # the request is not mutated
    assert batch[gt_key].spec.roi == wide
    np.testing.assert_array_equal(batch[gt_key].data, gt)
    assert batch[mask_key].spec.roi == roi
    assert batch[target_key].spec.roi == roi


# ---------------------------------------------------------------- moving counts


def stripes(shape):
    """Two classes, each half foreground in every crop of even width in x."""
    x = np.arange(shape[-1])
    first = np.broadcast_to(x % 2, shape)
    return np.stack([first, 1 - first]).astype(np.uint8)


def test_counts_are_shared_across_precache_workers():
    shape = (24, 48, 48)
    gt = stripes(shape)
    gt_key, _, target_key, weights_key = keys()
    predictor = HotDistancePredictor(CLASSES, 8.0, mask_distances=False)
    balance = BalanceHotDistance(predictor, gt_key, target_key, weights_key)
    pipeline = (
        sources(gt, None, gt_key, None, Coordinate(0, 0, 0), Coordinate(8, 8, 8))
        + gp.RandomLocation()
        + AddHotDistance(predictor, gt_key, target_key)
        + balance
        + gp.PreCache(cache_size=2, num_workers=2)
    )
    request = request_of(Roi((0, 0, 0), (64, 64, 64)), weights_key)
    voxels = 8**3
    batches = 6
    with gp.build(pipeline):
        for _ in range(batches):
            batch = pipeline.request_batch(request)
            assert batch[weights_key].data.shape == (4, 8, 8, 8)
    # this process's node processed nothing itself: every count comes from a worker
    counts = balance.moving_class_counts
    totals = counts.sum(axis=1)
    assert np.all(totals == totals[0])
    assert totals[0] % voxels == 0
    assert totals[0] >= batches * voxels
    np.testing.assert_array_equal(counts[:, 0], counts[:, 1])


def test_precache_gives_the_same_target_as_no_precache(volume):
    gt, mask = volume
    gt_key, mask_key, target_key, weights_key = keys()
    predictor = HotDistancePredictor(CLASSES, SCALE, mask_distances=True)
    roi = roi_at((6, 21, 22), (10, 14, 12))
    batches = []
    for precache in (False, True):
        pipeline = weights_pipeline(predictor, gt, mask)
        if precache:
            pipeline += gp.PreCache(cache_size=2, num_workers=2)
        with gp.build(pipeline):
            batches.append(pipeline.request_batch(request_of(roi, target_key, weights_key)))
    plain, cached = batches
    np.testing.assert_array_equal(plain[target_key].data, cached[target_key].data)
    # the weights' zeros (unknown or untrusted) do not depend on the counts
    np.testing.assert_array_equal(plain[weights_key].data == 0, cached[weights_key].data == 0)


def test_checkpoint_round_trip_continues_exactly(volume):
    gt, mask = volume
    gt_key, mask_key, target_key, weights_key = keys()
    predictor = HotDistancePredictor(CLASSES, SCALE, mask_distances=True)

    def pipeline_with(balance):
        return (
            sources(gt, mask, gt_key, mask_key)
            + AddHotDistance(predictor, gt_key, target_key)
            + balance
        )

    rois = [
        roi_at((5, 20, 20), (10, 12, 12)),
        roi_at((7, 22, 21), (9, 14, 10)),
        roi_at((6, 21, 24), (10, 10, 16)),
    ]
    first = BalanceHotDistance(predictor, gt_key, target_key, weights_key, mask_key)
    pipeline = pipeline_with(first)
    with gp.build(pipeline):
        pipeline.request_batch(request_of(rois[0], weights_key))
        state = first.state_dict()
        saved = {key: np.copy(value) for key, value in state.items()}
        expected = pipeline.request_batch(request_of(rois[1], weights_key))[weights_key].data
        expected_counts = first.moving_class_counts

    restored = BalanceHotDistance(predictor, gt_key, target_key, weights_key, mask_key)
    restored.load_state_dict(state)
    np.testing.assert_array_equal(state["moving_class_counts"], saved["moving_class_counts"])
    pipeline = pipeline_with(restored)
    with gp.build(pipeline):
        weights = pipeline.request_batch(request_of(rois[1], weights_key))[weights_key].data
    np.testing.assert_array_equal(weights, expected)
    np.testing.assert_array_equal(restored.moving_class_counts, expected_counts)


def counts_node():
    gt_key, _, target_key, weights_key = keys()
    predictor = HotDistancePredictor(CLASSES, SCALE, mask_distances=False)
    return BalanceHotDistance(predictor, gt_key, target_key, weights_key)


def test_state_survives_torch_save_and_default_torch_load(tmp_path):
    torch = pytest.importorskip("torch", reason="needs the torch extra")
    node = counts_node()
    counts = np.arange(8, dtype=np.int64).reshape(4, 2) * 10**12
    node.load_state_dict({"moving_class_counts": counts})
    torch.save({"balance": node.state_dict()}, tmp_path / "checkpoint.pt")
    # torch's default since 2.6 is weights_only=True: plain values only
    loaded = torch.load(tmp_path / "checkpoint.pt")
    other = counts_node()
    other.load_state_dict(loaded["balance"])
    np.testing.assert_array_equal(other.moving_class_counts, counts)
    assert other.moving_class_counts.dtype == np.int64


def test_state_survives_json_and_old_numpy_states_still_load():
    node = counts_node()
    counts = np.array([[1, 2], [3, 4], [5, 6], [7, 2**40]], dtype=np.int64)
    node.load_state_dict({"channels": CLASSES, "moving_class_counts": counts})
    state = json.loads(json.dumps(node.state_dict()))
    assert state == {
        "channels": CLASSES,
        "moving_class_counts": [[1, 2], [3, 4], [5, 6], [7, 2**40]],
    }
    other = counts_node()
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.moving_class_counts, counts)


@pytest.mark.parametrize(
    "state, error, words",
    [
        ([1, 2], TypeError, "state_dict"),
        ({"channels": ["a", "b"], "moving_class_counts": np.zeros((4, 2))}, ValueError, "classes"),
        ({"moving_class_counts": np.zeros((6, 2), np.int64)}, ValueError, "(4, 2)"),
        ({"moving_class_counts": -np.ones((4, 2), np.int64)}, ValueError, "non-negative"),
    ],
)
def test_load_state_dict_rejects_foreign_state(state, error, words):
    gt_key, _, target_key, weights_key = keys()
    predictor = HotDistancePredictor(CLASSES, SCALE, mask_distances=False)
    node = BalanceHotDistance(predictor, gt_key, target_key, weights_key)
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        node.load_state_dict(state)


# ------------------------------------------------------------ a training graph


def test_training_graph_with_augmentation_precache_and_train(volume, tmp_path):
    torch = pytest.importorskip("torch", reason="needs the torch extra")
    pytest.importorskip("gunpowder.torch", reason="needs gunpowder's torch nodes")

    class WeightedMSE(torch.nn.Module):
        def forward(self, prediction, target, weights):
            return (weights * (prediction - target) ** 2).mean()

    class TinyNet(torch.nn.Module):
        dims = 3
        num_out_channels = 4

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv3d(1, self.num_out_channels, 3, padding=1)

        def forward(self, raw):
            return torch.relu(self.conv(raw))

    gt, mask = volume
    raw = (gt[0] * 0.6 + gt[1] * 0.3).astype(np.float32)[np.newaxis]
    raw_key = gp.ArrayKey("RAW")
    gt_key, mask_key, target_key, weights_key = keys()
    prediction_key = gp.ArrayKey("PREDICTION")
    predictor = HotDistancePredictor(CLASSES, SCALE, mask_distances=True)
    model = predictor.create_model(TinyNet())
    padding = predictor.padding(VOXEL_SIZE) * 2
    balance = BalanceHotDistance(predictor, gt_key, target_key, weights_key, mask_key)
    pipeline = (
        (
            gp.ArraySource(raw_key, as_array(raw), interpolatable=True),
            gp.ArraySource(gt_key, as_array(gt), interpolatable=False),
            gp.ArraySource(mask_key, as_array(mask), interpolatable=False),
        )
        + gp.MergeProvider()
        # finite padding: RandomLocation needs bounds upstream
        + gp.Pad(raw_key, padding)
        + gp.Pad(gt_key, padding)
        + gp.Pad(mask_key, padding)
        + gp.RandomLocation()
        + gp.ElasticAugment((2, 8, 8), (0, 1, 1), (0, np.pi / 4), spatial_dims=3)
        + gp.SimpleAugment(transpose_only=(1, 2))
        + AddHotDistance(predictor, gt_key, target_key, mask_key)
        + balance
        + gp.PreCache(cache_size=4, num_workers=2)
        + gp.torch.Train(
            model,
            WeightedMSE(),
            torch.optim.SGD(model.parameters(), lr=1e-3),
            inputs={"input": raw_key},
            outputs={0: prediction_key},
            loss_inputs={0: prediction_key, 1: target_key, 2: weights_key},
            checkpoint_basename=str(tmp_path / "model"),
            save_every=1000,
            device="cpu",
        )
    )
    roi = Roi((0, 0, 0), Coordinate(8, 16, 16) * VOXEL_SIZE)
    request = request_of(roi, raw_key, target_key, weights_key, prediction_key)
    losses = []
    known_voxels = np.zeros(4, np.int64)
    with gp.build(pipeline):
        for _ in range(3):
            batch = pipeline.request_batch(request)
            losses.append(batch.loss)
            assert batch[target_key].data.shape == (4, 8, 16, 16)
            assert batch[weights_key].data.shape == (4, 8, 16, 16)
            assert batch[prediction_key].data.shape == (4, 8, 16, 16)
            target = batch[target_key].data
            assert np.all(np.abs(target) <= 1)
            assert np.all(np.isfinite(batch[weights_key].data))
            assert np.all(batch[weights_key].data >= 0)
            known_voxels += np.count_nonzero(batch[weights_key].data, axis=(1, 2, 3))
    assert all(np.isfinite(losses))
    # the workers counted at least the known voxels of every batch received
    # (they may have made more for the cache)
    counted = balance.moving_class_counts.sum(axis=1)
    assert np.all(counted >= known_voxels)
    assert np.all(known_voxels[:2] > 0)


# ------------------------------------------------------------------ build errors


def build_and_request(pipeline, request):
    with gp.build(pipeline):
        pipeline.request_batch(request)


def error_chain(error):
    """The messages of ``error`` and every exception it was raised from."""
    messages = []
    while error is not None:
        messages.append(str(error))
        error = error.__cause__ or error.__context__
    return " | ".join(messages)


def test_build_errors(volume):
    gt, mask = volume
    gt_key, mask_key, target_key, weights_key = keys()
    other_key = gp.ArrayKey("OTHER")
    predictor = HotDistancePredictor(CLASSES, SCALE, mask_distances=True)
    roi = roi_at((10, 25, 25), (4, 4, 4))
    cases = [
        (
            sources(gt, None, gt_key, None) + AddHotDistance(predictor, other_key, target_key),
            request_of(roi, target_key),
            "gt OTHER is not provided upstream",
        ),
        (
            sources(gt, None, gt_key, None)
            + AddHotDistance(predictor, gt_key, target_key)
            + BalanceHotDistance(predictor, gt_key, target_key, weights_key, other_key),
            request_of(roi, weights_key),
            "mask OTHER is not provided upstream",
        ),
        (
            sources(gt, None, gt_key, None)
            + BalanceHotDistance(predictor, gt_key, target_key, weights_key),
            request_of(roi, weights_key),
            "target TARGET is not provided upstream",
        ),
        (
            (
                gp.ArraySource(gt_key, as_array(gt)),
                gp.ArraySource(mask_key, as_array(mask, voxel_size=Coordinate(40, 8, 4))),
            )
            + gp.MergeProvider()
            + AddHotDistance(predictor, gt_key, target_key, mask_key),
            request_of(roi, target_key),
            "voxel size",
        ),
        (
            sources(gt[:, :8, :8, :8], None, gt_key, None)
            + AddHotDistance(predictor, gt_key, target_key),
            request_of(roi, target_key),
            "too small",
        ),
        (
            sources(gt, None, gt_key, None) + AddHotDistance(predictor, gt_key, gt_key),
            request_of(roi, gt_key),
            "must differ",
        ),
    ]
    for pipeline, request, words in cases:
        with pytest.raises(Exception) as raised:
            build_and_request(pipeline, request)
        assert words in error_chain(raised.value)
        assert any(
            isinstance(e, BatchFilterError)
            for e in (raised.value, raised.value.__cause__, raised.value.__context__)
        )


def test_request_errors(volume):
    gt, _ = volume
    gt_key, _, target_key, _ = keys()
    off_grid = Roi(OFFSET + Coordinate(400, 160 + 4, 160), Coordinate(160, 64, 64))
    predictor = HotDistancePredictor(CLASSES, SCALE, mask_distances=False)
    pipeline = sources(gt, None, gt_key, None) + AddHotDistance(predictor, gt_key, target_key)
    with pytest.raises(Exception) as raised:
        build_and_request(pipeline, request_of(off_grid, target_key))
    assert "not on the voxel grid" in error_chain(raised.value)

    wrong_classes = HotDistancePredictor(["a", "b", "c"], SCALE, mask_distances=False)
    pipeline = sources(gt, None, gt_key, None) + AddHotDistance(wrong_classes, gt_key, target_key)
    with pytest.raises(Exception) as raised:
        build_and_request(pipeline, request_of(roi_at((10, 25, 25), (4, 4, 4)), target_key))
    assert "gt GT must have shape (3, <3 spatial axes>)" in error_chain(raised.value)


def test_predictor_must_be_a_predictor():
    gt_key, _, target_key, weights_key = keys()
    with pytest.raises(TypeError, match="predictor must be a HotDistancePredictor"):
        AddHotDistance("mito", gt_key, target_key)
    with pytest.raises(TypeError, match="predictor must be a HotDistancePredictor"):
        BalanceHotDistance(None, gt_key, target_key, weights_key)


@pytest.mark.parametrize("off_grid", ["gt", "mask"])
def test_inputs_off_their_voxel_grid_are_refused_when_the_pipeline_is_built(volume, off_grid):
    gt, mask = volume
    gt_key, mask_key, target_key, weights_key = keys()
    # funlib.persistence accepts an offset that is not a multiple of the voxel size
    shifted = OFFSET + Coordinate(4, 0, 0)
    offsets = {
        "gt": shifted if off_grid == "gt" else OFFSET,
        "mask": shifted if off_grid == "mask" else OFFSET,
    }
    predictor = HotDistancePredictor(CLASSES, SCALE, mask_distances=True)
    pipeline = (
        (
            gp.ArraySource(gt_key, as_array(gt, offsets["gt"]), interpolatable=False),
            gp.ArraySource(mask_key, as_array(mask, offsets["mask"]), interpolatable=False),
        )
        + gp.MergeProvider()
        + AddHotDistance(predictor, gt_key, target_key, mask_key)
        + BalanceHotDistance(predictor, gt_key, target_key, weights_key, mask_key)
    )
    key = gt_key if off_grid == "gt" else mask_key
    with pytest.raises(Exception) as raised, gp.build(pipeline):
        pass
    errors = [raised.value, raised.value.__cause__, raised.value.__context__]
    assert any(isinstance(e, BatchFilterError) for e in errors), error_chain(raised.value)
    assert (
        f"{off_grid} {key} has ROI offset {shifted}, which is not a multiple of its "
        f"voxel size {VOXEL_SIZE}"
    ) in error_chain(raised.value)


@pytest.mark.parametrize(
    "bad, words",
    [
        (
            "gt",
            "gt GT channel 0 must hold only 0 and 1 (binary, one channel per class), found [255]",
        ),
        ("mask", "mask MASK must hold only 0 and 1"),
    ],
)
@pytest.mark.parametrize("mask_distances", [False, True])
def test_errors_while_making_a_batch_name_the_array_key(volume, bad, words, mask_distances):
    gt, mask = volume
    if bad == "gt":
        gt = gt * 255  # binary labels saved as 0/255
    else:
        mask = mask * 2
    weights_key = keys()[3]
    predictor = HotDistancePredictor(CLASSES, SCALE, mask_distances=mask_distances)
    pipeline = weights_pipeline(predictor, gt, mask)
    with pytest.raises(Exception) as raised:
        build_and_request(pipeline, request_of(roi_at((6, 22, 22), (8, 8, 8)), weights_key))
    assert words in error_chain(raised.value)


# ------------------------------------------------------------- edge of the data


def test_padded_edge_makes_a_face_that_mask_distances_with_a_padded_mask_leave_untrained():
    """A foreground voxel touching the data's edge: gp.Pad's zeros make a face
    half a voxel away, so its target is tanh(4 / 8) = 0.46, where the whole
    volume's target is near 1; with mask_distances and the mask padded with 0
    its distance weight is 0, without mask_distances it is trained on."""
    voxel_size = Coordinate(8, 8, 8)
    scale = 8.0
    gt = np.zeros((1, 12, 12, 12), np.uint8)
    gt[0, :, :, :6] = 1  # the face inside the data is 6 voxels from the edge at x = 0
    mask = np.ones((12, 12, 12), np.uint8)
    gt_key, mask_key, target_key, weights_key = keys()
    offset = Coordinate(0, 0, 0)
    roi = Roi(offset, Coordinate(12, 12, 12) * voxel_size)  # the whole data
    edge = (slice(None), slice(None), 0)  # x = 0: touching the data's edge

    results = {}
    for mask_distances in (True, False):
        predictor = HotDistancePredictor(["mito"], scale, mask_distances=mask_distances)
        context = predictor.padding(voxel_size)
        pipeline = (
            sources(gt, mask, gt_key, mask_key, offset, voxel_size)
            + gp.Pad(gt_key, context)
            + gp.Pad(mask_key, context)  # gp.Pad's default value: 0, unknown
            + AddHotDistance(predictor, gt_key, target_key)
            + BalanceHotDistance(predictor, gt_key, target_key, weights_key, mask_key)
        )
        with gp.build(pipeline):
            batch = pipeline.request_batch(request_of(roi, target_key, weights_key))
        results[mask_distances] = batch[target_key].data, batch[weights_key].data

    target, weights = results[True]
    # the padded zeros: a face half a voxel from the edge voxels' centres
    np.testing.assert_allclose(target[1][edge], np.tanh(4 / scale), atol=1e-6)
    assert abs(np.tanh(4 / scale) - 0.46) < 0.01
    # the whole volume, where beyond the data is not a face: near 1 there
    whole = predictor.create_target(as_array(gt, offset, voxel_size))
    assert np.all(np.asarray(whole[whole.roi])[1][edge] > 0.99)
    # safe: the distance weight of these voxels is 0; their one-hot weight is not
    assert np.all(weights[1][edge] == 0)
    assert np.all(weights[0][edge] > 0)
    # without mask_distances the same target is trained on
    target, weights = results[False]
    np.testing.assert_allclose(target[1][edge], np.tanh(4 / scale), atol=1e-6)
    assert np.all(weights[1][edge] > 0)


def test_mask_distances_with_one_mask_channel_per_class(volume):
    gt, mask = volume
    # the second class is known everywhere: no untrusted distances there
    masks = np.stack([mask, np.ones_like(mask)])
    _, _, target_key, weights_key = keys()
    predictor = HotDistancePredictor(CLASSES, SCALE, mask_distances=True)
    pipeline = weights_pipeline(predictor, gt, masks)
    roi = roi_at((6, 22, 22), (20, 20, 20))
    with gp.build(pipeline):
        weights = pipeline.request_batch(request_of(roi, weights_key))[weights_key].data
    whole_gt = as_array(gt)
    whole_weights, _ = predictor.create_weight(
        whole_gt, predictor.create_target(whole_gt), as_array(masks)
    )
    expected_trusted = crop(whole_weights[whole_weights.roi], roi)[2:] > 0
    np.testing.assert_array_equal(weights[2:] > 0, expected_trusted)
    assert np.any(weights[2] == 0) and np.all(weights[3] > 0)
