"""The training loss of a hot-distance target: :class:`HotDistanceLoss`.

Torch is not a requirement of the package (it comes with the ``torch``
extra), so this module does not import it when the package is imported: the
class is made when :class:`HotDistanceLoss` is first looked up, and
``gp_hotdistance.HotDistanceLoss`` is then a real ``torch.nn.Module``
subclass. What this buys is that the package imports where torch is not
installed: the name still imports, and creating a loss raises an
``ImportError`` that names the extra. (Where torch is installed, importing
the package imports it anyway: gunpowder imports ``gunpowder.torch``.)

The value of the loss, for ``prediction``, ``target`` and ``weights`` of shape
``(batch, 2 * classes, *spatial)`` (one-hot channels first, then distance
channels, as :class:`~gp_hotdistance.HotDistancePredictor` lays them out)::

    mean(w_hot * BCEWithLogits(p_hot, t_hot)) + mean(w_dist * (p_dist - t_dist) ** 2)

where ``BCEWithLogits(x, t) = -t * log(sigmoid(x)) - (1 - t) * log(1 - sigmoid(x))``
and each mean runs over every element of its half (batch, channels, voxels).
The one-hot half of the prediction is logits; the distance half is compared as
it is with the target's ``tanh`` distances. A term whose weight is 0 is 0, in
the value and in the gradient, whatever the prediction and the target hold
there (NaN and infinities included).
"""

import logging

from . import _checks

logger = logging.getLogger(__name__)

__all__ = ["HotDistanceLoss"]  # noqa: F822 (made on first look-up: __getattr__)

_DOC = """Loss of a hot-distance prediction against its target and weights.

    Its value, for tensors ``(batch, 2 * classes, *spatial)`` with the channel
    axis at 1 (one-hot channels first, then distance channels)::

        mean(w_hot * BCEWithLogits(p_hot, t_hot)) + mean(w_dist * (p_dist - t_dist) ** 2)

    where each mean runs over every element of its half (batch, channels and
    voxels), ``BCEWithLogits`` is torch's
    ``binary_cross_entropy_with_logits`` (the one-hot half of the prediction
    is logits: apply a sigmoid for probabilities, e.g. with
    :meth:`HotDistancePredictor.to_target_range`) and the distance half is
    compared as it is with the target's ``tanh`` distances (a linear output
    works best: a final ``tanh`` can saturate and stop learning a class).

    A term whose weight is 0 contributes exactly 0 to the value and to the
    gradient, whatever the prediction and the target hold there: a NaN or an
    infinite logit or distance in an unknown region (a last layer that
    overflows in float16, say) does not poison the loss. A NaN or an
    infinity where the weight is not 0 still makes the loss NaN or infinite.

    The reference implementation computes the distance term as
    ``MSE(p * w, t * w) = mean(w**2 * (p - t)**2)``, which squares the
    weights; here each squared error is weighted by ``w`` once, like each
    cross-entropy term, so that the weights of
    :class:`~gp_hotdistance.BalanceHotDistance` balance the classes as they
    are meant to.

    Plugs into gunpowder as::

        gp.torch.Train(model, HotDistanceLoss(), optimizer, inputs={0: raw},
                       outputs={0: prediction},
                       loss_inputs={0: prediction, 1: target, 2: weights}, ...)

    where the arrays carry a batch axis (e.g. ``gp.Unsqueeze``).

    Needs torch (the ``torch`` extra): without it, creating a loss raises
    ``ImportError``.

    Call with:

        prediction (``torch.Tensor``):

            The network's output, ``(batch, 2 * classes, *spatial)``: logits,
            then distances.

        target (``torch.Tensor``):

            The target (``AddHotDistance``), of the same shape: 0/1, then
            ``tanh`` distances in [-1, 1].

        weights (``torch.Tensor``):

            The weights (``BalanceHotDistance``), of the same shape, >= 0.

    Returns a scalar tensor. Raises ``ValueError`` (naming the argument) when
    a shape differs from the prediction's, the channel count (axis 1) is odd,
    a tensor has fewer than 3 axes or no element, or a tensor lies on another
    device than the prediction; ``TypeError`` for something other than a
    floating-point tensor (integer or bool targets and weights included:
    convert them with ``.float()``).

    Example::

        >>> import torch
        >>> from gp_hotdistance import HotDistanceLoss
        >>> p = torch.zeros(1, 2, 3)                 # one class, three voxels
        >>> t = torch.tensor([[[1.0, 0, 0], [0.5, -0.5, 0]]])
        >>> w = torch.ones(1, 2, 3)
        >>> round(HotDistanceLoss()(p, t, w).item(), 4)   # log(2) + (0.25 + 0.25) / 3
        0.8598
    """

