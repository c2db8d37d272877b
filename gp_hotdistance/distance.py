"""Exact signed face distances and the hot-distance target, on numpy arrays.

Arrays have spatial axes in z-y-x order (1 to 3 of them) and, where a function
takes several classes, a leading channel axis: ``(C, [z,] [y,] x)``. Voxel
sizes are in world units (e.g. nm), one per spatial axis. Nothing here imports
gunpowder; the kernels are compiled with numba (:mod:`gp_hotdistance._kernels`
explains the algorithm).

Arrays may have any bool, integer or float dtype, in either byte order, in
any layout, read-only or memory-mapped; each function converts them once to
what its kernels are compiled for, so a new dtype or layout compiles nothing
new. The functions that run kernels take ``threads``, the number of threads
the call may use (1 by default); the package keeps no threads and changes no
process-wide setting between calls (docs/threads.md).

Glossary
--------
face
    The square shared by two face-adjacent voxels.
face midpoint
    The centre of a face: half a voxel from both voxel centres, along the
    axis the face is normal to.
face distance
    The Euclidean distance, in world units, from a voxel centre to the
    nearest midpoint of a face between two voxels of different label
    (:func:`face_distance`).
signed face distance
    The face distance of a binary channel, positive where the label is 1 and
    negative where it is 0 (:func:`signed_face_distance`). Both voxels of a
    face see the same nearest faces, so one distance transform serves both
    signs.
hot-distance target
    Per class, the one-hot channel, then (after all one-hot channels)
    ``tanh(d / scale_factor)`` of the signed face distance ``d``
    (:func:`hot_distance_target`).
context distance
    How far a face can be and still change a target value by more than the
    tolerance (:func:`context_distance`).
padding
    The context distance plus half a voxel, in whole voxels per axis: the
    region a crop's gt must be grown by so that its target equals the whole
    volume's within the tolerance (:func:`padding_voxels`).
unknown region
    Where a mask is 0, together with everything outside the array
    (:func:`unknown_distance` measures the distance to its nearest face).
trust reach
    The distance to the unknown region past which every target distance is
    trusted (:func:`gp_hotdistance.weights.trust_reach`).
"""

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from . import _checks, _kernels

__all__ = [
    "context_distance",
    "face_distance",
    "hot_distance_target",
    "padding_voxels",
    "signed_face_distance",
    "unknown_distance",
]


def context_distance(scale_factor: float, tolerance: float = 1e-3, threshold: float = 0.8) -> float:
    """World distance beyond which a label change no longer matters.

    Past ``c = scale_factor * artanh(1 - tolerance)`` the target ``tanh(d /
    scale_factor)`` is within ``tolerance`` of its saturated value, so a face
    farther away than ``c`` cannot change it by more than ``tolerance``. With
    ``mask_distances`` the distance mask compares against ``threshold`` in the
    same tanh space, so ``c`` also covers ``scale_factor * artanh(threshold)``.

    Parameters
    ----------
    scale_factor : float
        World units per unit of the target's argument.
    tolerance : float, optional
        Largest error allowed on a target value, in (0, 1).
    threshold : float, optional
        The distance mask's threshold, in (0, 1).

    Returns
    -------
    float
        The context distance in world units.

    Raises
    ------
    TypeError
        A value that is not a number.
    ValueError
        A ``scale_factor`` that is not positive and finite; a ``tolerance``
        or ``threshold`` outside (0, 1).

    Examples
    --------
    >>> round(context_distance(10.0), 3)
    38.002
    """
    tolerance = _checks.check_fraction(tolerance, "tolerance")
    scale_factor, threshold = _checks.check_scale_threshold(scale_factor, threshold)
    return scale_factor * math.atanh(max(1.0 - tolerance, threshold))


