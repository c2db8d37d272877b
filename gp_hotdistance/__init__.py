"""Hot-distance targets and weights for gunpowder training pipelines.

For each class of a binary ground truth the target is the one-hot channel and
``tanh(d / scale_factor)``, ``d`` the signed distance in world units from each
voxel centre to the nearest face midpoint between two voxels of different
label. Where things are:

- :mod:`gp_hotdistance.distance`: the exact signed face distance and the
  target, on numpy arrays (with a glossary of the terms used throughout);
- :mod:`gp_hotdistance.weights`: class-balancing weights and the distance mask;
- :class:`HotDistancePredictor` (:mod:`gp_hotdistance.predictor`): dacapo's
  predictor API over those functions, on funlib.persistence arrays;
- :class:`AddHotDistance` and :class:`BalanceHotDistance`
  (:mod:`gp_hotdistance.nodes`): the gunpowder nodes;
- :class:`HotDistanceLoss` (:mod:`gp_hotdistance.loss`): the training loss,
  a ``torch.nn.Module`` made on first use (torch is an extra);
- :mod:`gp_hotdistance.postprocess`: binary and instance segmentations from
  a prediction; :mod:`gp_hotdistance.metrics`: scores against a gt;
- :mod:`gp_hotdistance.precompute`: the target of a whole zarr volume, block
  by block on daisy (also ``gp-hotdistance precompute``; the blockwise extra),
  not imported by ``import gp_hotdistance``.

The compiled kernels (numba) are in the private package
``gp_hotdistance._kernels``, the argument checks shared by every layer in
``gp_hotdistance._checks``. Importing or calling the package changes no
process-wide setting (no numba threading layer or thread count, no
environment variable); the kernels run on the number of threads each call
asks for (``threads``, 1 by default; see the threads page of the docs).
"""

from . import distance, loss, metrics, postprocess, weights
from .distance import (
    context_distance,
    face_distance,
    hot_distance_target,
    padding_voxels,
    signed_face_distance,
    unknown_distance,
)
from .metrics import binary_scores, instance_f1
from .nodes import AddHotDistance, BalanceHotDistance
from .postprocess import instance_segmentation, threshold_segmentation
from .predictor import HotDistanceArrayType, HotDistancePredictor
from .weights import balance_weights, distance_mask, hot_distance_weights, trust_reach

__version__ = "0.3.0"

#: The public API: the nodes, the predictor, and the numpy-level functions of
#: :mod:`~gp_hotdistance.distance` and :mod:`~gp_hotdistance.weights` (a test
#: checks that it holds their ``__all__`` and that the API reference,
#: docs/api.rst, names each).
__all__ = [
    "AddHotDistance",
    "BalanceHotDistance",
    "HotDistanceArrayType",
    "HotDistanceLoss",
    "HotDistancePredictor",
    "balance_weights",
    "binary_scores",
    "context_distance",
    "distance",
    "distance_mask",
    "face_distance",
    "hot_distance_target",
    "hot_distance_weights",
    "instance_f1",
    "instance_segmentation",
    "loss",
    "metrics",
    "padding_voxels",
    "postprocess",
    "signed_face_distance",
    "threshold_segmentation",
    "trust_reach",
    "unknown_distance",
    "weights",
]


def __getattr__(name):
    # HotDistanceLoss needs torch, which gp_hotdistance.loss imports on first
    # use only, so that the package imports where torch is not installed
    if name == "HotDistanceLoss":
        return loss.HotDistanceLoss
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"HotDistanceLoss"})
