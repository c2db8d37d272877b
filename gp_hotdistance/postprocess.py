"""Segmentations from a hot-distance prediction.

- :func:`threshold_segmentation`: binary segmentations, one per class, where
  the predicted distance exceeds a threshold;
- :func:`instance_segmentation`: instances of one class, by a seeded
  watershed (touching objects joined by a neck come apart) or by connected
  components.

Both take the prediction's distance channels (``tanh(d / scale_factor)``, in
[-1, 1], positive inside), e.g. after
:meth:`~gp_hotdistance.HotDistancePredictor.to_target_range`.
"""

import logging
import math
import numbers
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import ndimage, spatial
from skimage import morphology, segmentation

from . import _checks

logger = logging.getLogger(__name__)

__all__ = ["instance_segmentation", "threshold_segmentation"]

METHODS = ("watershed", "components")


def threshold_segmentation(distances: npt.ArrayLike, threshold: float = 0.0) -> np.ndarray:
    """Binary segmentations: the predicted distance above ``threshold``.

    Parameters
    ----------
    distances : ndarray, ``(classes, *spatial)``
        Predicted distance channels (``tanh`` distances, positive inside),
        float, without NaN; 1 to 3 spatial axes.
    threshold : float, optional
        A voxel is foreground where its distance is strictly greater. 0 (the
        default) is the predicted boundary: ``tanh(d / s) > 0`` exactly where
        ``d > 0``.

    Returns
    -------
    ndarray
        ``uint8`` ``(classes, *spatial)``: 1 for foreground, 0 elsewhere.

    Raises
    ------
    ValueError
        Fewer than 2 or more than 4 axes, NaN values, a threshold that is not
        finite.
    TypeError
        A non-numeric array or threshold.

    Examples
    --------
    >>> import numpy as np
    >>> from gp_hotdistance.postprocess import threshold_segmentation
    >>> threshold_segmentation(np.array([[-0.5, 0.0, 0.2], [0.9, -1.0, 0.1]]))
    array([[0, 0, 1],
           [1, 0, 1]], dtype=uint8)
    """
    distances = _as_distances(distances, "distances", channel_axis=True)
    threshold = _check_threshold(threshold)
    return (distances > threshold).astype(np.uint8)