def padding_voxels(context: float, voxel_size: Sequence[float]) -> tuple[int, ...]:
    """Voxels of context needed on each side along each axis.

    A face at distance ``c`` along axis ``k`` has its farther voxel at ``c +
    w_k / 2``, so both voxels of every face within ``context`` of a voxel of
    the region are inside the region grown by ``ceil((context + w_k / 2) /
    w_k)`` voxels.

    Parameters
    ----------
    context : float
        Distance in world units (see :func:`context_distance`).
    voxel_size : sequence of float
        Voxel size in world units, z-y-x.

    Returns
    -------
    tuple of int
        Voxels of padding per axis.

    Raises
    ------
    ValueError
        A negative or infinite ``context``; a voxel size entry that is not
        positive and finite.

    Examples
    --------
    >>> padding_voxels(38.0, (40, 4, 4))
    (2, 10, 10)
    """
    context = _checks.check_nonnegative(context, "context")
    voxel_size = _checks.as_spatial_voxel_size(voxel_size)
    return tuple(math.ceil((context + w / 2) / w) for w in voxel_size)


def face_distance(
    labels: npt.ArrayLike,
    voxel_size: Sequence[float] | None = None,
    outside: object = None,
    *,
    threads: int = 1,
) -> np.ndarray:
    """Distance from each voxel centre to the nearest face midpoint between two
    voxels of different label.

    A face is the square shared by two face-adjacent voxels; its midpoint lies
    half a voxel from both voxel centres. Labels are compared by value, in
    their own dtype (bool, integer or float, either byte order; -0.0 equals
    0.0, and NaN is refused).

    Parameters
    ----------
    labels : ndarray
        Labels with 1 to 3 spatial axes, z-y-x.
    voxel_size : sequence of float, optional
        Voxel size in world units, one per axis; ones by default.
    outside : scalar, optional
        If given, the array is treated as surrounded by this label, so the
        outer face of a border voxel with another label counts as well. It
        must be a value of the labels' dtype (not NaN).
    threads : int, optional
        Threads the kernel may run on; 1 by default.

    Returns
    -------
    ndarray of float32
        Distances in world units, ``inf`` where there is no face at all.

    Raises
    ------
    ValueError
        NaN labels, an ``outside`` that the labels' dtype does not hold
        exactly (1.5 for integer labels, 256 for ``uint8``), a bad shape or
        voxel size.
    TypeError
        Labels that are not bool, integer or float (complex, objects,
        strings, bytes, datetimes); a ``threads`` that is not an int.

    Examples
    --------
    >>> face_distance(np.array([0, 0, 1, 1, 1]), voxel_size=(2,))
    array([3., 1., 1., 3., 5.], dtype=float32)
    >>> face_distance(np.array([1, 1, 1]), outside=0)
    array([0.5, 1.5, 0.5], dtype=float32)
    """
    labels = _checks.as_array(labels, "labels")
    spatial_dims = _checks.check_spatial_rank(labels, "labels", channel_axis=False)
    voxel_size = _checks.as_voxel_size(voxel_size, spatial_dims)
    threads = _checks.check_threads(threads)
    outside = _check_labels_and_outside(labels, outside)
    kernel_labels, outside = _checks.kernel_labels(labels, outside)
    out = np.empty(labels.shape, dtype=np.float32)
    _kernels.face_distance_3d(
        kernel_labels, voxel_size, out, np.empty_like(out), outside, threads=threads
    )
    return out


def _check_labels_and_outside(labels, outside):
    """Refuse labels the kernel cannot compare (objects, NaN: NaN differs from
    itself, so every NaN voxel would be a label of its own) and an
    ``outside`` that the labels' dtype does not hold exactly; return
    ``outside`` in that dtype."""
    _checks.check_numeric_dtype(labels, "labels")
    if labels.dtype.kind == "f" and np.isnan(labels).any():
        raise ValueError(
            f"labels holds {int(np.isnan(labels).sum())} NaN values; NaN is no label "
            f"(it differs from itself)"
        )
    if outside is None:
        return None
    if np.ndim(outside) != 0:
        raise TypeError(f"outside must be one label (a scalar), got {outside!r}")
    try:
        value = labels.dtype.type(outside)
        # compared as Python numbers: numpy would compare a float in the
        # labels' precision, where a rounded value equals the original
        exact = bool(value.item() == outside)
    except (TypeError, ValueError, OverflowError):
        exact = False
    if not exact:  # also NaN, which equals nothing
        raise ValueError(
            f"outside must be a label that labels' dtype {labels.dtype} holds "
            f"exactly, got {outside!r}"
        )
    return value


