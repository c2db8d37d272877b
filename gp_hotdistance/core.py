"""Distance and weighting math of the hot-distance target, on plain numpy arrays.

Everything here works on numpy arrays with a leading channel axis where one is
needed, and spatial axes in z-y-x order (any spatial rank from 1 to 3).
Nothing here imports gunpowder: the predictor and the gunpowder nodes are thin
layers over these functions. The kernels are compiled with numba.

The distance is measured from each voxel centre to the nearest centre of a
*face*: the square that separates two face-adjacent voxels of different label.
It is exact and is computed without the doubled grid that the reference
implementation builds. Faces normal to axis ``k`` sit half a voxel off the grid
along ``k``, so the squared distance is

    ``D^2 = min over k of P_{a != k} S_k``,

where ``S_k`` is the squared 1-D distance along ``k`` to the nearest label
change on that line and ``P_a`` is the 1-D lower envelope of parabolas along
axis ``a`` (Felzenszwalb and Huttenlocher, "Distance Transforms of Sampled
Functions", Theory of Computing 8, 2012). The ``P_a`` commute and are min-plus
linear, which lets 3-D share passes::

    D^2 = min(P_z[min(P_y S_x, P_x S_y)], P_y P_x S_z)

Lower-rank arrays are handled as 3-D arrays with leading axes of length 1.
Each ``P`` pass first takes the minimum over the few nearest samples on SIMD
lanes and keeps the envelope for lines with many far samples (see
``_envelope_plane``); the results are the envelope's, bit for bit.
"""

import logging
import math
import numbers
import os
import threading

import numba
import numpy as np

logger = logging.getLogger(__name__)

# gunpowder's PreCache forks its workers. GNU OpenMP, numba's usual threading
# layer on Linux, aborts a forked child that uses it after its parent did;
# workqueue does not. A layer chosen through NUMBA_THREADING_LAYER is kept.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

# workqueue runs one parallel kernel at a time per process: calls from
# several threads take turns
_KERNEL_LOCK = threading.Lock()

__all__ = [
    "context_distance",
    "padding_voxels",
    "face_distance",
    "signed_face_distance",
    "hot_distance_target",
    "unknown_distance",
    "distance_mask",
    "balance_weights",
    "hot_distance_weights",
    "trust_reach",
]

_INF = np.inf


# ---------------------------------------------------------------------------
# 1-D kernels
# ---------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _sweep_line(labels, outside, has_outside, spacing2, cap2, out):
    """Squared distance along one line to the nearest label change on it.

    A change between positions ``i`` and ``i + 1`` is a face at ``i + 0.5``.
    With ``has_outside`` the line is treated as continued by ``outside`` on
    both ends, so that an end voxel with another label has a face at its end.
    Distances above ``cap2`` are reported as ``inf``.
    """
    n = labels.shape[0]
    face = -_INF  # position of the nearest face at or before i
    if has_outside and labels[0] != outside:
        face = -0.5
    for i in range(n):
        if i > 0 and labels[i] != labels[i - 1]:
            face = i - 0.5
        d = i - face
        out[i] = spacing2 * d * d
    face = _INF  # position of the nearest face after i
    if has_outside and labels[n - 1] != outside:
        face = n - 0.5
    for i in range(n - 1, -1, -1):
        if i < n - 1 and labels[i] != labels[i + 1]:
            face = i + 0.5
        d = face - i
        candidate = spacing2 * d * d
        if candidate < out[i]:
            out[i] = candidate
        if out[i] > cap2:
            out[i] = _INF


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _envelope_line(values, spacing2, vertices, heights, bounds, minima):
    """In place: ``values[i] = min_j values[j] + spacing2 * (i - j)^2``.

    The lower envelope of the parabolas rooted at the finite samples
    (Felzenszwalb and Huttenlocher). In index units a parabola rooted at ``q``
    is ``i^2 - 2 q i + heights``, with ``heights = values[q] / spacing2 +
    q^2``; the envelope's parabolas sit on a stack (``vertices``, ``heights``,
    ``minima``), the ``k``-th one lowest for ``bounds[k] < i <= bounds[k+1]``.
    The four stack buffers must be at least as long as ``values``.
    """
    n = values.shape[0]
    inverse = 1.0 / spacing2
    k = -1
    for q in range(n):
        fq = values[q]
        if fq == _INF:
            continue
        hq = fq * inverse + q * q
        # pop the parabolas that q's parabola undercuts from their bound on;
        # the test is bound >= intersection, multiplied out (q > vertex)
        while k >= 0 and hq - heights[k] <= bounds[k] * (2.0 * (q - vertices[k])):
            k -= 1
        k += 1
        if k == 0:
            bounds[0] = -_INF
        else:
            bounds[k] = (hq - heights[k - 1]) / (2.0 * (q - vertices[k - 1]))
        vertices[k] = q
        heights[k] = hq
        minima[k] = fq
    if k < 0:
        return  # no finite sample: the line stays infinite
    # fill each parabola's interval with a branch-free inner loop
    start = 0
    for j in range(k + 1):
        stop = n
        if j < k:
            stop = int(math.floor(min(max(bounds[j + 1], -1.0), n - 1.0))) + 1
        p = vertices[j]
        fp = minima[j]
        for i in range(start, stop):
            d = i - p
            values[i] = spacing2 * d * d + fp
        start = max(start, stop)


