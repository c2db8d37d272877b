"""HotDistanceLoss where the weights are 0: a NaN or an infinity in the
prediction or the target there changes neither the value nor the gradient; where
the weights are not 0 it still shows."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs the torch extra")

from gp_hotdistance import HotDistanceLoss  # noqa: E402

SHAPE = (2, 4, 3, 5)  # batch 2, two classes (hot 0-1, distance 2-3), 2-D
BAD = {"nan": math.nan, "+inf": math.inf, "-inf": -math.inf}


def problem(seed=0):
    rng = np.random.default_rng(seed)
    p = rng.normal(0, 2, SHAPE)
    t = np.concatenate([rng.integers(0, 2, (2, 2, 3, 5)), rng.uniform(-1, 1, (2, 2, 3, 5))], 1)
    w = rng.uniform(0.1, 3, SHAPE)
    w[:, :, 1, :] = 0  # an unknown slab, every channel
    w[0, 3, 2, 4] = 0  # and one distance voxel
    return p, t, w


def formula(p, t, w):
    """The loss written out, term by term, over the terms of weight > 0 only
    (those of weight 0 are 0 by definition), each mean over all elements."""
    classes = p.shape[1] // 2
    hot = np.zeros(p[:, :classes].shape)
    dist = np.zeros(p[:, classes:].shape)
    for index in np.ndindex(hot.shape):
        b, c, *voxel = index
        x, y, weight = p[(b, c, *voxel)], t[(b, c, *voxel)], w[(b, c, *voxel)]
        if weight != 0:
            # -y log sigmoid(x) - (1 - y) log(1 - sigmoid(x))
            hot[index] = weight * (max(x, 0.0) - x * y + math.log1p(math.exp(-abs(x))))
        d = (b, classes + c, *voxel)
        if w[d] != 0:
            dist[index] = w[d] * (p[d] - t[d]) ** 2
    return hot.mean() + dist.mean()


def loss_and_gradient(p, t, w):
    prediction = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    value = HotDistanceLoss()(
        prediction, torch.tensor(t, dtype=torch.float64), torch.tensor(w, dtype=torch.float64)
    )
    value.backward()
    return value.item(), prediction.grad.numpy()


def test_finite_inputs_give_the_formula():
    p, t, w = problem()
    value, gradient = loss_and_gradient(p, t, w)
    assert value == pytest.approx(formula(p, t, w), rel=1e-12)
    assert np.all(gradient[w == 0] == 0)


@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize(
    "where",
    ["prediction logit", "prediction distance", "target hot", "target distance"],
)
def test_non_finite_values_at_weight_0_contribute_nothing(where, bad):
    p, t, w = problem()
    expected = formula(p, t, w)
    array, channel = {
        "prediction logit": (p, 1),
        "prediction distance": (p, 3),
        "target hot": (t, 0),
        "target distance": (t, 3),
    }[where]
    array[:, channel, 1, :] = BAD[bad]  # the unknown slab
    if channel == 3:
        array[0, 3, 2, 4] = BAD[bad]  # the single voxel of weight 0
    value, gradient = loss_and_gradient(p, t, w)
    assert value == pytest.approx(expected, rel=1e-12)
    assert np.all(np.isfinite(gradient))
    assert np.all(gradient[w == 0] == 0)
    # the gradient elsewhere is that of the clean problem
    clean = problem()
    _, clean_gradient = loss_and_gradient(*clean)
    np.testing.assert_allclose(gradient, clean_gradient, rtol=1e-12, atol=0)


@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize("where", ["prediction logit", "prediction distance", "target distance"])
def test_non_finite_values_where_weighted_are_not_hidden(where, bad):
    p, t, w = problem()
    array, channel = {
        "prediction logit": (p, 0),
        "prediction distance": (p, 2),
        "target distance": (t, 3),
    }[where]
    array[1, channel, 0, 0] = BAD[bad]  # weight > 0 there
    assert w[1, channel, 0, 0] > 0
    value, _ = loss_and_gradient(p, t, w)
    assert not math.isfinite(value)
    if bad == "nan":
        assert math.isnan(value)


def test_float32_with_a_nan_slab_trains():
    """What a float16 overflow in an unknown region looks like to the loss:
    the step still moves the weighted voxels and no others."""
    p, t, w = problem(1)
    p[:, :, 1, :] = math.nan
    prediction = torch.tensor(p, dtype=torch.float32, requires_grad=True)
    value = HotDistanceLoss()(
        prediction, torch.tensor(t, dtype=torch.float32), torch.tensor(w, dtype=torch.float32)
    )
    value.backward()
    assert math.isfinite(value.item())
    assert value.item() == pytest.approx(formula(p, t, w), rel=1e-5)
    assert torch.isfinite(prediction.grad).all()
    assert (prediction.grad[torch.tensor(w) == 0] == 0).all()