def signed_face_distance(
    labels: npt.ArrayLike,
    voxel_size: Sequence[float] | None = None,
    scale_factor: float | None = None,
    *,
    threads: int = 1,
) -> np.ndarray:
    """Signed face distance of a binary channel, optionally through tanh.

    Positive where the label is 1, negative where it is 0; ``+inf`` / ``-inf``
    where the channel has no face (it is all 1 or all 0), which ``tanh`` maps
    to exactly ``+1`` / ``-1``.

    Parameters
    ----------
    labels : ndarray
        Binary labels (0 and 1; bool, integer or float) with 1 to 3 spatial
        axes.
    voxel_size : sequence of float, optional
        Voxel size in world units, z-y-x; ones by default.
    scale_factor : float, optional
        If given, return ``tanh(d / scale_factor)`` instead of ``d``.
    threads : int, optional
        Threads the kernel may run on; 1 by default.

    Returns
    -------
    ndarray of float32
        The shape of ``labels``.

    Raises
    ------
    ValueError
        Labels with values other than 0 and 1, a bad shape or voxel size, a
        ``scale_factor`` that is not positive and finite.
    TypeError
        Labels that are not bool, integer or float, a ``scale_factor`` that
        is not a number, a ``threads`` that is not an int.

    Examples
    --------
    >>> signed_face_distance(np.array([[0, 1, 1]]), voxel_size=(1, 4))
    array([[-2.,  2.,  6.]], dtype=float32)
    """
    labels = _checks.as_array(labels, "labels")
    spatial_dims = _checks.check_spatial_rank(labels, "labels", channel_axis=False)
    voxel_size = _checks.as_voxel_size(voxel_size, spatial_dims)
    _checks.check_binary(labels, "labels")
    threads = _checks.check_threads(threads)
    out = np.empty(labels.shape, dtype=np.float32)
    scratch = np.empty_like(out)
    inverse_scale = 0.0
    if scale_factor is not None:
        inverse_scale = 1.0 / _checks.check_positive(scale_factor, "scale_factor")
    _signed_channel(labels, voxel_size, inverse_scale, out, scratch, threads)
    return out


def _signed_channel(
    labels, voxel_size, inverse_scale, out, scratch, threads, codes=None, one_hot=False
):
    """Signed (and, if ``inverse_scale > 0``, tanh-normalized) distance of one
    checked binary channel into ``out``, with ``scratch`` (and ``codes``, if
    given) as work space; with ``one_hot``, ``scratch`` ends up holding the
    channel as float32 0.0 and 1.0."""
    _kernels.face_distance_3d(
        _checks.kernel_binary(labels),
        voxel_size,
        out,
        scratch,
        sign_mode=_kernels.SIGNED,
        inverse_scale=inverse_scale,
        threads=threads,
        codes=codes,
        one_hot=one_hot,
    )