# Near voxels first: in dense labels most voxels have a face within a few
# voxels, and taking the minimum over the few nearest samples of a whole row of
# lines at once runs on SIMD units, several times faster than the envelope.
# Samples farther than _NEAR_REACH are searched one voxel at a time, or, on a
# line where more than 1 / _FAR_SHARE of the samples are, left to the envelope.
# With anisotropic voxels the faces of the coarse axis lie many fine voxels
# away, so passes along a fine axis reach further.
_NEAR_REACH = 4
_NEAR_REACH_FINE = 6
_FAR_SHARE = 2


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _near_minimum(src, dst, spacing2, reach):
    """``dst[i] = min over |j - i| <= reach of src[j] + spacing2 * (i - j)^2``,
    row by row of 2-D float32 arrays.

    Each sum is rounded to float32 as the envelope rounds it, so both give
    bit-identical values: where the offset is a float32, a float32 sum is the
    float64 sum rounded once, and it runs on twice as many SIMD lanes.
    """
    n = src.shape[0]
    for i in range(n):
        nearest = dst[i]
        nearest[:] = src[i]
        for j in range(max(0, i - reach), min(n, i + reach + 1)):
            if j == i:
                continue
            offset = spacing2 * (i - j) * (i - j)
            narrow = np.float32(offset)
            row = src[j]
            if narrow == offset:
                for c in range(row.shape[0]):
                    candidate = row[c] + narrow
                    if candidate < nearest[c]:
                        nearest[c] = candidate
            else:
                for c in range(row.shape[0]):
                    candidate = np.float32(row[c] + offset)
                    if candidate < nearest[c]:
                        nearest[c] = candidate


# columns gathered at once for the envelope: one cache line of float32
_BLOCK = 16


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _envelope_plane(src, dst, spacing2, reach, cap2, work):
    """``dst[i, c] = min_j src[j, c] + spacing2 * (i - j)^2`` for 2-D ``src``:
    the lower envelope along axis 0 of every column, ``inf`` where above
    ``cap2``; the SIMD pass takes the ``reach`` nearest samples on each side.
    ``src`` and ``dst`` must not overlap; ``work`` is
    :func:`_stack_buffers` for lines of at least ``n`` samples.
    """
    block, vertices, heights, bounds, minima = work
    n, m = src.shape
    settled = spacing2 * (reach + 1) * (reach + 1)
    # a sample above `settled` may have its minimum beyond reach; if most do,
    # the near pass is wasted work
    near_enough = 0
    for i in range(n):
        for c in range(m):
            if src[i, c] <= settled:
                near_enough += 1
    unsettled = np.full(m, n)
    if 2 * near_enough >= n * m:
        _near_minimum(src, dst, spacing2, reach)
        unsettled[:] = 0
        for i in range(n):
            for c in range(m):
                if dst[i, c] > settled:
                    unsettled[c] += 1
    # lines with many far samples: the envelope, on columns gathered a block
    # at a time so that each row is read one cache line at a time
    columns = np.empty(m, dtype=np.int64)
    count = 0
    for c in range(m):
        if unsettled[c] * _FAR_SHARE > n:
            columns[count] = c
            count += 1
    for start in range(0, count, _BLOCK):
        width = min(_BLOCK, count - start)
        for i in range(n):
            for b in range(width):
                block[b, i] = src[i, columns[start + b]]
        for b in range(width):
            _envelope_line(block[b, :n], spacing2, vertices, heights, bounds, minima)
        for i in range(n):
            for b in range(width):
                dst[i, columns[start + b]] = block[b, i]
    # lines with a few far samples: search outward from each until the offset
    # alone exceeds the best value found
    for c in range(m):
        if unsettled[c] == 0 or unsettled[c] * _FAR_SHARE > n:
            continue
        for i in range(n):
            best = dst[i, c]
            if best <= settled:
                continue
            j = reach + 1
            offset = spacing2 * j * j
            while offset < best:
                if i - j >= 0:
                    candidate = np.float32(src[i - j, c] + offset)
                    if candidate < best:
                        best = candidate
                if i + j < n:
                    candidate = np.float32(src[i + j, c] + offset)
                    if candidate < best:
                        best = candidate
                j += 1
                offset = spacing2 * j * j
            dst[i, c] = best
    if cap2 < _INF:
        # inf samples are skipped by the envelope: the next pass gets cheaper
        for i in range(n):
            for c in range(m):
                if dst[i, c] > cap2:
                    dst[i, c] = _INF


# ---------------------------------------------------------------------------
# The 3-D kernel: three loops, each parallel over planes, so that a plane's
# passes run on data in cache. Every envelope runs along the first axis of a
# C-contiguous plane; a plane is transposed into a buffer where needed.
# ---------------------------------------------------------------------------

