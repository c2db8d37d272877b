"""Class-balancing weights of the hot-distance target, on numpy arrays.

Each of the ``2 * C`` target channels is balanced foreground against
background with counts that move across calls (:func:`balance_weights`,
:func:`hot_distance_weights`). With ``mask_distances`` the distance channels'
weights are 0 where the target distance cannot be trusted because the unknown
region is nearer than the measured boundary (:func:`distance_mask`, up to the
:func:`trust_reach`). The terms are those of :mod:`gp_hotdistance.distance`,
and so are the rules on dtypes and ``threads``.
"""

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from . import _checks, _kernels
from .distance import (
    _unknown_channel,
    hot_distance_target,  # noqa: F401 (used by the doctests)
)

# relative margin on the trust reach, far above float rounding and far below
# a voxel
_TRUST_MARGIN = 1e-6

__all__ = [
    "balance_weights",
    "distance_mask",
    "hot_distance_weights",
    "trust_reach",
]


def trust_reach(
    scale_factor: float, threshold: float = 0.8, *, voxel_size: Sequence[float] | None = None
) -> float:
    """Distance to the unknown region past which every target distance is
    trusted.

    The distance mask (:func:`distance_mask`) distrusts a voxel where
    ``min(|t| + epsilon, threshold) >= tanh(u / scale_factor)``, with ``u``
    the distance to the unknown region; the left side is at most
    ``threshold``, so past ``u = scale_factor * artanh(threshold)`` that
    test trusts every voxel. The mask also distrusts a voxel whose target is
    no nearer than the unknown region, ``|t| >= tanh(u / scale_factor)``,
    within the trust reach, which is at least half the largest voxel size so
    that every voxel sharing a face with the unknown region is covered: the
    trust reach is the larger of ``scale_factor * artanh(threshold)`` and
    half the largest voxel size. The unknown region's distance is only
    needed up to here (see the ``max_distance`` of
    :func:`~gp_hotdistance.distance.unknown_distance`). A margin of 1e-6
    keeps float rounding at that point on the safe side.

    Parameters
    ----------
    scale_factor : float
        The target's scale factor.
    threshold : float, optional
        The distance mask's threshold, in (0, 1).
    voxel_size : sequence of float, optional
        Voxel size in world units; without it, the reach of the threshold
        alone.

    Returns
    -------
    float
        The trust reach in world units.

    Raises
    ------
    TypeError
        A value that is not a number.
    ValueError
        A ``scale_factor`` that is not positive and finite, a ``threshold``
        outside (0, 1), a voxel size entry that is not positive and finite.

    Examples
    --------
    >>> round(trust_reach(50.0), 3)
    54.931
    >>> round(trust_reach(16.0, voxel_size=(40, 4, 4)), 3)   # 20: half a section
    20.0
    """
    scale_factor, threshold = _checks.check_scale_threshold(scale_factor, threshold)
    reach = scale_factor * math.atanh(threshold)
    if voxel_size is not None:
        voxel_size = _checks.as_spatial_voxel_size(voxel_size)
        reach = max(reach, max(voxel_size) / 2)
    return reach * (1 + _TRUST_MARGIN)


