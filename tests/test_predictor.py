"""HotDistancePredictor: the spec's API over the core."""

import sys

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array
from gunpowder import ArraySpec

from gp_hotdistance import HotDistancePredictor
from oracles import brute_force_face_distance


def make_array(data, offset, voxel_size, channels=True):
    spatial = len(voxel_size)
    names = (["c"] if channels else []) + ["z", "y", "x"][-spatial:]
    types = (["channel"] if channels else []) + ["space"] * spatial
    return Array(data, offset=offset, voxel_size=voxel_size, axis_names=names, types=types)


@pytest.fixture
def predictor():
    return HotDistancePredictor(["mito", "er"], scale_factor=20.0, mask_distances=True)


def test_properties(predictor):
    assert predictor.classes == 2
    assert predictor.embedding_dims == 4
    assert predictor.output_array_type.channel_names == (
        "mito_hot",
        "er_hot",
        "mito_distance",
        "er_distance",
    )
    assert predictor.output_array_type.interpolatable
    assert predictor.epsilon == 0.05 and predictor.threshold == 0.8


def test_create_target_matches_oracle(predictor):
    rng = np.random.default_rng(1)
    gt = (rng.random((2, 6, 8, 7)) < 0.3).astype(np.uint8)
    gt_array = make_array(gt, (-40, 8, 0), (40, 4, 4))
    target = predictor.create_target(gt_array)
    assert target.roi == gt_array.roi
    assert target.voxel_size == Coordinate(40, 4, 4)
    data = target[target.roi]
    assert data.shape == (4, 6, 8, 7) and data.dtype == np.float32
    for c in range(2):
        d = brute_force_face_distance(gt[c], (40, 4, 4))
        np.testing.assert_allclose(
            data[2 + c], np.tanh(np.where(gt[c] == 1, d, -d) / 20.0), atol=1e-6
        )
    np.testing.assert_array_equal(data[:2], gt)


def test_single_class_without_channel_axis():
    predictor = HotDistancePredictor(["cell"], 5.0, False)
    gt = np.zeros((5, 6), np.uint8)
    gt[2:, 3:] = 1
    with_axis = predictor.process(gt[np.newaxis], (2, 2), "tanh")
    without = predictor.process(gt, (2, 2), "tanh")
    np.testing.assert_array_equal(with_axis, without)
    target = predictor.create_target(make_array(gt, (0, 0), (2, 2), channels=False))
    np.testing.assert_array_equal(target[target.roi], with_axis)


def test_process_raw_distances(predictor):
    gt = np.zeros((2, 1, 6), np.uint8)
    gt[0, 0, 3:] = 1
    raw = predictor.process(gt, (1, 2))
    np.testing.assert_array_equal(raw[2, 0], [-5, -3, -1, 1, 3, 5])
    assert np.all(raw[3] == -np.inf)


def test_create_weight_moving_counts(predictor):
    gt = np.zeros((2, 4, 4), np.uint8)
    gt[0, :2] = 1
    gt_array = make_array(gt, (0, 0), (1, 1))
    target = predictor.create_target(gt_array)
    mask = make_array(np.ones((4, 4), np.uint8), (0, 0), (1, 1), channels=False)
    weights, counts = predictor.create_weight(gt_array, target, mask)
    assert counts.shape == (4, 2)
    np.testing.assert_array_equal(counts[:2], [[8, 8], [16, 0]])
    data = weights[weights.roi]
    assert data.shape == (4, 4, 4) and data.dtype == np.float32
    np.testing.assert_allclose(data[0], 0.5 / (8 / 17), rtol=1e-6)
    _, counts2 = predictor.create_weight(gt_array, target, mask, counts)
    np.testing.assert_array_equal(counts2[:2], 2 * counts[:2])


def test_create_weight_rejects_counts_of_other_classes(predictor):
    gt = np.zeros((2, 4, 4), np.uint8)
    gt_array = make_array(gt, (0, 0), (1, 1))
    target = predictor.create_target(gt_array)
    with pytest.raises(ValueError, match="moving_class_counts"):
        predictor.create_weight(gt_array, target, None, np.zeros((6, 2), np.int64))


def test_padding_is_never_truncated():
    predictor = HotDistancePredictor(["a"], scale_factor=10.0, mask_distances=False)
    context = predictor.max_distance
    for voxel_size in [(4, 4, 4), (40, 4, 4), (7, 3, 11), (16, 16)]:
        padding = predictor.padding(Coordinate(voxel_size))
        assert isinstance(padding, Coordinate)
        for p, w in zip(padding, voxel_size):
            assert p % w == 0
            assert p >= context + w / 2


def test_gt_region_for_roi_does_not_mutate():
    predictor = HotDistancePredictor(["a"], scale_factor=10.0, mask_distances=False)
    spec = ArraySpec(roi=Roi((0, 0, 0), (80, 40, 40)), voxel_size=Coordinate(40, 4, 4))
    before = spec.copy()
    grown = predictor.gt_region_for_roi(spec)
    assert spec == before
    padding = predictor.padding(Coordinate(40, 4, 4))
    assert grown.roi == spec.roi.grow(padding, padding)
    assert grown.voxel_size == spec.voxel_size


def test_gt_region_for_roi_off_grid():
    predictor = HotDistancePredictor(["a"], scale_factor=10.0, mask_distances=False)
    spec = ArraySpec(roi=Roi((0, 2), (8, 8)), voxel_size=Coordinate(4, 4))
    with pytest.raises(ValueError, match="voxel grid"):
        predictor.gt_region_for_roi(spec)


def tiny_net(dims):
    """A one-convolution network with ``dims`` and ``num_out_channels``."""
    torch = pytest.importorskip("torch", reason="needs the torch extra")

    class TinyNet(torch.nn.Module):
        def __init__(self, dims):
            super().__init__()
            self.dims = dims
            self.num_out_channels = 5
            conv = torch.nn.Conv3d if dims == 3 else torch.nn.Conv2d
            self.conv = conv(1, 5, 3, padding=1)

        def forward(self, x):
            return self.conv(x)

    return TinyNet(dims)


@pytest.mark.parametrize("dims", [2, 3])
def test_create_model(predictor, dims):
    torch = pytest.importorskip("torch", reason="needs the torch extra")
    model = predictor.create_model(tiny_net(dims))
    x = torch.zeros((1, 1) + (8,) * dims)
    assert model(x).shape == (1, 4) + (8,) * dims


def test_create_model_bad_dims(predictor):
    net = tiny_net(3)
    net.dims = 4
    with pytest.raises(ValueError, match="dims"):
        predictor.create_model(net)


def test_create_model_without_torch_names_the_extra(predictor, monkeypatch):
    # a None entry in sys.modules makes `import torch` raise ImportError, as
    # where torch is not installed; runs on both stacks
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r'pip install "gp_hotdistance\[torch\]"'):
        predictor.create_model(object())


@pytest.mark.parametrize(
    "kwargs,error",
    [
        (dict(channels="mito", scale_factor=1.0, mask_distances=False), TypeError),
        (dict(channels=[], scale_factor=1.0, mask_distances=False), ValueError),
        (dict(channels=["a"], scale_factor=0.0, mask_distances=False), ValueError),
        (dict(channels=["a"], scale_factor=-1.0, mask_distances=False), ValueError),
        (dict(channels=["a"], scale_factor=float("nan"), mask_distances=False), ValueError),
    ],
)
def test_constructor_errors(kwargs, error):
    with pytest.raises(error):
        HotDistancePredictor(**kwargs)