# float32 tanh is exactly +-1 past 9.02
_TANH_SATURATION = 9.5


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _tanh_in_place(values, inverse_scale):
    """``values = tanh(values * inverse_scale)`` on a 1-D float32 array.

    Written out so that the loop runs on SIMD units (a libm call per value
    does not): ``tanh(a) = 1 - 2 / (exp(2a) + 1)``, with ``exp(2a)`` the
    32nd power of ``exp(2a / 32)``, which a 15-term Taylor series gives to
    float64 rounding for ``a`` up to the saturation point; near 0, where that
    form cancels, the Taylor series of tanh itself. Both are far below
    float32 rounding: the results equal float32-rounded ``math.tanh``.
    """
    for i in range(values.shape[0]):
        x = values[i] * inverse_scale
        a = min(abs(x), _TANH_SATURATION)
        y = a * (2.0 / 32.0)
        e = 1.0 + y * (1.0 + y * (1.0 / 2 + y * (1.0 / 6 + y * (1.0 / 24 + y * (
            1.0 / 120 + y * (1.0 / 720 + y * (1.0 / 5040 + y * (1.0 / 40320 + y * (
                1.0 / 362880 + y * (1.0 / 3628800 + y * (1.0 / 39916800 + y * (
                    1.0 / 479001600 + y * (1.0 / 6227020800 + y / 87178291200)
                ))))))))))))
        for _ in range(5):
            e = e * e
        a2 = a * a
        small = a * (1.0 - a2 * (1.0 / 3 - a2 * (2.0 / 15 - a2 * (17.0 / 315))))
        t = small if a < 0.02 else 1.0 - 2.0 / (e + 1.0)
        values[i] = math.copysign(t, x)

# what _face_distance_kernel does with the label at the end
_UNSIGNED = 0  # plain distance
_SIGNED = 1  # negative where the label is 0
_ZERO_OUTSIDE = 2  # 0 where the label is 0


@numba.njit(cache=True, nogil=True)
def _stack_buffers(n):
    """Work space of :func:`_envelope_plane` for lines of up to ``n`` samples."""
    return (
        np.empty((_BLOCK, n), dtype=np.float32),
        np.empty(n, dtype=np.int64),
        np.empty(n, dtype=np.float64),
        np.empty(n, dtype=np.float64),
        np.empty(n, dtype=np.float64),
    )


@numba.njit(cache=True, nogil=True)
def _drop_unneeded(samples, found):
    """Set to ``inf`` the samples of a plane that are at least the largest
    distance already ``found`` in it.

    The passes only add to a sample, so such a sample cannot lower any
    voxel's minimum in this plane, and the envelope skips ``inf`` samples:
    where one axis's faces are far (anisotropic voxels), its passes get cheap.
    """
    bound = -_INF
    for value in found.ravel():
        bound = max(bound, value)
    for i in range(samples.shape[0]):
        for j in range(samples.shape[1]):
            if samples[i, j] >= bound:
                samples[i, j] = _INF


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _face_distance_kernel(
    labels, spacing2, outside, has_outside, cap2, sign_mode, inverse_scale, out, scratch
):
    """Face distance of 3-D ``labels`` into ``out``; ``scratch`` is work space.

    ``spacing2`` holds the squared voxel size per axis, ``has_outside`` per
    axis whether the array continues with the label ``outside`` beyond its
    ends. Squared distances above ``cap2`` are reported as ``inf`` (which
    saves work where they do not matter). The result is then signed or zeroed
    by ``sign_mode`` and, if ``inverse_scale > 0``, passed through
    ``tanh(d * inverse_scale)``.
    """
    nz, ny, nx = labels.shape
    wz, wy, wx = spacing2
    longest = max(nx, ny, nz)
    coarsest = max(spacing2)
    reach_z, reach_y, reach_x = [
        _NEAR_REACH_FINE if 4 * w < coarsest else _NEAR_REACH for w in spacing2
    ]
    # 1. out = min(P_y S_x, P_x S_y), plane by plane
    for z in numba.prange(nz):
        work = _stack_buffers(longest)
        plane = labels[z]
        along_x = np.empty((ny, nx), dtype=np.float32)
        for y in range(ny):
            _sweep_line(plane[y], outside, has_outside[2], wx, cap2, along_x[y])
        spread_y = np.empty((ny, nx), dtype=np.float32)
        _envelope_plane(along_x, spread_y, wy, reach_y, cap2, work)
        columns = np.ascontiguousarray(plane.T)
        along_y = np.empty((nx, ny), dtype=np.float32)
        for x in range(nx):
            _sweep_line(columns[x], outside, has_outside[1], wy, cap2, along_y[x])
        _drop_unneeded(along_y, spread_y)
        spread_x = np.empty((nx, ny), dtype=np.float32)
        _envelope_plane(along_y, spread_x, wx, reach_x, cap2, work)
        for y in range(ny):
            for x in range(nx):
                out[z, y, x] = min(spread_y[y, x], spread_x[x, y])
    # 2. out = P_z out, and scratch = S_z, slab by slab along y
    for y in numba.prange(ny):
        work = _stack_buffers(longest)
        slab = np.ascontiguousarray(out[:, y, :])
        spread_z = np.empty((nz, nx), dtype=np.float32)
        _envelope_plane(slab, spread_z, wz, reach_z, cap2, work)
        out[:, y, :] = spread_z
        along_z = np.empty((nx, nz), dtype=np.float32)
        label_lines = np.ascontiguousarray(labels[:, y, :].T)
        for x in range(nx):
            _sweep_line(label_lines[x], outside, has_outside[0], wz, cap2, along_z[x])
        scratch[:, y, :] = along_z.T
    # 3. out = min(out, P_y P_x S_z), then sign and normalize, plane by plane
    for z in numba.prange(nz):
        work = _stack_buffers(longest)
        columns = np.ascontiguousarray(scratch[z].T)
        _drop_unneeded(columns, out[z])
        spread_x = np.empty((nx, ny), dtype=np.float32)
        _envelope_plane(columns, spread_x, wx, reach_x, cap2, work)
        rows = np.ascontiguousarray(spread_x.T)
        spread_y = np.empty((ny, nx), dtype=np.float32)
        _envelope_plane(rows, spread_y, wy, reach_y, cap2, work)
        for y in range(ny):
            row = out[z, y]
            for x in range(nx):
                d = math.sqrt(min(row[x], spread_y[y, x]))
                if sign_mode != _UNSIGNED and labels[z, y, x] == 0:
                    d = -d if sign_mode == _SIGNED else 0.0
                row[x] = d
            if inverse_scale > 0:
                _tanh_in_place(row, inverse_scale)