def distance_mask(
    distances: npt.ArrayLike,
    mask: npt.ArrayLike | None,
    voxel_size: Sequence[float],
    scale_factor: float,
    *,
    epsilon: float = 0.05,
    threshold: float = 0.8,
    threads: int = 1,
) -> np.ndarray:
    """Mask of the voxels whose target distance can be trusted.

    A voxel's distance is distrusted where ``min(|t| + epsilon, threshold) >=
    tanh(u / scale_factor)``: ``t`` its target distance (tanh units), ``u``
    the distance to the nearest face midpoint of the unknown region (see
    :func:`~gp_hotdistance.distance.unknown_distance`), so that an unseen
    boundary in the unknown region is not clearly farther than the measured
    one. This is the reference implementation's test, with ``u`` measured to
    faces like the target rather than to voxel centres.

    It is also distrusted where ``|t| >= tanh(u / scale_factor)`` (compared
    in float32, the target's precision) and ``u`` is within the trust reach
    (:func:`trust_reach`, at least half the largest voxel size): the measured
    boundary is no nearer than the unknown region, so what the unknown
    region holds (the zeros of a padding, say) decided the target. The reference's test alone misses this where ``threshold <
    tanh(u / scale_factor)``: for a voxel that shares a face with the unknown
    region, ``u`` is half a voxel across that face, more than
    ``scale_factor * artanh(threshold)`` for thick sections (voxel (40, 4,
    4) and a scale factor of 16). So a voxel that shares a face with the
    unknown region is trusted only where its measured boundary is nearer
    than that region, for every voxel size and scale factor. Farther from
    the unknown region, a target above ``threshold`` is trusted once the
    unknown region is past ``threshold`` too, as in the reference (see
    :func:`trust_reach`).

    Parameters
    ----------
    distances : ndarray
        The target's distance channels, ``tanh(d / scale_factor)``, shape
        ``(C, ...)``; compared as float32, the target's dtype.
    mask : ndarray or None
        Binary mask, ``(C, ...)`` (one channel per class) or ``(...)`` (one
        for all classes); ``None``: every voxel of the array is known. In
        every case everything outside the array is unknown, so voxels near
        the array's edge may be distrusted.
    voxel_size : sequence of float
        Voxel size in world units, z-y-x.
    scale_factor : float
        The target's scale factor (world units).
    epsilon : float, optional
        Margin added to ``|t|`` before the comparison, in tanh units.
    threshold : float, optional
        Cap on ``|t| + epsilon``, in (0, 1): beyond it a target is saturated
        enough that the unknown region only needs to be past ``threshold``.
    threads : int, optional
        Threads the kernel may run on; 1 by default.

    Returns
    -------
    ndarray of uint8, shape ``(C, ...)``
        1 where the distance can be trusted, 0 where it cannot or the mask is 0.

    Raises
    ------
    TypeError
        A number given as another type, or ``distances`` or a mask that is
        not bool, integer or float.
    ValueError
        ``distances`` without 1 to 3 spatial axes, a ``mask`` of another
        shape or with values other than 0 and 1, ``voxel_size`` of the wrong
        length, or a number out of its range.

    Examples
    --------
    >>> t = hot_distance_target(np.array([[0, 0, 0, 1, 1, 1, 1, 1]]), (1,), 2.0)
    >>> distance_mask(t[1:], np.array([1, 1, 1, 1, 1, 1, 1, 0]), (1,), 2.0)
    array([[0, 0, 1, 1, 1, 0, 0, 0]], dtype=uint8)
    """
    distances = _checks.as_array(distances, "distances")
    _checks.check_numeric_dtype(distances, "distances")
    _checks.check_tanh_range(distances, "distances")
    spatial_dims = _checks.check_spatial_rank(distances, "distances", channel_axis=True)
    voxel_size = _checks.as_voxel_size(voxel_size, spatial_dims)
    scale_factor, threshold = _checks.check_scale_threshold(scale_factor, threshold)
    epsilon = _checks.check_nonnegative(epsilon, "epsilon")
    threads = _checks.check_threads(threads)
    masks = _checks.mask_channels(mask, distances.shape, "mask")
    return _distance_mask(distances, masks, voxel_size, scale_factor, epsilon, threshold, threads)


def _distance_mask(distances, masks, voxel_size, scale_factor, epsilon, threshold, threads=1):
    """:func:`distance_mask` of checked arguments; ``masks`` ``(C, ...)`` or
    ``None``."""
    reach = trust_reach(scale_factor, threshold, voxel_size=voxel_size)
    unknown = _UnknownDistances(masks, distances.shape, voxel_size, reach, threads)
    result = np.ones(distances.shape, dtype=np.uint8)
    flat = result.reshape(distances.shape[0], -1)
    for c in range(distances.shape[0]):
        _distrust(
            _checks.kernel_float32(distances[c]).reshape(-1),
            unknown.channel(c).reshape(-1),
            scale_factor,
            epsilon,
            threshold,
            reach,
            flat[c],
        )
    return result


