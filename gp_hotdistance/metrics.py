"""Scores of binary and instance segmentations against a ground truth.

- :func:`binary_scores`: overlap scores (Dice, Jaccard, precision, recall)
  and surface-distance scores (Hausdorff, its 95th percentile, mean
  false-positive and false-negative distances, precision and recall within a
  tolerance) in world units, for anisotropic voxels, optionally restricted to
  a mask;
- :func:`instance_f1`: F1 of instance segmentations matched by IoU.

Distances are between voxel centres (world units: index times voxel size),
computed exactly with :func:`scipy.ndimage.distance_transform_edt`.
"""

import logging
import math
import numbers

import numpy as np
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


def binary_scores(prediction, gt, voxel_size, mask=None, tolerance=None):
    """Overlap and distance scores of a binary prediction against the gt.

    ``P`` is the set of predicted foreground voxels and ``G`` the gt's, both
    restricted to the known voxels (``mask`` 1); distances are Euclidean in
    world units between voxel centres, ``d(v, S)`` being the distance from
    voxel ``v`` to the nearest voxel centre of ``S`` (``+inf`` when ``S`` is
    empty). With ``TP = |P & G|``:

    ==================================  ==========================================  ==========================
    key                                 value                                       when undefined
    ==================================  ==========================================  ==========================
    ``dice``                            ``2 TP / (|P| + |G|)``                      ``nan`` if P and G empty
    ``jaccard``                         ``TP / |P | G|``                            ``nan`` if P and G empty
    ``precision``                       ``TP / |P|``                                ``nan`` if P empty
    ``recall``                          ``TP / |G|``                                ``nan`` if G empty
    ``hausdorff``                       max of ``d(p, G)`` over ``P`` and           ``nan`` if both empty;
                                        ``d(g, P)`` over ``G`` (pooled)             ``inf`` if one is
    ``hausdorff_95``                    95th percentile of the same pooled          as ``hausdorff``
                                        distances (numpy's linear interpolation)
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
        raise ValueError(
            f"gt must have the prediction's shape {prediction.shape}, got {gt.shape}"
        )
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


def _nearest_distance(source, target, voxel_size):
    """Distance from each voxel of ``source`` to the nearest voxel of
    ``target`` (float64, ``inf`` if ``target`` is empty)."""
    count = int(np.count_nonzero(source))
    if not target.any():
        return np.full(count, np.inf)
    if count == 0:
        return np.zeros(0)
    # the distance of each non-target voxel to the nearest target voxel
    distance = ndimage.distance_transform_edt(~target, sampling=voxel_size)
    return distance[source]


def _ratio(numerator, denominator):
    return numerator / denominator if denominator else math.nan


def _channel_scores(p, g, voxel_size, tolerance):
    both = p & g
    tp = int(np.count_nonzero(both))
    n_p, n_g = int(np.count_nonzero(p)), int(np.count_nonzero(g))
    to_gt = _nearest_distance(p, g, voxel_size)  # over P, in P's voxel order
    to_prediction = _nearest_distance(g, p, voxel_size)  # over G
    false_positive = ~g[p]  # P - G, as a mask over to_gt
    false_negative = ~p[g]
    pooled = np.concatenate([to_gt, to_prediction])

    scores = {
        "dice": _ratio(2 * tp, n_p + n_g),
        "jaccard": _ratio(tp, n_p + n_g - tp),
        "precision": _ratio(tp, n_p),
        "recall": _ratio(tp, n_g),
    }
    if pooled.size == 0:
        scores["hausdorff"] = scores["hausdorff_95"] = math.nan
    elif np.isinf(pooled).any():  # one of the two is empty: all are inf
        scores["hausdorff"] = scores["hausdorff_95"] = math.inf
    else:
        scores["hausdorff"] = float(pooled.max())
        scores["hausdorff_95"] = float(np.percentile(pooled, 95))
    for key, distances, chosen in (
        ("mean_false_positive_distance", to_gt, false_positive),
        ("mean_false_negative_distance", to_prediction, false_negative),
    ):
        scores[key] = float(distances[chosen].mean()) if chosen.any() else math.nan
    if tolerance is not None:
        scores["precision_with_tolerance"] = _ratio(
            int(np.count_nonzero(to_gt <= tolerance)), n_p
        )
        scores["recall_with_tolerance"] = _ratio(
            int(np.count_nonzero(to_prediction <= tolerance)), n_g
        )
    scores["true_positives"] = tp
    scores["false_positives"] = n_p - tp
    scores["false_negatives"] = n_g - tp
    return scores


def instance_f1(prediction_instances, gt_instances, iou_threshold=0.5, *, mask=None):
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