def hot_distance_target(
    gt: npt.ArrayLike,
    voxel_size: Sequence[float],
    scale_factor: float,
    *,
    threads: int = 1,
) -> np.ndarray:
    """The hot-distance target of a binary ground truth.

    For ``C`` class channels: the ``C`` one-hot channels (the gt as float32),
    followed by the ``C`` channels ``tanh(d / scale_factor)``, with ``d`` the
    signed face distance (see :func:`signed_face_distance`).

    Parameters
    ----------
    gt : ndarray
        Binary ground truth of shape ``(C, [z,] [y,] x)``.
    voxel_size : sequence of float
        Voxel size in world units, z-y-x.
    scale_factor : float
        World distance at which the target reaches ``tanh(1) ~ 0.76``.
    threads : int, optional
        Threads the kernel may run on; 1 by default.

    Returns
    -------
    ndarray of float32, shape ``(2 * C, ...)``

    Raises
    ------
    ValueError
        A ``gt`` without a channel axis or with 0 or more than 3 spatial axes,
        a channel with values other than 0 and 1, a ``voxel_size`` of the
        wrong length or with entries that are not positive and finite, a
        ``scale_factor`` that is not positive and finite.
    TypeError
        A ``gt`` that is not a bool, integer or float array (e.g. strings or
        complex), a ``scale_factor`` that is not a number, a ``threads``
        that is not an int.

    Examples
    --------
    >>> target = hot_distance_target(np.array([[0, 0, 1, 1]]), (1,), 1.0)
    >>> target.round(3)
    array([[ 0.   ,  0.   ,  1.   ,  1.   ],
           [-0.905, -0.462,  0.462,  0.905]], dtype=float32)
    """
    gt = _checks.as_array(gt, "gt")
    spatial_dims = _checks.check_spatial_rank(gt, "gt", channel_axis=True)
    voxel_size = _checks.as_voxel_size(voxel_size, spatial_dims)
    inverse_scale = 1.0 / _checks.check_positive(scale_factor, "scale_factor")
    threads = _checks.check_threads(threads)
    for c in range(gt.shape[0]):
        _checks.check_binary(gt[c], f"gt channel {c}")
    return _target(gt, voxel_size, inverse_scale, threads=threads)


def _target(gt, voxel_size, inverse_scale, instance_labels=None, threads=1):
    """:func:`hot_distance_target` of checked binary channels ``(C, ...)``;
    raw signed distances where ``inverse_scale`` is 0. ``instance_labels(c)``,
    if given, returns class ``c``'s instance ids (0 outside the class) or
    ``None``: with ids, the distance is measured to the faces between
    different ids, so touching instances are apart."""
    classes = gt.shape[0]
    target = np.empty((2 * classes,) + gt.shape[1:], dtype=np.float32)
    # the kernel's face codes: one buffer per thread, shared by its channels
    codes = [None] * threads
    # integer channels' one-hot is written by the kernel as it finishes each
    # plane (float ones may hold -0.0, which the copy keeps)
    one_hot = gt.dtype.kind in "biu"

    def channel(c, threads, slot):
        if codes[slot] is None:
            codes[slot] = np.empty(gt.shape[1:], dtype=np.uint8)
        ids = None if instance_labels is None else instance_labels(c)
        # the one-hot slot is free work space until it is filled last
        if ids is None:
            _signed_channel(
                gt[c],
                voxel_size,
                inverse_scale,
                target[classes + c],
                target[c],
                threads,
                codes=codes[slot],
                one_hot=one_hot,
            )
            if not one_hot:
                target[c] = gt[c]
        else:
            _kernels.face_distance_3d(
                _checks.kernel_labels(ids)[0],
                voxel_size,
                target[classes + c],
                target[c],
                sign_mode=_kernels.SIGNED,
                inverse_scale=inverse_scale,
                threads=threads,
                codes=codes[slot],
            )
            target[c] = gt[c]

    _kernels.run_channels(classes, math.prod(gt.shape[1:]), channel, threads)
    return target