def balance_weights(
    labels: npt.ArrayLike,
    mask: npt.ArrayLike | None = None,
    counts: npt.ArrayLike | None = None,
    *,
    clipmin: float = 0.05,
    clipmax: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Class-balancing weights per channel, with counts that move across calls.

    For each channel, the known voxels (``mask`` 1) of this call are added to
    the running ``counts`` of background and foreground voxels; each class then
    gets weight ``0.5 / clip(fraction, clipmin, clipmax)``, where ``fraction =
    count / (1 + total)``, and each known voxel the weight of its class.
    Unknown voxels get 0. The ``1 +`` keeps the first fraction finite, as in
    the reference implementation (gunpowder's ``BalanceLabels`` uses the same
    ``0.5 / fraction`` form).

    Parameters
    ----------
    labels : ndarray
        Binary labels ``(C, ...)``.
    mask : ndarray, optional
        Binary mask ``(C, ...)`` or ``(...)``; all known by default.
    counts : ndarray of int, optional
        ``(C, 2)`` background and foreground voxels seen so far; zeros by
        default. Not modified.
    clipmin, clipmax : float, optional
        Bounds on the class fractions, so rare classes get at most ``0.5 /
        clipmin`` and common ones at least ``0.5 / clipmax``.

    Returns
    -------
    weights : ndarray of float32, shape ``(C, ...)``
    counts : ndarray of int64, shape ``(C, 2)``
        The updated counts.

    Raises
    ------
    TypeError
        ``counts`` that are not integers, or ``clipmin``/``clipmax`` not numbers.
    ValueError
        ``labels`` or ``mask`` with values other than 0 and 1, a ``mask`` or
        ``counts`` of another shape, or ``clipmin > clipmax``.

    Examples
    --------
    >>> weights, counts = balance_weights(np.array([[0, 0, 0, 1]]))
    >>> weights
    array([[0.8333333, 0.8333333, 0.8333333, 2.5      ]], dtype=float32)
    >>> counts
    array([[3, 1]])
    """
    labels = _checks.as_array(labels, "labels")
    _checks.check_spatial_rank(labels, "labels", channel_axis=True)
    for c in range(labels.shape[0]):
        _checks.check_binary(labels[c], f"labels channel {c}")
    masks = _checks.mask_channels(mask, labels.shape, "mask")
    counts = _checks.as_counts(counts, labels.shape[0], "counts")
    clipmin, clipmax = _checks.check_clip(clipmin, clipmax)
    weights = np.empty(labels.shape, dtype=np.float32)
    flat_weights = weights.reshape(labels.shape[0], -1)
    for c in range(labels.shape[0]):
        _balance_channel(
            _flat_bool(labels[c]),
            _known(masks, c, labels.shape),
            counts[c],
            clipmin,
            clipmax,
            flat_weights[c],
        )
    return weights, counts


def hot_distance_weights(
    gt: npt.ArrayLike,
    target: npt.ArrayLike,
    mask: npt.ArrayLike | None,
    voxel_size: Sequence[float],
    scale_factor: float,
    *,
    counts: npt.ArrayLike | None = None,
    mask_distances: bool = False,
    epsilon: float = 0.05,
    threshold: float = 0.8,
    clipmin: float = 0.05,
    clipmax: float = 0.95,
    unknown: npt.ArrayLike | None = None,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Weights for the hot-distance target, with moving class counts.

    The ``C`` one-hot channels and the ``C`` distance channels are each
    balanced foreground against background (see :func:`balance_weights`),
    with their own counts. Weights are 0 where ``mask`` is 0; with
    ``mask_distances``, the distance channels' weights are also 0 where the
    distance cannot be trusted (see :func:`distance_mask`), and those voxels
    are not counted for the distance channels.

    Parameters
    ----------
    gt : ndarray
        Binary ground truth ``(C, ...)``.
    target : ndarray
        The matching target ``(2 * C, ...)`` from
        :func:`~gp_hotdistance.distance.hot_distance_target`.
    mask : ndarray or None
        Binary mask ``(C, ...)`` or ``(...)``; ``None`` means all known.
    voxel_size : sequence of float
        Voxel size in world units, z-y-x.
    scale_factor : float
        The target's scale factor (world units).
    counts : ndarray of int, optional
        ``(2 * C, 2)`` moving counts from an earlier call; not modified.
    mask_distances : bool, optional
        Whether to zero the distance weights that cannot be trusted.
    epsilon, threshold : float, optional
        See :func:`distance_mask`.
    clipmin, clipmax : float, optional
        See :func:`balance_weights`.
    unknown : ndarray, optional
        With ``mask_distances``: the distance from each voxel to the unknown
        region, ``(C, ...)`` or ``(...)``, as
        :func:`~gp_hotdistance.distance.unknown_distance` gives it, exact
        up to ``trust_reach(scale_factor, threshold, voxel_size=voxel_size)``
        at least (``inf`` beyond is fine). Pass it
        when ``gt`` is a crop of a larger known region (a crop with context),
        so that the crop's edge does not count as unknown. By default it is
        computed from ``mask``, with everything outside the array unknown.
    threads : int, optional
        Threads the kernel may run on (with ``mask_distances``); 1 by
        default.

    Returns
    -------
    weights : ndarray of float32, shape ``(2 * C, ...)``
    counts : ndarray of int64, shape ``(2 * C, 2)``

    Raises
    ------
    TypeError
        A number given as another type, ``counts`` that are not integers, or
        a ``gt``, ``target``, ``mask`` or ``unknown`` that is not bool,
        integer or float.
    ValueError
        ``gt`` or ``mask`` with values other than 0 and 1, a ``target``,
        ``mask``, ``unknown`` or ``counts`` of another shape than ``gt``
        implies, ``voxel_size`` of the wrong length, or a number out of its
        range.

    Examples
    --------
    >>> gt = np.array([[0, 0, 0, 1]])
    >>> target = hot_distance_target(gt, (1,), 1.0)
    >>> weights, counts = hot_distance_weights(gt, target, None, (1,), 1.0)
    >>> counts.tolist()
    [[3, 1], [3, 1]]
    """
    gt = _checks.as_array(gt, "gt")
    spatial_dims = _checks.check_spatial_rank(gt, "gt", channel_axis=True)
    voxel_size = _checks.as_voxel_size(voxel_size, spatial_dims)
    for c in range(gt.shape[0]):
        _checks.check_binary(gt[c], f"gt channel {c}")
    masks = _checks.mask_channels(mask, gt.shape, "mask")
    threads = _checks.check_threads(threads)
    mask_distances = _checks.check_flag(mask_distances, "mask_distances")
    return _weights(
        gt,
        target,
        masks,
        voxel_size,
        scale_factor,
        counts=counts,
        mask_distances=mask_distances,
        epsilon=epsilon,
        threshold=threshold,
        clipmin=clipmin,
        clipmax=clipmax,
        unknown=unknown,
        threads=threads,
    )


def _weights(
    gt,
    target,
    masks,
    voxel_size,
    scale_factor,
    *,
    counts,
    mask_distances,
    epsilon,
    threshold,
    clipmin,
    clipmax,
    unknown,
    threads=1,
):
    """:func:`hot_distance_weights` of checked binary channels ``gt`` ``(C,
    ...)`` and masks ``(C, ...)`` (or ``None``); the other arguments are
    checked here (cheap: shapes and numbers)."""
    classes = gt.shape[0]
    target = _check_target(target, gt.shape)
    counts = _checks.as_counts(counts, 2 * classes, "counts")
    clipmin, clipmax = _checks.check_clip(clipmin, clipmax)
    scale_factor = _checks.check_positive(scale_factor, "scale_factor")
    if mask_distances:
        epsilon = _checks.check_nonnegative(epsilon, "epsilon")
        threshold = _checks.check_fraction(threshold, "threshold")
        _checks.check_tanh_range(target[classes:], "target")
        reach = trust_reach(scale_factor, threshold, voxel_size=voxel_size)
        if unknown is None:
            unknown = _UnknownDistances(masks, gt.shape, voxel_size, reach, threads)
        else:
            unknown = _GivenUnknownDistances(unknown, gt.shape)

    weights = np.empty((2 * classes,) + gt.shape[1:], dtype=np.float32)
    flat_weights = weights.reshape(2 * classes, -1)
    for c in range(classes):
        foreground = _flat_bool(gt[c])
        known = _known(masks, c, gt.shape)
        _balance_channel(foreground, known, counts[c], clipmin, clipmax, flat_weights[c])
        if mask_distances:
            known = known.copy()
            _distrust(
                _checks.kernel_float32(target[classes + c]).reshape(-1),
                unknown.channel(c).reshape(-1),
                scale_factor,
                epsilon,
                threshold,
                reach,
                known,
            )
        _balance_channel(
            foreground,
            known,
            counts[classes + c],
            clipmin,
            clipmax,
            flat_weights[classes + c],
        )
    return weights, counts


# ---------------------------------------------------------------------------
# private helpers
# ---------------------------------------------------------------------------


def _distrust(distances, unknown, scale_factor, epsilon, threshold, reach, known):
    """Clear ``known`` (flat) where :func:`distance_mask`'s rule distrusts a
    target distance; ``unknown`` is ``inf`` past ``reach``."""
    _kernels.distrust(distances, unknown, 1.0 / scale_factor, epsilon, threshold, reach, known)


def _check_target(target, gt_shape):
    target = _checks.as_array(target, "target")
    _checks.check_numeric_dtype(target, "target")
    expected = (2 * gt_shape[0],) + tuple(gt_shape[1:])
    if target.shape != expected:
        raise ValueError(
            f"target must have shape {expected} (one-hot and distance channels "
            f"of gt), got {target.shape}"
        )
    return target


def _flat_bool(array):
    """``array != 0`` (checked 0/1 data) as a flat C-ordered uint8 array for
    the kernels (a view where possible)."""
    return _checks.kernel_binary(array).reshape(-1)


def _known(masks, c, shape):
    """The flat uint8 mask of class ``c``'s known voxels (all known without
    a mask)."""
    if masks is None:
        return np.ones(math.prod(shape[1:]), dtype=np.uint8)
    return _flat_bool(masks[c])


def _balance_channel(foreground, known, counts, clipmin, clipmax, out):
    """Balance one channel into ``out``; update ``counts`` (length 2) in place.

    ``foreground`` and ``known`` are flat uint8 arrays, ``out`` a flat float32
    array of the same length.
    """
    counts += _kernels.count_classes(foreground, known)
    fractions = np.clip(counts / (1.0 + counts.sum()), clipmin, clipmax)
    class_weights = (0.5 / fractions).astype(np.float32)
    _kernels.fill_weights(foreground, known, class_weights[0], class_weights[1], out)


class _UnknownDistances:
    """The distance to the unknown region of each class channel of ``(C,
    ...)`` masks (``None``: nothing unknown inside the array), capped at
    ``reach`` (farther is ``inf``); computed once for a shared mask."""

    def __init__(self, masks, shape, voxel_size, reach, threads):
        self.masks = masks
        self.shared = masks is None or _checks.is_shared(masks)
        self.voxel_size = voxel_size
        self.reach = reach
        self.threads = threads
        self.distances = np.empty(shape[1:], dtype=np.float32)
        self.computed = False

    def channel(self, c):
        if not (self.shared and self.computed):
            if self.masks is None:
                known = np.ones(self.distances.shape, dtype=bool)
            else:
                known = self.masks[c]
            _unknown_channel(known, self.voxel_size, self.distances, self.reach, self.threads)
            self.computed = True
        return self.distances


class _GivenUnknownDistances:
    """Unknown distances given by the caller, ``(C, ...)`` or ``(...)``."""

    def __init__(self, unknown, shape):
        unknown = _checks.as_array(unknown, "unknown")
        _checks.check_numeric_dtype(unknown, "unknown")
        if unknown.shape not in (tuple(shape), tuple(shape[1:])):
            raise ValueError(
                f"unknown must have shape {tuple(shape)} (one channel per class) or "
                f"{tuple(shape[1:])} (one for all classes), got {unknown.shape}"
            )
        if unknown.size and not np.min(unknown) >= 0:  # NaN fails too
            raise ValueError(
                f"unknown must hold distances >= 0 (inf where nothing is unknown), "
                f"found {np.min(unknown)!r}"
            )
        self.distances = np.broadcast_to(unknown, shape)

    def channel(self, c):
        return _checks.kernel_float32(self.distances[c])