def _face_distance_3d(
    labels,
    voxel_size,
    out,
    scratch,
    outside=None,
    sign_mode=_UNSIGNED,
    inverse_scale=0.0,
    max_distance=np.inf,
):
    """Run the kernel on ``labels`` with 1 to 3 spatial axes.

    ``out`` and ``scratch`` are float32, C-contiguous and shaped like
    ``labels``. With ``outside``, the array is surrounded by that label along
    its own axes (not along the added axes of length 1). Distances above
    ``max_distance`` may come out as ``inf``.
    """
    spatial_dims = labels.ndim
    labels3 = np.ascontiguousarray(_to_3d(labels))
    spacing2 = (1.0,) * (3 - spatial_dims) + tuple(v * v for v in voxel_size)
    has_outside = tuple(
        outside is not None and axis >= 3 - spatial_dims for axis in range(3)
    )
    outside = labels3.dtype.type(0 if outside is None else outside)
    if inverse_scale > 0:
        # the kernel maps every distance past this one to exactly +-1
        max_distance = min(max_distance, _TANH_SATURATION / inverse_scale)
    with _KERNEL_LOCK:
        _face_distance_kernel(
            labels3, spacing2, outside, has_outside, max_distance**2, sign_mode,
            inverse_scale, _to_3d(out), _to_3d(scratch),
        )


# ---------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------


def _as_voxel_size(voxel_size, spatial_dims, name="voxel_size"):
    """``voxel_size`` as a tuple of ``spatial_dims`` positive finite floats
    (all ones if ``None``)."""
    if voxel_size is None:
        return (1.0,) * spatial_dims
    if isinstance(voxel_size, (str, bytes)) or not hasattr(voxel_size, "__len__"):
        raise TypeError(
            f"{name} must be a sequence of {spatial_dims} numbers (z-y-x), "
            f"got {voxel_size!r}"
        )
    if len(voxel_size) != spatial_dims:
        raise ValueError(
            f"{name} must have one entry per spatial axis ({spatial_dims}), "
            f"got {tuple(voxel_size)!r}"
        )
    values = []
    for v in voxel_size:
        if not isinstance(v, numbers.Real) or isinstance(v, bool):
            raise TypeError(f"{name} must hold numbers, got {tuple(voxel_size)!r}")
        if not (math.isfinite(v) and v > 0):
            raise ValueError(
                f"{name} entries must be positive and finite, got {tuple(voxel_size)!r}"
            )
        values.append(float(v))
    return tuple(values)


def _check_positive(value, name):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return float(value)


def _check_fraction(value, name, low_open=True, high_open=True):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    low_ok = value > 0 if low_open else value >= 0
    high_ok = value < 1 if high_open else value <= 1
    if not (math.isfinite(value) and low_ok and high_ok):
        interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return float(value)


def _as_array(array, name):
    if isinstance(array, np.ndarray):
        return array
    if hasattr(array, "__array__") or isinstance(array, (list, tuple)):
        return np.asarray(array)
    raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")


def _check_spatial_rank(array, name, channel_axis):
    spatial = array.ndim - (1 if channel_axis else 0)
    if not 1 <= spatial <= 3:
        expected = "(channels, [z,] [y,] x)" if channel_axis else "([z,] [y,] x)"
        raise ValueError(
            f"{name} must have shape {expected} with 1 to 3 spatial axes, "
            f"got shape {array.shape}"
        )
    if array.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    return spatial


def _check_binary(array, name):
    """Raise unless ``array`` holds only 0 and 1 (bool, integer or float)."""
    if array.dtype == bool:
        return
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(
            f"{name} must be a bool, integer or float array, got dtype {array.dtype}"
        )
    low, high = array.min(), array.max()
    # NaN makes both comparisons false
    binary = low >= 0 and high <= 1
    if binary and np.issubdtype(array.dtype, np.floating):
        binary = not np.any((array != 0) & (array != 1))
    if not binary:
        values = np.unique(array)
        odd = values[(values != 0) & (values != 1)]
        raise ValueError(
            f"{name} must hold only 0 and 1 (binary, one channel per class), "
            f"found {odd[:5].tolist()}"
        )


def _to_3d(array):
    """View a 1-3-D array as 3-D, adding leading axes of length 1."""
    return array.reshape((1,) * (3 - array.ndim) + array.shape)


# ---------------------------------------------------------------------------
# public functions
# ---------------------------------------------------------------------------


def context_distance(scale_factor, tolerance=1e-3, threshold=0.8):
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

    Examples
    --------
    >>> round(context_distance(10.0), 3)
    38.002
    """
    scale_factor = _check_positive(scale_factor, "scale_factor")
    tolerance = _check_fraction(tolerance, "tolerance")
    threshold = _check_fraction(threshold, "threshold")
    return scale_factor * math.atanh(max(1.0 - tolerance, threshold))


def padding_voxels(context, voxel_size):
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

    Examples
    --------
    >>> padding_voxels(38.0, (40, 4, 4))
    (2, 10, 10)
    """
    if not isinstance(context, numbers.Real) or not math.isfinite(context) or context < 0:
        raise ValueError(f"context must be a finite distance >= 0, got {context!r}")
    voxel_size = _as_voxel_size(voxel_size, len(voxel_size))
    return tuple(math.ceil((context + w / 2) / w) for w in voxel_size)