def instance_segmentation(
    distance: npt.ArrayLike,
    voxel_size: Sequence[float],
    threshold: float = 0.0,
    *,
    scale_factor: float | None = None,
    min_distance: float | None = None,
    min_prominence: float | None = None,
    method: str = "watershed",
    connectivity: int = 1,
) -> np.ndarray:
    """Instances of one class from its predicted distance channel.

    The foreground is ``distance > threshold``. With ``method="components"``
    its connected components are the instances. With ``method="watershed"``
    (the default) the foreground is flooded from seeds:

    1. ``D``: the Euclidean distance (world units, anisotropic, exact:
       :func:`scipy.ndimage.distance_transform_edt`) from each foreground
       voxel centre to the nearest background voxel centre. It takes the
       place of the predicted distance inside objects, where the prediction
       saturates (``tanh``) and its maxima would be noise; the two agree on
       the boundary, which ``threshold`` sets.
    2. Seeds: the maxima of ``D`` that rise at least ``min_prominence``
       above the pass to any other maximum; maxima joined by a pass less
       than ``min_prominence`` lower form one seed (the regional maxima of
       the morphological reconstruction of ``D - min_prominence`` under
       ``D``, :func:`skimage.morphology.reconstruction`). Seeds closer than
       ``min_distance`` (world units, between their highest voxels) are
       thinned out, the higher one kept.
       A connected component without a seed gets one at its maximum, so no
       object is lost.
    3. :func:`skimage.segmentation.watershed` of ``-D`` from the seeds inside
       the foreground.

    Two objects joined by a neck come out as two instances when the neck is
    narrower than each object by at least ``min_prominence`` and their
    centres lie ``min_distance`` apart or more; a long tube of even width
    stays one.

    Parameters
    ----------
    distance : ndarray, ``(*spatial)``
        One class's predicted distance channel, float, 1 to 3 axes, no NaN.
    voxel_size : sequence of numbers
        World units per voxel, one per axis (z-y-x).
    threshold : float, optional
        Foreground where the distance is strictly greater; default 0.
    scale_factor : float, optional
        The predictor's scale factor (world units); sets the defaults below.
        Needed by ``"watershed"`` unless both are given.
    min_distance : float, optional
        Least world distance between two seeds; default ``2 * scale_factor``.
    min_prominence : float, optional
        Least world height of a seed's maximum above the pass to a higher
        one; default ``scale_factor / 2``.
    method : {"watershed", "components"}
        See above.
    connectivity : int, optional
        Neighbourhood of the components and the watershed: 1 (faces, the
        default) to ``distance.ndim`` (faces, edges and corners).

    Returns
    -------
    ndarray
        ``uint64`` labels of ``distance``'s shape: 0 for background, 1 to n
        for the instances.

    Raises
    ------
    ValueError
        A shape that does not fit ``voxel_size``, NaN values, a bad
        ``method`` or ``connectivity``, ``"watershed"`` without
        ``scale_factor`` and without both ``min_distance`` and
        ``min_prominence``.
    TypeError
        Arguments of the wrong type.

    Examples
    --------
    >>> import numpy as np
    >>> from gp_hotdistance.postprocess import instance_segmentation
    >>> z, y, x = np.indices((20, 20, 36))
    >>> balls = [np.sqrt((z - 10)**2 + (y - 10)**2 + (x - c)**2) < 8 for c in (10, 24)]
    >>> distance = np.where(balls[0] | balls[1], 0.5, -0.5)   # touching, with a neck
    >>> labels = instance_segmentation(distance, (1, 1, 1), scale_factor=2)
    >>> int(labels.max()), int(labels[10, 10, 10] != labels[10, 10, 24])
    (2, 1)
    """
    distance = _as_distances(distance, "distance", channel_axis=False)
    voxel_size = _checks.as_voxel_size(voxel_size, distance.ndim)
    threshold = _check_threshold(threshold)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(connectivity, bool) or not isinstance(connectivity, numbers.Integral):
        raise TypeError(f"connectivity must be an int, got {connectivity!r}")
    if not 1 <= connectivity <= distance.ndim:
        raise ValueError(
            f"connectivity must lie in [1, {distance.ndim}] for {distance.ndim} axes, "
            f"got {connectivity!r}"
        )
    if scale_factor is not None:
        scale_factor = _checks.check_positive(scale_factor, "scale_factor")
    if (
        method == "watershed"
        and scale_factor is None
        and (min_distance is None or min_prominence is None)
    ):
        raise ValueError(
            "scale_factor must be given for method='watershed' (it sets the defaults "
            "of min_distance and min_prominence), or both of those"
        )
    if min_distance is None and scale_factor is not None:
        min_distance = 2.0 * scale_factor
    if min_prominence is None and scale_factor is not None:
        min_prominence = 0.5 * scale_factor
    if min_distance is not None:
        min_distance = _checks.check_distance(min_distance, "min_distance")
    if min_prominence is not None:
        min_prominence = _checks.check_nonnegative(min_prominence, "min_prominence")

    foreground = distance > threshold
    structure = ndimage.generate_binary_structure(distance.ndim, connectivity)
    components, count = ndimage.label(foreground, structure=structure)
    if method == "components" or count == 0:
        return components.astype(np.uint64)

    depth = ndimage.distance_transform_edt(foreground, sampling=voxel_size)
    seeds = _seeds(depth, components, count, voxel_size, min_distance, min_prominence)
    labels = segmentation.watershed(
        -depth, markers=seeds, mask=foreground, connectivity=connectivity
    )
    logger.debug("%d components, %d instances", count, int(labels.max()))
    return labels.astype(np.uint64)


