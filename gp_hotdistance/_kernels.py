"""Compiled kernels of the face distance (numba only; private).

Nothing here checks its arguments: the public functions in
:mod:`gp_hotdistance.distance` and :mod:`gp_hotdistance.weights` check them
and call these kernels on 3-D, C-contiguous arrays.

The algorithm
-------------
The target's distance is measured from each voxel centre to the nearest
*face midpoint*: the centre of the square shared by two face-adjacent voxels
of different label. It is exact, and it is computed without the grid doubled
along every axis that the reference implementation builds.

A face normal to axis ``k`` sits half a voxel off the grid along ``k`` and on
the grid along the other axes. So the squared distance from voxel ``i`` to the
nearest face midpoint is

    ``D^2(i) = min over k of (P_{a != k} S_k)(i)``,

where ``S_k`` holds, per voxel, the squared 1-D distance along axis ``k`` to
the nearest label change on that line (:func:`_sweep_line`), and ``P_a`` is
the lower envelope of parabolas along axis ``a``: ``(P_a f)(i) = min_j f(j) +
w_a^2 (i_a - j_a)^2`` (Felzenszwalb and Huttenlocher, "Distance Transforms of
Sampled Functions", Theory of Computing 8, 2012; :func:`_envelope_line`).
The ``P_a`` commute and are min-plus linear, which lets the three terms of a
3-D array share passes::

    D^2 = min(P_z[min(P_y S_x, P_x S_y)], P_y P_x S_z)

Lower-rank arrays are handled as 3-D arrays with leading axes of length 1.
Each ``P`` pass first takes the minimum over the few nearest samples on SIMD
lanes and keeps the envelope for lines with many far samples (see
:func:`_envelope_plane`); the results are the envelope's, bit for bit.

Threads
-------
gunpowder's ``PreCache`` forks its workers. GNU OpenMP, numba's usual
threading layer on Linux, aborts a forked child that uses it after its parent
did; ``workqueue`` does not, so importing this module selects it unless
``NUMBA_THREADING_LAYER`` is set. workqueue runs one parallel kernel at a time
per process, so calls from several threads take turns on
:data:`KERNEL_LOCK`.
"""

import math
import os
import threading

import numba
import numpy as np

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

#: Held while a parallel kernel runs: workqueue runs one at a time per process.
KERNEL_LOCK = threading.Lock()

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
TANH_SATURATION = 9.5


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
        a = min(abs(x), TANH_SATURATION)
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
UNSIGNED = 0  # plain distance
SIGNED = 1  # negative where the label is 0
ZERO_OUTSIDE = 2  # 0 where the label is 0


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
                if sign_mode != UNSIGNED and labels[z, y, x] == 0:
                    d = -d if sign_mode == SIGNED else 0.0
                row[x] = d
            if inverse_scale > 0:
                _tanh_in_place(row, inverse_scale)


def face_distance_3d(
    labels,
    voxel_size,
    out,
    scratch,
    outside=None,
    sign_mode=UNSIGNED,
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
    labels3 = np.ascontiguousarray(to_3d(labels))
    spacing2 = (1.0,) * (3 - spatial_dims) + tuple(v * v for v in voxel_size)
    has_outside = tuple(
        outside is not None and axis >= 3 - spatial_dims for axis in range(3)
    )
    outside = labels3.dtype.type(0 if outside is None else outside)
    if inverse_scale > 0:
        # the kernel maps every distance past this one to exactly +-1
        max_distance = min(max_distance, TANH_SATURATION / inverse_scale)
    with KERNEL_LOCK:
        _face_distance_kernel(
            labels3, spacing2, outside, has_outside, max_distance**2, sign_mode,
            inverse_scale, to_3d(out), to_3d(scratch),
        )

def to_3d(array):
    """View a 1-3-D array as 3-D, adding leading axes of length 1."""
    return array.reshape((1,) * (3 - array.ndim) + array.shape)

@numba.njit(cache=True, nogil=True)
def unknown_box(known):
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

@numba.njit(cache=True, nogil=True)
def distrust(distances, unknown, inverse_scale, epsilon, threshold, reach, known):
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

@numba.njit(cache=True, nogil=True)
def count_classes(foreground, known):
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
def fill_weights(foreground, known, background_weight, foreground_weight, out):
    for i in range(out.shape[0]):
        # selects, not branches: the loop vectorizes
        weight = foreground_weight if foreground[i] else background_weight
        out[i] = weight if known[i] else np.float32(0.0)