def face_distance(labels, voxel_size=None, outside=None):
    """Distance from each voxel centre to the nearest face between two voxels
    of different label.

    A face is the square shared by two face-adjacent voxels; its centre lies
    half a voxel from both voxel centres. Labels are compared as they are (any
    dtype, no casting).

    Parameters
    ----------
    labels : ndarray
        Labels with 1 to 3 spatial axes, z-y-x.
    voxel_size : sequence of float, optional
        Voxel size in world units, one per axis; ones by default.
    outside : scalar, optional
        If given, the array is treated as surrounded by this label, so the
        outer face of a border voxel with another label counts as well.

    Returns
    -------
    ndarray of float32
        Distances in world units, ``inf`` where there is no face at all.

    Examples
    --------
    >>> face_distance(np.array([0, 0, 1, 1, 1]), voxel_size=(2,))
    array([3., 1., 1., 3., 5.], dtype=float32)
    >>> face_distance(np.array([1, 1, 1]), outside=0)
    array([0.5, 1.5, 0.5], dtype=float32)
    """
    labels = _as_array(labels, "labels")
    spatial_dims = _check_spatial_rank(labels, "labels", channel_axis=False)
    voxel_size = _as_voxel_size(voxel_size, spatial_dims)
    out = np.empty(labels.shape, dtype=np.float32)
    _face_distance_3d(labels, voxel_size, out, np.empty_like(out), outside)
    return out


def signed_face_distance(labels, voxel_size=None, scale_factor=None):
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

    Returns
    -------
    ndarray of float32

    Examples
    --------
    >>> signed_face_distance(np.array([[0, 1, 1]]), voxel_size=(1, 4))
    array([[-2.,  2.,  6.]], dtype=float32)
    """
    labels = _as_array(labels, "labels")
    spatial_dims = _check_spatial_rank(labels, "labels", channel_axis=False)
    voxel_size = _as_voxel_size(voxel_size, spatial_dims)
    _check_binary(labels, "labels")
    out = np.empty(labels.shape, dtype=np.float32)
    scratch = np.empty_like(out)
    inverse_scale = 0.0
    if scale_factor is not None:
        inverse_scale = 1.0 / _check_positive(scale_factor, "scale_factor")
    _signed_channel(labels, voxel_size, inverse_scale, out, scratch)
    return out


def _signed_channel(labels, voxel_size, inverse_scale, out, scratch):
    """Signed (and, if ``inverse_scale > 0``, tanh-normalized) distance of one
    checked binary channel into ``out``, with ``scratch`` as work space."""
    foreground = labels.astype(bool, copy=False)
    _face_distance_3d(
        foreground, voxel_size, out, scratch, sign_mode=_SIGNED, inverse_scale=inverse_scale
    )


def hot_distance_target(gt, voxel_size, scale_factor):
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

    Returns
    -------
    ndarray of float32, shape ``(2 * C, ...)``

    Examples
    --------
    >>> target = hot_distance_target(np.array([[0, 0, 1, 1]]), (1,), 1.0)
    >>> target.round(3)
    array([[ 0.   ,  0.   ,  1.   ,  1.   ],
           [-0.905, -0.462,  0.462,  0.905]], dtype=float32)
    """
    gt = _as_array(gt, "gt")
    spatial_dims = _check_spatial_rank(gt, "gt", channel_axis=True)
    voxel_size = _as_voxel_size(voxel_size, spatial_dims)
    inverse_scale = 1.0 / _check_positive(scale_factor, "scale_factor")
    classes = gt.shape[0]
    for c in range(classes):
        _check_binary(gt[c], f"gt channel {c}")
    target = np.empty((2 * classes,) + gt.shape[1:], dtype=np.float32)
    for c in range(classes):
        # the one-hot slot is free work space until it is filled last
        _signed_channel(gt[c], voxel_size, inverse_scale, target[classes + c], target[c])
        target[c] = gt[c]
    return target


def unknown_distance(mask, voxel_size=None, max_distance=None):
    """Distance from each known voxel to the nearest face of the unknown region.

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

    Returns
    -------
    ndarray of float32

    Examples
    --------
    >>> unknown_distance(np.array([1, 1, 1, 1, 0]), voxel_size=(2,))
    array([1., 3., 3., 1., 0.], dtype=float32)
    >>> unknown_distance(np.array([1, 1, 1, 1, 0]), voxel_size=(2,), max_distance=2)
    array([ 1., inf, inf,  1.,  0.], dtype=float32)
    """
    mask = _as_array(mask, "mask")
    spatial_dims = _check_spatial_rank(mask, "mask", channel_axis=False)
    voxel_size = _as_voxel_size(voxel_size, spatial_dims)
    _check_binary(mask, "mask")
    if max_distance is None:
        max_distance = np.inf
    elif not isinstance(max_distance, numbers.Real) or not max_distance >= 0:
        raise ValueError(f"max_distance must be a distance >= 0, got {max_distance!r}")
    out = np.empty(mask.shape, dtype=np.float32)
    _unknown_channel(mask, voxel_size, out, max_distance)
    return out