_LOSS_CLASS = None


def _check_inputs(torch, prediction, target, weights):
    for name, tensor in (("prediction", prediction), ("target", target), ("weights", weights)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor (batch, 2 * classes, *spatial), "
                f"got {type(tensor).__name__}"
            )
    if prediction.dim() < 3:
        raise ValueError(
            f"prediction must have shape (batch, 2 * classes, *spatial) with the "
            f"channel axis at 1, got shape {tuple(prediction.shape)}"
        )
    channels = prediction.shape[1]
    if channels % 2:
        raise ValueError(
            f"prediction must have an even number of channels (axis 1: one-hot, "
            f"then distance, per class), got {channels} (shape {tuple(prediction.shape)})"
        )
    for name, tensor in (("target", target), ("weights", weights)):
        if tensor.shape != prediction.shape:
            raise ValueError(
                f"{name} must have the prediction's shape {tuple(prediction.shape)}, "
                f"got {tuple(tensor.shape)}"
            )
    if prediction.numel() == 0:
        # every mean would be 0 / 0: nan, silently
        raise ValueError(f"prediction must not be empty, got shape {tuple(prediction.shape)}")
    for name, tensor in (("prediction", prediction), ("target", target), ("weights", weights)):
        if not tensor.dtype.is_floating_point:
            raise TypeError(
                f"{name} must be a floating-point tensor (e.g. float32), got dtype {tensor.dtype}"
            )
        if tensor.device != prediction.device:
            raise ValueError(
                f"{name} must lie on the prediction's device {prediction.device}, "
                f"got {tensor.device}"
            )
    return channels // 2


def _make_class(torch):
    functional = torch.nn.functional

    class HotDistanceLoss(torch.nn.Module):
        __doc__ = _DOC

        def forward(self, prediction, target, weights):
            classes = _check_inputs(torch, prediction, target, weights)
            # Terms of weight 0 get 0 for prediction and target before any
            # arithmetic: w * f(NaN) is NaN and its gradient too, also where
            # the result is later dropped by torch.where; torch.where on the
            # inputs passes no gradient to the unselected values.
            used = weights != 0
            zero = prediction.new_zeros(())
            prediction = torch.where(used, prediction, zero)
            target = torch.where(used, target, zero.to(target.dtype))
            hot = functional.binary_cross_entropy_with_logits(
                prediction[:, :classes],
                target[:, :classes],
                weight=weights[:, :classes],
                reduction="mean",
            )
            error = prediction[:, classes:] - target[:, classes:]
            distance = (weights[:, classes:] * error * error).mean()
            return hot + distance

    HotDistanceLoss.__module__ = __name__
    HotDistanceLoss.__qualname__ = "HotDistanceLoss"
    return HotDistanceLoss


class _HotDistanceLossWithoutTorch:
    """HotDistanceLoss where torch is missing: the name imports, making one raises."""

    # the loss's own text, so that help() reads the same with or without torch
    # (the literal above gives doctest a line to report the example at)
    __doc__ = _DOC

    def __init__(self, *args, **kwargs):
        _checks.import_torch("HotDistanceLoss")  # raises, naming the extra
        raise ImportError("torch became importable after gp_hotdistance.loss was first used")


def _loss_class():
    global _LOSS_CLASS
    if _LOSS_CLASS is None:
        try:
            import torch
        except ImportError:
            logger.debug("torch is not installed: HotDistanceLoss cannot be created")
            return _HotDistanceLossWithoutTorch
        _LOSS_CLASS = _make_class(torch)
    return _LOSS_CLASS


def __getattr__(name):
    # the class is made on first look-up, so that the package imports where
    # torch is not installed
    if name == "HotDistanceLoss":
        return _loss_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + ["HotDistanceLoss"])