def _seeds(depth, components, count, voxel_size, min_distance, min_prominence):
    """Seed labels 1..n for the watershed (0 elsewhere)."""
    full = ndimage.generate_binary_structure(depth.ndim, depth.ndim)
    if min_prominence > 0:
        # the h-dome: maxima lowered by min_prominence, reconstructed under
        # depth; each of its regional maxima (a plateau) is one dome, whose
        # peaks lie within min_prominence of a common pass
        landscape = morphology.reconstruction(
            np.maximum(depth - min_prominence, 0), depth, method="dilation", footprint=full
        )
    else:
        landscape = depth
    peaks = morphology.local_maxima(landscape, connectivity=depth.ndim, allow_borders=True)
    peaks &= depth > 0
    regions, n = ndimage.label(peaks, structure=full)
    if n:
        index = np.arange(1, n + 1)
        heights = np.asarray(ndimage.maximum(depth, regions, index))
        positions = np.asarray(ndimage.maximum_position(depth, regions, index), dtype=float)
        keep = _thin(positions * np.asarray(voxel_size), heights, min_distance)
        # drop the thinned-out regions, renumber the rest 1..k
        lookup = np.zeros(n + 1, np.int64)
        lookup[1:][keep] = np.arange(1, int(keep.sum()) + 1)
        regions = lookup[regions]
        n = int(keep.sum())
    # a component without a seed (lower than min_prominence) gets one at its
    # maximum, all in one pass whatever their number
    seeded = np.zeros(count + 1, bool)
    seeded[np.unique(components[regions > 0])] = True
    seeded[0] = True
    if not seeded.all():
        positions = _first_maximum_positions(depth, components, ~seeded)
        np.put(regions, positions, np.arange(n + 1, n + 1 + len(positions)))
    return regions


def _first_maximum_positions(values, labels, selected):
    """Flat index of the first (C order) maximum of ``values`` within each
    label ``l`` with ``selected[l]``, in increasing label order; one pass over
    the array whatever the number of labels (``ndimage.maximum_position``
    with a scalar label makes one pass per label)."""
    flat_labels = labels.reshape(-1)
    voxels = np.flatnonzero(selected[flat_labels])
    owners = flat_labels[voxels]
    heights = values.reshape(-1)[voxels]
    highest = np.full(len(selected), -np.inf)
    np.maximum.at(highest, owners, heights)
    top = heights == highest[owners]
    first = np.full(len(selected), values.size, dtype=np.int64)
    np.minimum.at(first, owners[top], voxels[top])
    return first[np.flatnonzero(selected)]


def _thin(points, heights, min_distance):
    """Which points to keep so that no two lie closer than ``min_distance``,
    the higher first (ties: the first)."""
    keep = np.ones(len(points), bool)
    if min_distance <= 0 or len(points) < 2:
        return keep
    order = np.lexsort((np.arange(len(points)), -heights))
    tree = spatial.cKDTree(points)
    removed = np.zeros(len(points), bool)
    for i in order:
        if removed[i]:
            continue
        for j in tree.query_ball_point(points[i], min_distance * (1 - 1e-12)):
            if j != i:
                removed[j] = True
    keep &= ~removed
    return keep


def _as_distances(distances, name, channel_axis):
    distances = _checks.as_array(distances, name)
    if distances.dtype == bool or not (
        np.issubdtype(distances.dtype, np.floating) or np.issubdtype(distances.dtype, np.integer)
    ):
        raise TypeError(f"{name} must be a float array, got dtype {distances.dtype}")
    _checks.check_spatial_rank(distances, name, channel_axis)
    if np.issubdtype(distances.dtype, np.floating) and np.isnan(distances).any():
        raise ValueError(
            f"{name} holds {int(np.isnan(distances).sum())} NaN values; a prediction "
            f"with NaN cannot be segmented"
        )
    return distances


def _check_threshold(threshold):
    if not isinstance(threshold, numbers.Real) or isinstance(threshold, bool):
        raise TypeError(f"threshold must be a number, got {threshold!r}")
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold!r}")
    return float(threshold)