def _unknown_channel(mask, voxel_size, out, max_distance=np.inf):
    """:func:`unknown_distance` of a checked mask into ``out``."""
    known = mask.astype(bool, copy=False)
    if not math.isfinite(max_distance):
        _face_distance_3d(
            known, voxel_size, out, np.empty_like(out), outside=False,
            sign_mode=_ZERO_OUTSIDE,
        )
        return
    # Within max_distance, only the array's edge and the unknown voxels' box
    # grown by max_distance matter: the edge's nearest face has a closed form,
    # and the box is all the kernel needs to see.
    _edge_distance(voxel_size, max_distance, out)
    low, high = _unknown_box(_to_3d(known))
    if low[0] > high[0]:
        return  # nothing unknown inside the array
    box = []
    for axis, n in enumerate(known.shape):
        grow = math.ceil(max_distance / voxel_size[axis]) + 1
        first, last = low[axis - known.ndim], high[axis - known.ndim]
        box.append(slice(max(0, first - grow), min(n, last + grow + 1)))
    box = tuple(box)
    near = np.empty(known[box].shape, dtype=np.float32)
    _face_distance_3d(
        known[box], voxel_size, near, np.empty_like(near), sign_mode=_ZERO_OUTSIDE,
        max_distance=max_distance,
    )
    np.minimum(out[box], near, out=out[box])


@numba.njit(cache=True, nogil=True)
def _unknown_box(known):
    """First and last index per axis of the voxels where 3-D ``known`` is
    False; first > last if there are none."""
    low = np.array(known.shape)
    high = np.full(3, -1)
    nz, ny, nx = known.shape
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if not known[z, y, x]:
                    low[0] = min(low[0], z)
                    low[1] = min(low[1], y)
                    low[2] = min(low[2], x)
                    high[0] = max(high[0], z)
                    high[1] = max(high[1], y)
                    high[2] = max(high[2], x)
    return low, high


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


def trust_reach(scale_factor, threshold=0.8):
    """Distance to the unknown region past which every target distance is
    trusted.

    The distance mask distrusts a voxel where ``min(|t| + epsilon,
    threshold) >= tanh(u / scale_factor)``, with ``u`` the distance to the
    unknown region; the left side is at most ``threshold``, so past ``u =
    scale_factor * artanh(threshold)`` every voxel is trusted. The unknown
    region's distance is only needed up to here (see the ``max_distance`` of
    :func:`unknown_distance`). A margin of 1e-6 keeps float rounding at that
    point on the safe side.

    Parameters
    ----------
    scale_factor : float
        The target's scale factor.
    threshold : float, optional
        The distance mask's threshold, in (0, 1).

    Returns
    -------
    float

    Examples
    --------
    >>> round(trust_reach(50.0), 3)
    54.931
    """
    scale_factor = _check_positive(scale_factor, "scale_factor")
    threshold = _check_fraction(threshold, "threshold")
    return scale_factor * math.atanh(threshold) * (1 + 1e-6)


@numba.njit(cache=True, nogil=True)
def _distrust(distances, unknown, inverse_scale, epsilon, threshold, reach, known):
    """Clear ``known`` where a target distance cannot be trusted (flat arrays).

    Untrusted: ``min(|t| + epsilon, threshold) >= tanh(unknown / scale)``, the
    unknown region is not clearly farther, in tanh units, than the measured
    boundary. Deep voxels (``|t|`` past ``threshold``) need the unknown region
    past ``threshold`` too. Past ``reach`` every voxel is trusted.
    """
    for i in range(known.shape[0]):
        if known[i] and unknown[i] <= reach:
            measured = min(abs(distances[i]) + epsilon, threshold)
            x = unknown[i] * inverse_scale
            # x - x^3 / 3 <= tanh(x) <= x settle most voxels without tanh
            if measured >= x:
                known[i] = False
            elif measured >= x - x * x * x / 3 and measured >= math.tanh(x):
                known[i] = False


def _flat_bool(array):
    """``array != 0`` as a flat C-ordered bool array (a view where possible)."""
    return array.astype(bool, copy=False).reshape(-1)


def distance_mask(distances, mask, voxel_size, scale_factor, epsilon=0.05, threshold=0.8):
    """Mask of the voxels whose target distance can be trusted.

    Parameters
    ----------
    distances : ndarray
        The target's distance channels, ``tanh(d / scale_factor)``, shape
        ``(C, ...)``.
    mask : ndarray or None
        Binary mask, ``(C, ...)`` (one channel per class) or ``(...)`` (one
        for all classes); ``None`` means all known.
    voxel_size : sequence of float
        Voxel size in world units, z-y-x.
    scale_factor : float
        The target's scale factor.
    epsilon : float, optional
        Margin added to ``|t|`` before the comparison, in tanh units.
    threshold : float, optional
        Cap on ``|t| + epsilon``, in (0, 1): beyond it a target is saturated
        enough that the unknown region only needs to be past ``threshold``.

    Returns
    -------
    ndarray of uint8, shape ``(C, ...)``
        1 where the distance can be trusted, 0 where it cannot or the mask is 0.

    Examples
    --------
    >>> t = hot_distance_target(np.array([[0, 0, 0, 1, 1, 1, 1, 1]]), (1,), 2.0)
    >>> distance_mask(t[1:], np.array([1, 1, 1, 1, 1, 1, 1, 0]), (1,), 2.0)
    array([[0, 0, 1, 1, 1, 0, 0, 0]], dtype=uint8)
    """
    distances = _as_array(distances, "distances")
    spatial_dims = _check_spatial_rank(distances, "distances", channel_axis=True)
    voxel_size = _as_voxel_size(voxel_size, spatial_dims)
    scale_factor = _check_positive(scale_factor, "scale_factor")
    epsilon = _check_nonnegative(epsilon, "epsilon")
    threshold = _check_fraction(threshold, "threshold")
    masks = _mask_channels(mask, distances.shape, "mask")
    reach = trust_reach(scale_factor, threshold)
    unknown = _UnknownDistances(masks, distances.shape, voxel_size, reach)
    result = np.empty(distances.shape, dtype=np.uint8)
    for c in range(distances.shape[0]):
        trusted = np.ones(result[c].size, dtype=bool)
        _distrust(
            distances[c].reshape(-1), unknown.channel(c).reshape(-1),
            1.0 / scale_factor, epsilon, threshold, reach, trusted,
        )
        result[c] = trusted.reshape(result.shape[1:])
    return result