def unknown_distance(
    mask: npt.ArrayLike,
    voxel_size: Sequence[float] | None = None,
    max_distance: float | None = None,
    *,
    threads: int = 1,
) -> np.ndarray:
    """Distance from each known voxel to the nearest face midpoint of the
    unknown region.

    The unknown region is where ``mask`` is 0, together with everything
    outside the array. Its nearest face is the nearest place where an unseen
    label change could be, so a measured distance larger than this one cannot
    be trusted. Unknown voxels get 0.

    Parameters
    ----------
    mask : ndarray
        Binary mask (1 known, 0 unknown) with 1 to 3 spatial axes.
    voxel_size : sequence of float, optional
        Voxel size in world units, z-y-x; ones by default.
    max_distance : float, optional
        If given, distances larger than this may be reported as ``inf``,
        which saves work where only nearby unknown regions matter.
    threads : int, optional
        Threads the kernel may run on; 1 by default.

    Returns
    -------
    ndarray of float32
        The shape of ``mask``; 0 where ``mask`` is 0.

    Raises
    ------
    ValueError
        A mask with values other than 0 and 1, a bad shape or voxel size, a
        negative ``max_distance``.
    TypeError
        A mask that is not bool, integer or float, a ``max_distance`` that
        is not a number, a ``threads`` that is not an int.

    Examples
    --------
    >>> unknown_distance(np.array([1, 1, 1, 1, 0]), voxel_size=(2,))
    array([1., 3., 3., 1., 0.], dtype=float32)
    >>> unknown_distance(np.array([1, 1, 1, 1, 0]), voxel_size=(2,), max_distance=2)
    array([ 1., inf, inf,  1.,  0.], dtype=float32)
    """
    mask = _checks.as_array(mask, "mask")
    spatial_dims = _checks.check_spatial_rank(mask, "mask", channel_axis=False)
    voxel_size = _checks.as_voxel_size(voxel_size, spatial_dims)
    _checks.check_binary(mask, "mask")
    if max_distance is None:
        max_distance = np.inf
    else:
        max_distance = _checks.check_distance(max_distance, "max_distance")
    threads = _checks.check_threads(threads)
    out = np.empty(mask.shape, dtype=np.float32)
    _unknown_channel(mask, voxel_size, out, max_distance, threads)
    return out


def _unknown_channel(mask, voxel_size, out, max_distance=np.inf, threads=1):
    """:func:`unknown_distance` of a checked mask into ``out``."""
    known = _checks.kernel_binary(mask)
    if not math.isfinite(max_distance):
        _kernels.face_distance_3d(
            known,
            voxel_size,
            out,
            np.empty_like(out),
            outside=0,
            sign_mode=_kernels.ZERO_OUTSIDE,
            threads=threads,
        )
        return
    # Within max_distance, only the array's edge and the unknown voxels' box
    # grown by max_distance matter: the edge's nearest face has a closed form,
    # and the box is all the kernel needs to see.
    _edge_distance(voxel_size, max_distance, out)
    low, high = _kernels.unknown_box(_kernels.to_3d(known))
    if low[0] > high[0]:
        return  # nothing unknown inside the array
    box = []
    for axis, n in enumerate(known.shape):
        grow = math.ceil(max_distance / voxel_size[axis]) + 1
        first, last = low[axis - known.ndim], high[axis - known.ndim]
        box.append(slice(max(0, first - grow), min(n, last + grow + 1)))
    box = tuple(box)
    known = np.ascontiguousarray(known[box])
    near = np.empty(known.shape, dtype=np.float32)
    _kernels.face_distance_3d(
        known,
        voxel_size,
        near,
        np.empty_like(near),
        sign_mode=_kernels.ZERO_OUTSIDE,
        max_distance=max_distance,
        threads=threads,
    )
    np.minimum(out[box], near, out=out[box])


def _edge_distance(voxel_size, max_distance, out):
    """Distance from each voxel centre of ``out`` to the nearest face on its
    edge (along the voxel's own lines, to the nearer end), ``inf`` past
    ``max_distance``."""
    out.fill(np.inf)
    shape = out.shape
    for axis, (n, size) in enumerate(zip(shape, voxel_size)):
        along = (np.minimum(np.arange(n), np.arange(n)[::-1]) + 0.5) * size
        along[along > max_distance] = np.inf
        view = [np.newaxis] * len(shape)
        view[axis] = slice(None)
        np.minimum(out, along[tuple(view)].astype(np.float32), out=out)
