"""HotDistanceLoss: a hand-checked value, the weights counted once, shape
errors, gunpowder's calling convention, and the torch-free import."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

import gp_hotdistance
from gp_hotdistance import HotDistancePredictor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tensors(torch, prediction, target, weights):
    return [torch.tensor(np.asarray(a, dtype=np.float32)) for a in (prediction, target, weights)]


def test_hand_checked_value():
    torch = pytest.importorskip("torch", reason="needs the torch extra")
    # one class, batch 1, two voxels: logits (0, 2) against (1, 0) with
    # weights (1, 0.5); distances (0.5, -1) against (1, -0.5) with weights (2, 1)
    p, t, w = tensors(
        torch,
        [[[0.0, 2.0], [0.5, -1.0]]],
        [[[1.0, 0.0], [1.0, -0.5]]],
        [[[1.0, 0.5], [2.0, 1.0]]],
    )
    # BCE(0, 1) = log 2; BCE(2, 0) = log(1 + e^2)
    bce = (1.0 * math.log(2.0) + 0.5 * math.log(1.0 + math.exp(2.0))) / 2
    squared = (2.0 * 0.5**2 + 1.0 * 0.5**2) / 2
    assert bce == pytest.approx(0.878306, abs=1e-6)
    assert squared == 0.375
    value = gp_hotdistance.HotDistanceLoss()(p, t, w)
    assert value.item() == pytest.approx(1.253306, abs=1e-6)
    # the reference's MSE(p * w, t * w) squares the weights: 0.625, not 0.375
    assert ((p[:, 1:] * w[:, 1:] - t[:, 1:] * w[:, 1:]) ** 2).mean().item() == 0.625


def test_means_run_over_each_half_of_a_batch():
    torch = pytest.importorskip("torch", reason="needs the torch extra")
    rng = np.random.default_rng(0)
    shape = (3, 4, 2, 3, 5)  # batch 3, two classes, 3-D
    p = rng.normal(size=shape)
    t = np.concatenate(
        [rng.integers(0, 2, (3, 2, 2, 3, 5)), rng.uniform(-1, 1, (3, 2, 2, 3, 5))], 1
    )
    w = rng.uniform(0, 3, shape)
    # the oracle: plain numpy, the logistic loss written out
    hot = w[:, :2] * (
        np.log1p(np.exp(-np.abs(p[:, :2]))) + np.maximum(p[:, :2], 0) - p[:, :2] * t[:, :2]
    )
    expected = hot.mean() + (w[:, 2:] * (p[:, 2:] - t[:, 2:]) ** 2).mean()
    value = gp_hotdistance.HotDistanceLoss()(
        *[torch.tensor(a, dtype=torch.float64) for a in (p, t, w)]
    )
    assert value.item() == pytest.approx(expected, rel=1e-12)


def test_gradient_flows_to_the_prediction_only_where_weighted():
    torch = pytest.importorskip("torch", reason="needs the torch extra")
    p = torch.zeros(1, 2, 4, requires_grad=True)
    t = torch.tensor([[[1.0, 0, 1, 0], [0.5, 0.5, -0.5, -0.5]]])
    w = torch.tensor([[[1.0, 0, 1, 0], [0.0, 1, 0, 1]]])
    gp_hotdistance.HotDistanceLoss()(p, t, w).backward()
    grad = p.grad[0]
    assert torch.equal(grad[0] == 0, torch.tensor([False, True, False, True]))
    assert torch.equal(grad[1] == 0, torch.tensor([True, False, True, False]))


def test_is_a_module_and_pickles():
    torch = pytest.importorskip("torch", reason="needs the torch extra")
    import pickle

    loss = gp_hotdistance.HotDistanceLoss()
    assert isinstance(loss, torch.nn.Module)
    assert gp_hotdistance.HotDistanceLoss is gp_hotdistance.loss.HotDistanceLoss
    assert type(pickle.loads(pickle.dumps(loss))) is type(loss)
    assert "squares the" in type(loss).__doc__  # the reference's difference is named


@pytest.mark.parametrize(
    "shapes, argument",
    [
        (((1, 4, 5), (1, 4, 6), (1, 4, 5)), "target"),
        (((1, 4, 5), (1, 4, 5), (2, 4, 5)), "weights"),
        (((1, 3, 5), (1, 3, 5), (1, 3, 5)), "even number of channels"),
        (((4, 5), (4, 5), (4, 5)), "(batch, 2 * classes"),
    ],
)
def test_bad_shapes_name_the_argument(shapes, argument):
    torch = pytest.importorskip("torch", reason="needs the torch extra")
    loss = gp_hotdistance.HotDistanceLoss()
    with pytest.raises(ValueError) as error:
        loss(*[torch.zeros(s) for s in shapes])
    assert argument in str(error.value)
    if argument in ("target", "weights"):
        assert str(error.value).startswith(argument + " must have the prediction's shape")


def test_a_numpy_array_is_a_type_error():
    torch = pytest.importorskip("torch", reason="needs the torch extra")
    with pytest.raises(TypeError, match="target must be a torch.Tensor"):
        gp_hotdistance.HotDistanceLoss()(
            torch.zeros(1, 2, 3), np.zeros((1, 2, 3)), torch.zeros(1, 2, 3)
        )


@pytest.mark.parametrize("argument", ["prediction", "target", "weights"])
@pytest.mark.parametrize("dtype", ["bool", "uint8", "int64", "complex64"])
def test_a_tensor_that_is_not_floating_point_is_a_type_error(argument, dtype):
    # before: a bool or integer target raised torch's RuntimeError from inside
    # the BCE, an integer prediction a NotImplementedError
    torch = pytest.importorskip("torch", reason="needs the torch extra")
    tensors = {name: torch.zeros(1, 2, 3) for name in ("prediction", "target", "weights")}
    tensors[argument] = tensors[argument].to(getattr(torch, dtype))
    with pytest.raises(TypeError, match=f"^{argument} must be a floating-point tensor.*{dtype}"):
        gp_hotdistance.HotDistanceLoss()(**tensors)


@pytest.mark.parametrize("shape", [(0, 2, 3), (1, 0, 3), (1, 2, 0)])
def test_an_empty_batch_is_a_value_error_not_nan(shape):
    # before: every mean was 0 / 0 and the loss a silent nan
    torch = pytest.importorskip("torch", reason="needs the torch extra")
    with pytest.raises(ValueError, match="prediction must not be empty"):
        gp_hotdistance.HotDistanceLoss()(*[torch.zeros(shape)] * 3)


def test_a_tensor_on_another_device_names_the_argument():
    torch = pytest.importorskip("torch", reason="needs the torch extra")
    p = torch.zeros(1, 2, 3)
    with pytest.raises(ValueError, match="^weights must lie on the prediction's device cpu"):
        gp_hotdistance.HotDistanceLoss()(p, p, p.to("meta"))


def test_trains_in_gunpowder():
    torch = pytest.importorskip("torch", reason="needs the torch extra")
    import gunpowder as gp
    from funlib.geometry import Roi

    raw, target, weights, prediction = (gp.ArrayKey(n) for n in ("R", "T", "W", "P"))
    rng = np.random.default_rng(2)
    data = {
        raw: rng.normal(size=(1, 1, 4, 4)).astype(np.float32),
        target: np.concatenate([np.ones((1, 1, 4, 4)), np.full((1, 1, 4, 4), 0.5)], 1).astype(
            np.float32
        ),
        weights: np.ones((1, 2, 4, 4), np.float32),
    }
    from funlib.persistence import Array

    sources = tuple(
        gp.ArraySource(
            key, Array(value, offset=(0, 0), voxel_size=(1, 1), axis_names=["b^", "c^", "y", "x"])
        )
        for key, value in data.items()
    )
    model = torch.nn.Conv2d(1, 2, 1)
    pipeline = (
        sources
        + gp.MergeProvider()
        + gp.torch.Train(
            model,
            gp_hotdistance.HotDistanceLoss(),
            torch.optim.SGD(model.parameters(), lr=0.5),
            inputs={0: raw},
            outputs={0: prediction},
            loss_inputs={0: prediction, 1: target, 2: weights},
            array_specs={prediction: gp.ArraySpec(voxel_size=(1, 1))},
            save_every=10**9,
            checkpoint_basename=os.devnull,
        )
    )
    request = gp.BatchRequest()
    for key in data:
        request[key] = gp.ArraySpec(roi=Roi((0, 0), (4, 4)))
    request[prediction] = gp.ArraySpec(roi=Roi((0, 0), (4, 4)))
    losses = []
    with gp.build(pipeline):
        for _ in range(30):
            losses.append(float(pipeline.request_batch(request).loss))
    assert losses[-1] < 0.5 * losses[0]


def test_to_target_range_numpy_and_torch():
    predictor = HotDistancePredictor(["a", "b"], scale_factor=4.0, mask_distances=False)
    raw = np.array([[0.0, 100.0], [-3.0, 1.0], [1.5, -0.2], [-7.0, 0.99]], np.float32)
    expected = np.array(
        [[0.5, 1.0], [1 / (1 + math.exp(3)), 1 / (1 + math.exp(-1))], [1.0, -0.2], [-1.0, 0.99]]
    )
    before = raw.copy()
    out = predictor.to_target_range(raw)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    np.testing.assert_array_equal(raw, before)  # not modified
    torch = pytest.importorskip("torch", reason="needs the torch extra")
    batch = torch.tensor(raw[None])
    np.testing.assert_allclose(
        predictor.to_target_range(batch, channel_axis=1)[0].numpy(), expected, rtol=1e-6
    )
    with pytest.raises(ValueError, match="4 channels"):
        predictor.to_target_range(batch)


def test_imports_without_torch_and_names_the_extra():
    # torch blocked: the package imports, the name exists, creating the loss fails
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from gp_hotdistance import HotDistanceLoss\n"
        "try:\n    HotDistanceLoss()\n"
        "except ImportError as e:\n    print('ImportError:', e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "ImportError: HotDistanceLoss needs torch" in result.stdout
    assert "gp_hotdistance[torch]" in result.stdout
