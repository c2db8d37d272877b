"""The network's side of the predictor (private): what a prediction looks
like (:class:`HotDistanceArrayType`, public as
``gp_hotdistance.HotDistanceArrayType``), the head
:meth:`HotDistancePredictor.create_model
<gp_hotdistance.predictor.HotDistancePredictor.create_model>` adds, and
:func:`to_target_range`, behind :meth:`HotDistancePredictor.to_target_range
<gp_hotdistance.predictor.HotDistancePredictor.to_target_range>`.

A prediction has ``2 * classes`` channels: one-hot logits, then distances.
torch is imported only for a model or a tensor (see
:func:`gp_hotdistance._checks.import_torch`).
"""

import numbers
from dataclasses import dataclass

import numpy as np

from . import _checks


@dataclass(frozen=True)
class HotDistanceArrayType:
    """What a hot-distance prediction looks like
    (:attr:`HotDistancePredictor.output_array_type`).

    Args:

        channel_names (``tuple`` of ``str``):

            One name per output channel: ``"<class>_hot"`` for the one-hot
            channels, then ``"<class>_distance"`` for the distance channels.

        interpolatable (``bool``):

            Whether the values can be interpolated (resampled linearly). True:
            one-hot probabilities and tanh distances both can.
    """

    channel_names: tuple
    interpolatable: bool = True

    @property
    def num_channels(self):
        """The number of channels."""
        return len(self.channel_names)


# its public home (and the one pickles name) is the predictor module
HotDistanceArrayType.__module__ = "gp_hotdistance.predictor"


def model_head(architecture, out_channels, kernel_size):
    """``architecture`` followed by a convolution to ``out_channels``; the
    checks and errors of :meth:`HotDistancePredictor.create_model
    <gp_hotdistance.predictor.HotDistancePredictor.create_model>`."""
    torch = _checks.import_torch("HotDistancePredictor.create_model")

    if not isinstance(architecture, torch.nn.Module):
        raise TypeError(
            f"architecture must be a torch.nn.Module, got {type(architecture).__name__}"
        )
    dims = getattr(architecture, "dims", None)
    if dims is None and hasattr(architecture, "input_shape"):
        dims = len(architecture.input_shape)
    convolutions = {2: torch.nn.Conv2d, 3: torch.nn.Conv3d}
    if dims not in convolutions:
        raise ValueError(f"architecture.dims must be 2 or 3, got {dims!r}")
    channels = _checks.check_positive_int(
        getattr(architecture, "num_out_channels", None), "architecture.num_out_channels"
    )
    head = convolutions[dims](channels, out_channels, kernel_size)
    return torch.nn.Sequential(architecture, head)


def to_target_range(prediction, channels, channel_axis):
    """``prediction`` (numpy or torch) with a sigmoid on its one-hot half and
    its distance half clipped to [-1, 1]: a new array or tensor.

    ``channels`` are the class names (``2 * len(channels)`` channels along
    ``channel_axis``); the arguments, results and errors are those of
    :meth:`HotDistancePredictor.to_target_range
    <gp_hotdistance.predictor.HotDistancePredictor.to_target_range>`.
    """
    classes = len(channels)
    is_tensor = type(prediction).__module__.split(".")[0] == "torch"
    if not is_tensor:
        prediction = _checks.as_array(prediction, "prediction")
        if prediction.dtype.kind not in "biuf":
            # strings failed inside astype, complex lost its imaginary part
            raise TypeError(
                f"prediction must be a numeric (float) array, got dtype {prediction.dtype}"
            )
        if prediction.dtype != np.float64:
            prediction = prediction.astype(np.float32)
    if isinstance(channel_axis, bool) or not isinstance(channel_axis, numbers.Integral):
        raise TypeError(f"channel_axis must be an int, got {channel_axis!r}")
    channel_axis = int(channel_axis)
    shape = tuple(prediction.shape)
    if not -len(shape) <= channel_axis < len(shape) or shape[channel_axis] != 2 * classes:
        raise ValueError(
            f"prediction must have {2 * classes} channels (one-hot, then "
            f"distance, for {list(channels)}) along channel_axis "
            f"{channel_axis}, got shape {shape}"
        )
    index = [slice(None)] * len(shape)
    hot, dist = list(index), list(index)
    hot[channel_axis] = slice(None, classes)
    dist[channel_axis] = slice(classes, None)
    hot, dist = tuple(hot), tuple(dist)
    if is_tensor:
        torch = _checks.import_torch("HotDistancePredictor.to_target_range")
        return torch.cat(
            [torch.sigmoid(prediction[hot]), prediction[dist].clamp(-1.0, 1.0)],
            dim=channel_axis,
        )
    from scipy.special import expit

    result = np.empty_like(prediction)
    result[hot] = expit(prediction[hot])
    result[dist] = np.clip(prediction[dist], -1.0, 1.0)
    return result