class _UnknownDistances:
    """The distance to the unknown region of each class channel, computed
    once for a mask shared by all classes (or no mask), and capped at
    ``reach`` (farther is ``inf``)."""

    def __init__(self, masks, shape, voxel_size, reach):
        self.masks = masks
        self.shared = masks is None or masks.ndim == len(shape) - 1
        self.voxel_size = voxel_size
        self.reach = reach
        self.distances = np.empty(shape[1:], dtype=np.float32)
        self.computed = False

    def channel(self, c):
        if not (self.shared and self.computed):
            if self.masks is None:
                known = np.ones(self.distances.shape, dtype=bool)
            else:
                known = self.masks if self.shared else self.masks[c]
            _unknown_channel(known, self.voxel_size, self.distances, self.reach)
            self.computed = True
        return self.distances


def _check_nonnegative(value, name):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return float(value)


def _mask_channels(mask, shape, name):
    """Check ``mask`` against a ``(C, ...)`` shape: ``None``, ``(C, ...)`` or
    ``(...)``; return it as an array (or ``None``)."""
    if mask is None:
        return None
    mask = _as_array(mask, name)
    if mask.shape != tuple(shape) and mask.shape != tuple(shape[1:]):
        raise ValueError(
            f"{name} must have shape {tuple(shape)} (one channel per class) or "
            f"{tuple(shape[1:])} (one for all classes), got {mask.shape}"
        )
    _check_binary(mask, name)
    return mask


def _as_counts(counts, channels, name="moving_class_counts"):
    if counts is None:
        return np.zeros((channels, 2), dtype=np.int64)
    counts = _as_array(counts, name)
    if counts.shape != (channels, 2):
        raise ValueError(
            f"{name} must have shape ({channels}, 2) (background and foreground "
            f"voxels per channel), got {counts.shape}; were they made for "
            f"another number of classes?"
        )
    if not np.issubdtype(counts.dtype, np.integer):
        raise ValueError(
            f"{name} must hold non-negative integer counts, got dtype {counts.dtype}"
        )
    if np.any(counts < 0):
        raise ValueError(
            f"{name} must hold non-negative integer counts, got {counts.min()}"
        )
    return counts.astype(np.int64)


def balance_weights(labels, mask=None, counts=None, clipmin=0.05, clipmax=0.95):
    """Class-balancing weights per channel, with counts that move across calls.

    For each channel, the known voxels (``mask`` 1) of this call are added to
    the running ``counts`` of background and foreground voxels; each class then
    gets weight ``0.5 / clip(fraction, clipmin, clipmax)``, where ``fraction =
    count / (1 + total)``, and each known voxel the weight of its class.
    Unknown voxels get 0. The ``1 +`` keeps the first fraction finite, as in
    the reference implementation.

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

    Examples
    --------
    >>> weights, counts = balance_weights(np.array([[0, 0, 0, 1]]))
    >>> weights
    array([[0.8333333, 0.8333333, 0.8333333, 2.5      ]], dtype=float32)
    >>> counts
    array([[3, 1]])
    """
    labels = _as_array(labels, "labels")
    _check_spatial_rank(labels, "labels", channel_axis=True)
    for c in range(labels.shape[0]):
        _check_binary(labels[c], f"labels channel {c}")
    masks = _mask_channels(mask, labels.shape, "mask")
    counts = _as_counts(counts, labels.shape[0])
    clipmin, clipmax = _check_clip(clipmin, clipmax)
    weights = np.empty(labels.shape, dtype=np.float32)
    flat_weights = weights.reshape(labels.shape[0], -1)
    for c, known in enumerate(_known_channels(masks, labels.shape)):
        _balance_channel(
            _flat_bool(labels[c]), known, counts[c], clipmin, clipmax, flat_weights[c]
        )
    return weights, counts


def _check_clip(clipmin, clipmax):
    clipmin = _check_fraction(clipmin, "clipmin", high_open=False)
    clipmax = _check_fraction(clipmax, "clipmax", high_open=False)
    if clipmin > clipmax:
        raise ValueError(f"clipmin ({clipmin}) must not exceed clipmax ({clipmax})")
    return clipmin, clipmax


@numba.njit(cache=True, nogil=True)
def _count_classes(foreground, known):
    """Known background and foreground voxels (flat bool arrays)."""
    seen = 0
    seen_foreground = 0
    for i in range(foreground.shape[0]):
        if known[i]:
            seen += 1
            if foreground[i]:
                seen_foreground += 1
    return seen - seen_foreground, seen_foreground


