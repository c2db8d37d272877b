"""Scores of binary and instance segmentations against a ground truth.

- :func:`binary_scores`: overlap scores (Dice, Jaccard, precision, recall)
  and surface-distance scores (Hausdorff, its 95th percentile, mean
  false-positive and false-negative distances, precision and recall within a
  tolerance) in world units, for anisotropic voxels, optionally restricted to
  a mask;
- :func:`instance_f1`: F1 of instance segmentations matched by IoU.

Distances are between voxel centres (world units: index times voxel size),
computed exactly with :func:`scipy.ndimage.distance_transform_edt`. The
Hausdorff distance and its 95th percentile are measured between the surfaces
of the two segmentations, as MONAI's ``compute_hausdorff_distance`` measures
them (see :func:`binary_scores`).
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from . import _checks

logger = logging.getLogger(__name__)

__all__ = ["binary_scores", "instance_f1"]

#: The keys of each dict :func:`binary_scores` returns (the tolerance scores
#: only with ``tolerance``).
SCORES = (
    "dice",
    "jaccard",
    "precision",
    "recall",
    "hausdorff",
    "hausdorff_95",
    "mean_false_positive_distance",
    "mean_false_negative_distance",
    "precision_with_tolerance",
    "recall_with_tolerance",
    "true_positives",
    "false_positives",
    "false_negatives",
)


def binary_scores(
    prediction: ArrayLike,
    gt: ArrayLike,
    voxel_size: Sequence[float],
    mask: ArrayLike | None = None,
    tolerance: float | None = None,
) -> dict[str, float | int] | list[dict[str, float | int]]:
    """Overlap and distance scores of a binary prediction against the gt.

    ``P`` is the set of predicted foreground voxels and ``G`` the gt's, both
    restricted to the known voxels (``mask`` 1); distances are Euclidean in
    world units between voxel centres, ``d(v, S)`` being the distance from
    voxel ``v`` to the nearest voxel centre of ``S`` (``+inf`` when ``S`` is
    empty).

    The *surface* ``dS`` of a set of voxels ``S`` is the voxels of ``S`` with
    at least one face neighbour (6-connectivity in 3-D, 4 in 2-D) outside
    ``S``; a voxel beyond the array's edge or with mask 0 counts as outside,
    so an object cut by the edge of the array or of the mask has a surface
    there. This is MONAI's ``get_mask_edges`` and medpy's border (``S`` minus
    its erosion, :func:`scipy.ndimage.binary_erosion` with ``border_value=0``)
    and reproduces MONAI's published Hausdorff values, whose spheres are cut
    by the array's edge. With ``TP = |P & G|``:

    ==================================  ==========================================  ==========================
    key                                 value                                       when undefined
    ==================================  ==========================================  ==========================
    ``dice``                            ``2 TP / (|P| + |G|)``                      ``nan`` if P and G empty
    ``jaccard``                         ``TP / |P | G|``                            ``nan`` if P and G empty
    ``precision``                       ``TP / |P|``                                ``nan`` if P empty
    ``recall``                          ``TP / |G|``                                ``nan`` if G empty
    ``hausdorff``                       the larger of max ``d(s, dG)`` over         ``nan`` if both empty;
                                        ``s`` in ``dP`` and max ``d(s, dP)`` over   ``inf`` if one is
                                        ``s`` in ``dG``
    ``hausdorff_95``                    the larger of the 95th percentile of        as ``hausdorff``
                                        ``d(s, dG)`` over ``dP`` and that of
                                        ``d(s, dP)`` over ``dG`` (each with
                                        numpy's linear interpolation)
    ``mean_false_positive_distance``    mean ``d(p, G)`` over ``P - G``             ``nan`` if ``P - G`` empty;
                                                                                    ``inf`` if G empty
    ``mean_false_negative_distance``    mean ``d(g, P)`` over ``G - P``             ``nan`` if ``G - P`` empty;
                                                                                    ``inf`` if P empty
    ``precision_with_tolerance``        share of ``P`` with ``d(p, G) <= tol``      ``nan`` if P empty
    ``recall_with_tolerance``           share of ``G`` with ``d(g, P) <= tol``      ``nan`` if G empty
    ``true_positives``                  ``TP`` (``int``)
    ``false_positives``                 ``|P - G|`` (``int``)
    ``false_negatives``                 ``|G - P|`` (``int``)
    ==================================  ==========================================  ==========================

    ``hausdorff`` and ``hausdorff_95`` are the field's surface distances
    (MONAI's ``compute_hausdorff_distance`` with ``percentile`` ``None`` and
    95; medpy's ``hd`` is ``hausdorff`` too, while medpy's ``hd95`` takes one
    percentile of both directions' distances pooled, which can be smaller),
    so ``hausdorff_95 <= hausdorff``.
    Before, ``hausdorff_95`` was the 95th percentile of the voxel distances of
    ``P`` and ``G`` pooled, the overlap's zeros included, which shrank
    towards 0 as objects grew; and ``hausdorff`` was the Hausdorff distance of
    all voxels (SimpleITK's ``HausdorffDistanceImageFilter``). That one equals
    the surface one unless part of one surface lies inside the other set
    (a cavity in a prediction that fills the gt's cavity, a small object
    inside a big one), where the surface one is larger. The mean distances
    and the tolerance scores are over voxels, not surfaces (CREMI's false
    distances; ``d(v, S)`` is 0 for ``v`` in ``S``): they average the errors
    only, not all of ``P`` with the true positives at 0.

    The two tolerance scores are present only when ``tolerance`` is given.
    Undefined scores are ``nan`` without a warning; every score but the
    counts is a Python ``float``.

    Parameters
    ----------
    prediction : ndarray, ``(classes, *spatial)`` or ``(*spatial)``
        Binary segmentation (bool, or integers / floats holding only 0 and
        1), e.g. from :func:`~gp_hotdistance.postprocess.threshold_segmentation`.
        The number of spatial axes is ``len(voxel_size)``; an extra leading
        axis holds one channel per class.
    gt : ndarray
        Binary gt of the same shape.
    voxel_size : sequence of 1 to 3 positive numbers
        World units per voxel (z-y-x); anisotropic sizes are measured as such.
    mask : ndarray, optional
        Binary, the prediction's shape or its spatial shape (one mask for
        every class). Voxels with mask 0 are excluded from every score: they
        are neither counted nor used as nearest voxels. ``None``: all known.
    tolerance : float, optional
        World distance (>= 0) within which a voxel counts as right for the
        tolerance scores.

    Returns
    -------
    dict or list of dict
        The scores above: one ``dict`` for a single binary array, a ``list``
        with one per class for ``(classes, *spatial)``.

    Raises
    ------
    ValueError
        Shapes that differ or do not fit ``voxel_size``, values other than 0
        and 1, a negative ``tolerance``.
    TypeError
        Inputs that are not arrays (or are masked arrays), arrays of another
        dtype than bool, integer or float, or a ``voxel_size`` or
        ``tolerance`` that is not numbers.

    Examples
    --------
    >>> import numpy as np
    >>> from gp_hotdistance.metrics import binary_scores
    >>> gt = np.zeros((1, 1, 6), np.uint8); gt[..., 1:4] = 1
    >>> pred = np.zeros_like(gt); pred[..., 2:5] = 1
    >>> s = binary_scores(pred, gt, voxel_size=(4, 4, 2))
    >>> s["dice"], s["hausdorff"], s["mean_false_positive_distance"]
    (0.6666666666666666, 2.0, 2.0)

    A ball shifted by one voxel: its surface is one voxel off everywhere
    (a percentile of all voxels' distances would be 0 here)

    >>> z, y, x = np.ogrid[:24, :24, :24]
    >>> ball = (z - 12) ** 2 + (y - 12) ** 2 + (x - 12) ** 2 <= 8 ** 2
    >>> binary_scores(np.roll(ball, 1, axis=0), ball, (1, 1, 1))["hausdorff_95"]
    1.0
    """
    voxel_size = _checks.as_spatial_voxel_size(voxel_size)
    dims = len(voxel_size)
    prediction = _checks.as_array(prediction, "prediction")
    gt = _checks.as_array(gt, "gt")
    if prediction.ndim not in (dims, dims + 1):
        raise ValueError(
            f"prediction must have shape (classes, *spatial) or (*spatial) with "
            f"{dims} spatial axes (one per voxel_size entry {voxel_size}), got shape "
            f"{prediction.shape}"
        )
    if prediction.size == 0:
        raise ValueError(f"prediction must not be empty, got shape {prediction.shape}")
    if gt.shape != prediction.shape:
        raise ValueError(f"gt must have the prediction's shape {prediction.shape}, got {gt.shape}")
    single = prediction.ndim == dims
    if single:
        prediction, gt = prediction[np.newaxis], gt[np.newaxis]
    _checks.check_binary(prediction, "prediction")
    _checks.check_binary(gt, "gt")
    known = _checks.mask_channels(mask, prediction.shape, "mask")
    if tolerance is not None:
        tolerance = _checks.check_distance(tolerance, "tolerance")
    scores = []
    for c in range(prediction.shape[0]):
        p, g = prediction[c] != 0, gt[c] != 0
        if known is not None:
            k = known[c] != 0
            p, g = p & k, g & k
        scores.append(_channel_scores(p, g, voxel_size, tolerance))
    return scores[0] if single else scores


def _surface(voxels):
    """The voxels of ``voxels`` with a face neighbour outside it, the array's
    edge counting as outside (MONAI's and medpy's edges: the set minus its
    erosion by the face-connected structure, ``border_value=0``)."""
    return voxels & ~ndimage.binary_erosion(voxels, border_value=0)


def _distance_to(surface, voxel_size):
    """Distance from each voxel centre to the nearest voxel centre of
    ``surface`` (``None`` if it is empty)."""
    if not surface.any():
        return None
    return ndimage.distance_transform_edt(~surface, sampling=voxel_size)


def _ratio(numerator, denominator):
    return numerator / denominator if denominator else math.nan


def _hausdorff(to_gt_surface, to_prediction_surface, quantile):
    """The larger of the two directions' ``quantile`` of the surface
    distances (``max`` for ``None``)."""
    if quantile is None:
        return float(max(to_gt_surface.max(), to_prediction_surface.max()))
    return float(
        max(
            np.percentile(to_gt_surface, quantile),
            np.percentile(to_prediction_surface, quantile),
        )
    )


def _channel_scores(p, g, voxel_size, tolerance):
    tp = int(np.count_nonzero(p & g))
    n_p, n_g = int(np.count_nonzero(p)), int(np.count_nonzero(g))
    surface_p, surface_g = _surface(p), _surface(g)
    # The nearest voxel of G to a voxel outside G is a surface voxel of G (a
    # step towards the outside voxel would otherwise stay in G and be nearer),
    # so one transform per side serves the surface and the voxel distances.
    to_g = _distance_to(surface_g, voxel_size)
    to_p = _distance_to(surface_p, voxel_size)

    scores = {
        "dice": _ratio(2 * tp, n_p + n_g),
        "jaccard": _ratio(tp, n_p + n_g - tp),
        "precision": _ratio(tp, n_p),
        "recall": _ratio(tp, n_g),
    }
    false_positive, false_negative = p & ~g, g & ~p
    if to_g is None or to_p is None:  # one side or both empty
        undefined = math.nan if to_g is None and to_p is None else math.inf
        scores["hausdorff"] = scores["hausdorff_95"] = undefined
        fp_distances = np.full(int(np.count_nonzero(false_positive)), math.inf)
        fn_distances = np.full(int(np.count_nonzero(false_negative)), math.inf)
    else:
        from_p, from_g = to_g[surface_p], to_p[surface_g]
        scores["hausdorff"] = _hausdorff(from_p, from_g, None)
        scores["hausdorff_95"] = _hausdorff(from_p, from_g, 95)
        fp_distances, fn_distances = to_g[false_positive], to_p[false_negative]
    for key, distances in (
        ("mean_false_positive_distance", fp_distances),
        ("mean_false_negative_distance", fn_distances),
    ):
        scores[key] = float(distances.mean()) if distances.size else math.nan
    if tolerance is not None:
        # true positives are at distance 0; the errors count if near enough
        scores["precision_with_tolerance"] = _ratio(
            tp + int(np.count_nonzero(fp_distances <= tolerance)), n_p
        )
        scores["recall_with_tolerance"] = _ratio(
            tp + int(np.count_nonzero(fn_distances <= tolerance)), n_g
        )
    scores["true_positives"] = tp
    scores["false_positives"] = n_p - tp
    scores["false_negatives"] = n_g - tp
    return scores


def instance_f1(
    prediction_instances: ArrayLike,
    gt_instances: ArrayLike,
    iou_threshold: float = 0.5,
    *,
    mask: ArrayLike | None = None,
) -> float:
    """F1 score of predicted instances matched to gt instances by IoU.

    A predicted instance and a gt instance can match when their IoU
    (intersection over union, in voxels) exceeds ``iou_threshold``. Each
    instance matches at most one other: at ``iou_threshold >= 0.5`` such a
    pair is unique (two instances cannot both overlap a third by more than
    half its union); below, the matching is one with the most pairs
    (:func:`scipy.sparse.csgraph.maximum_bipartite_matching`). With ``TP`` matched
    pairs::

        F1 = 2 TP / (predicted instances + gt instances)

    Parameters
    ----------
    prediction_instances : ndarray of non-negative integers
        Instance labels, 0 for background (e.g. from
        :func:`~gp_hotdistance.postprocess.instance_segmentation`); any
        number of axes.
    gt_instances : ndarray of non-negative integers
        Gt instance labels of the same shape (e.g.
        :func:`scipy.ndimage.label` of a binary gt).
    iou_threshold : float, optional
        In [0, 1). Default 0.5.
    mask : ndarray, optional
        Binary, the same shape: voxels with mask 0 are removed from both
        segmentations first, so an instance that lies wholly there does not
        count, and one that crosses it is scored on its known part.

    Returns
    -------
    float
        The F1 score; ``nan`` when there is no instance in either.

    Raises
    ------
    ValueError
        Shapes that differ, negative labels, an ``iou_threshold`` outside
        [0, 1).
    TypeError
        Labels that are not integers, a ``mask`` that is not bool, integer or
        float, an ``iou_threshold`` that is not a number.

    Examples
    --------
    >>> import numpy as np
    >>> from gp_hotdistance.metrics import instance_f1
    >>> gt = np.array([1, 1, 1, 0, 2, 2, 0, 3])
    >>> pred = np.array([5, 5, 0, 0, 7, 0, 0, 0])
    >>> instance_f1(pred, gt)    # 5~1 (IoU 2/3) matches; 7~2 (1/2) does not
    0.4
    """
    prediction_instances = _as_labels(prediction_instances, "prediction_instances")
    gt_instances = _as_labels(gt_instances, "gt_instances")
    if gt_instances.shape != prediction_instances.shape:
        raise ValueError(
            f"gt_instances must have the shape of prediction_instances "
            f"{prediction_instances.shape}, got {gt_instances.shape}"
        )
    if not isinstance(iou_threshold, numbers.Real) or isinstance(iou_threshold, bool):
        raise TypeError(f"iou_threshold must be a number, got {iou_threshold!r}")
    if not 0 <= iou_threshold < 1:
        raise ValueError(f"iou_threshold must lie in [0, 1), got {iou_threshold!r}")
    if mask is not None:
        mask = _checks.as_array(mask, "mask")
        if mask.shape != prediction_instances.shape:
            raise ValueError(
                f"mask must have the shape of the instances "
                f"{prediction_instances.shape}, got {mask.shape}"
            )
        _checks.check_binary(mask, "mask")
        known = mask != 0
        prediction_instances = prediction_instances[known]
        gt_instances = gt_instances[known]

    # number the instances 1..n in each (0 stays background)
    predicted, n_predicted = _renumber(prediction_instances.ravel())
    gt_index, n_gt = _renumber(gt_instances.ravel())
    if n_predicted + n_gt == 0:
        return math.nan
    if n_predicted == 0 or n_gt == 0:
        return 0.0

    sizes_predicted = np.bincount(predicted, minlength=n_predicted + 1)
    sizes_gt = np.bincount(gt_index, minlength=n_gt + 1)
    both = (predicted > 0) & (gt_index > 0)
    pairs, overlap = np.unique(
        predicted[both] * np.int64(n_gt + 1) + gt_index[both], return_counts=True
    )
    rows, cols = np.divmod(pairs, n_gt + 1)
    iou = overlap / (sizes_predicted[rows] + sizes_gt[cols] - overlap)
    eligible = iou > iou_threshold
    if iou_threshold >= 0.5:
        matches = int(np.count_nonzero(eligible))
    else:
        graph = sparse.csr_matrix(
            (np.ones(int(eligible.sum()), np.int8), (rows[eligible] - 1, cols[eligible] - 1)),
            shape=(n_predicted, n_gt),
        )
        matching = csgraph.maximum_bipartite_matching(graph, perm_type="column")
        matches = int(np.count_nonzero(matching >= 0))
    return 2 * matches / (n_predicted + n_gt)


def _renumber(labels):
    """``labels`` as ``int64`` 1..n (0 stays 0), and n."""
    ids, index = np.unique(labels, return_inverse=True)
    index = index.astype(np.int64).ravel()
    if ids.size and ids[0] != 0:
        index += 1
    return index, int(index.max(initial=0))


def _as_labels(labels, name):
    labels = _checks.as_array(labels, name)
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{name} must hold integer instance labels, got dtype {labels.dtype}")
    if labels.size and np.issubdtype(labels.dtype, np.signedinteger) and labels.min() < 0:
        raise ValueError(f"{name} must hold labels >= 0 (0: background), found {labels.min()}")
    return labels