@numba.njit(cache=True, nogil=True)
def _fill_weights(foreground, known, background_weight, foreground_weight, out):
    for i in range(out.shape[0]):
        # selects, not branches: the loop vectorizes
        weight = foreground_weight if foreground[i] else background_weight
        out[i] = weight if known[i] else np.float32(0.0)


def _balance_channel(foreground, known, counts, clipmin, clipmax, out):
    """Balance one channel into ``out``; update ``counts`` (length 2) in place.

    ``foreground`` and ``known`` are flat bool arrays, ``out`` a flat float32
    array of the same length.
    """
    counts += _count_classes(foreground, known)
    fractions = np.clip(counts / (1.0 + counts.sum()), clipmin, clipmax)
    class_weights = (0.5 / fractions).astype(np.float32)
    _fill_weights(foreground, known, class_weights[0], class_weights[1], out)


def _known_channels(masks, shape):
    """Per class channel, the flat bool mask of known voxels."""
    voxels = int(np.prod(shape[1:]))
    if masks is None:
        everywhere = np.ones(voxels, dtype=bool)
        return [everywhere] * shape[0]
    if masks.ndim == len(shape) - 1:
        return [_flat_bool(masks)] * shape[0]
    return [_flat_bool(m) for m in masks]


def hot_distance_weights(
    gt,
    target,
    mask,
    voxel_size,
    scale_factor,
    counts=None,
    mask_distances=False,
    epsilon=0.05,
    threshold=0.8,
    clipmin=0.05,
    clipmax=0.95,
    unknown=None,
):
    """Weights for the hot-distance target, with moving class counts.

    The ``C`` one-hot channels and the ``C`` distance channels are each
    balanced foreground against background (see :func:`balance_weights`),
    with their own counts. Weights are 0 where ``mask`` is 0; with
    ``mask_distances``, the distance channels' weights are also 0 where the
    distance cannot be trusted (see :func:`distance_mask`).

    Parameters
    ----------
    gt : ndarray
        Binary ground truth ``(C, ...)``.
    target : ndarray
        The matching target ``(2 * C, ...)`` from :func:`hot_distance_target`.
    mask : ndarray or None
        Binary mask ``(C, ...)`` or ``(...)``; ``None`` means all known.
    voxel_size : sequence of float
        Voxel size in world units, z-y-x.
    scale_factor : float
        The target's scale factor.
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
        region, ``(C, ...)`` or ``(...)``, as :func:`unknown_distance` gives
        it. Pass it when ``gt`` is a crop of a larger known region (a crop
        with context), so that the crop's edge does not count as unknown. By
        default it is computed from ``mask``, with everything outside the
        array unknown.

    Returns
    -------
    weights : ndarray of float32, shape ``(2 * C, ...)``
    counts : ndarray of int64, shape ``(2 * C, 2)``

    Examples
    --------
    >>> gt = np.array([[0, 0, 0, 1]])
    >>> target = hot_distance_target(gt, (1,), 1.0)
    >>> weights, counts = hot_distance_weights(gt, target, None, (1,), 1.0)
    >>> counts.tolist()
    [[3, 1], [3, 1]]
    """
    gt = _as_array(gt, "gt")
    spatial_dims = _check_spatial_rank(gt, "gt", channel_axis=True)
    voxel_size = _as_voxel_size(voxel_size, spatial_dims)
    classes = gt.shape[0]
    for c in range(classes):
        _check_binary(gt[c], f"gt channel {c}")
    target = _as_array(target, "target")
    if target.shape != (2 * classes,) + gt.shape[1:]:
        raise ValueError(
            f"target must have shape {(2 * classes,) + gt.shape[1:]} "
            f"(one-hot and distance channels of gt), got {target.shape}"
        )
    masks = _mask_channels(mask, gt.shape, "mask")
    counts = _as_counts(counts, 2 * classes)
    clipmin, clipmax = _check_clip(clipmin, clipmax)
    scale_factor = _check_positive(scale_factor, "scale_factor")
    if mask_distances:
        epsilon = _check_nonnegative(epsilon, "epsilon")
        threshold = _check_fraction(threshold, "threshold")
        if unknown is not None:
            unknown = _as_array(unknown, "unknown")
            if unknown.shape not in (gt.shape, gt.shape[1:]):
                raise ValueError(
                    f"unknown must have shape {gt.shape} (one channel per class) or "
                    f"{gt.shape[1:]} (one for all classes), got {unknown.shape}"
                )

    weights = np.empty((2 * classes,) + gt.shape[1:], dtype=np.float32)
    flat_weights = weights.reshape(2 * classes, -1)
    if mask_distances:
        reach = trust_reach(scale_factor, threshold)
        if unknown is None:
            unknown = _UnknownDistances(masks, gt.shape, voxel_size, reach)
    for c, known in enumerate(_known_channels(masks, gt.shape)):
        foreground = _flat_bool(gt[c])
        _balance_channel(foreground, known, counts[c], clipmin, clipmax, flat_weights[c])
        if mask_distances:
            if isinstance(unknown, _UnknownDistances):
                channel_unknown = unknown.channel(c)
            else:
                channel_unknown = unknown if unknown.ndim < gt.ndim else unknown[c]
            known = known.copy()
            _distrust(
                target[classes + c].reshape(-1), channel_unknown.reshape(-1),
                1.0 / scale_factor, epsilon, threshold, reach, known,
            )
        _balance_channel(
            foreground, known, counts[classes + c], clipmin, clipmax,
            flat_weights[classes + c],
        )
    return weights, counts
