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

Passes and their cost
---------------------
The kernel runs in three named steps, each parallel over planes
(:func:`_in_plane_pass`, :func:`_across_planes_pass`, :func:`_final_pass`;
:func:`_face_distance_kernel` calls them in turn). Every pass starts from an
upper bound on its result and only lowers it: ``P_x S_y`` starts from ``P_y
S_x``, and the last ``P_x`` from the distance to the x- and y-faces, so that
a voxel near any face settles after a few samples; ``P_y S_z`` is only needed
below the largest distance of its row already known, and is dropped above it.
A pass searches outward from every sample of a row at once, on SIMD lanes,
until the offset alone reaches the row's bound (:func:`_near_search_columns`,
:func:`_near_search_row`), and leaves to the envelope, whose cost does not
grow with the distance, the lines where most samples are farther than
``_NEAR_REACH`` (:func:`_envelope_columns`, :func:`_envelope_rows`). Columns
are the SIMD axis, so the only transposes are those of the x-sweep (its
label plane, and its result back). Each thread allocates its work space once per pass (a few planes),
not per plane: fresh memory costs page faults on every call.

The tanh
--------
The target's ``tanh(d / scale_factor)`` is taken in the last pass
(:func:`_tanh_in_place`), on all threads, while the row is in cache, and it
is the float32-rounded value of the exact tanh. numpy's float32 ``np.tanh``
is faster on one thread (about 1.2 ms against 6-10 ms per 2 million values,
measured on this project's 2-core machine) but not correctly rounded: about a
third of its values are one float32 step off, and which ones depends on the
value's position in the array (SIMD body or scalar tail; ``np.tanh`` of 9.0
gave 0.99999994 at the start of an array and 1.0 inside it). The kernel's
tanh keeps the target deterministic whatever the array's shape, and costs
about 5% of the target's time.

Threads
-------
The caller chooses the thread count (``numba.set_num_threads``); each pass
splits its planes into one chunk per thread, and every plane's result is the
same whichever thread computes it, so results do not depend on the count.
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


# ---------------------------------------------------------------------------
# Envelope passes on planes. A pass takes the minimum into ``dst``, which
# holds an upper bound on the result (the samples themselves, or a smaller
# value already known): ``dst[i] = min(dst[i], min_j src[j] + spacing2 (i - j)^2)``.
# Three ways to the same minimum, in named steps:
# - the near search (:func:`_near_search_columns`, :func:`_near_search_row`):
#   offset by offset outward from every sample of a row at once, on SIMD
#   lanes, until the offset alone reaches the row's largest bound (no nearer
#   sample can then be beaten by a farther one) or _NEAR_REACH samples. A
#   bound already known settles a row sooner;
# - the outward search of the few samples it leaves open
#   (:func:`_far_search_columns`), one at a time;
# - the Felzenszwalb-Huttenlocher envelope (:func:`_envelope_line`), whose
#   cost does not grow with the distance, for lines with many open samples.
# Each sum is rounded to float32 once, as the envelope's value is, so all
# give the minimum of the float32-rounded sums, bit for bit.
# ---------------------------------------------------------------------------

# the near search's farthest offset, in samples
_NEAR_REACH = 16
# a line with more than 1 / _FAR_SHARE of its samples open after the near
# search goes to the envelope
_FAR_SHARE = 4
# columns gathered at once for the envelope: one cache line of float32
_BLOCK = 16


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _count_above(values, bound):
    """How many values of a 1-D float32 array exceed ``bound`` (a count, not
    a maximum: its reduction runs on SIMD lanes)."""
    count = 0
    for c in range(values.shape[0]):
        count += values[c] > bound
    return count


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _lower_row(best, row, offset):
    """``best = min(best, row + offset)``, each sum rounded to float32 once."""
    narrow = np.float32(offset)
    if narrow == offset:
        # a float32 sum is then the float64 sum rounded once
        for c in range(best.shape[0]):
            candidate = row[c] + narrow
            if candidate < best[c]:
                best[c] = candidate
    else:
        for c in range(best.shape[0]):
            candidate = np.float32(row[c] + offset)
            if candidate < best[c]:
                best[c] = candidate


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _near_search_columns(src, dst, spacing2, cap2):
    """The near search along axis 0 of 2-D planes, all columns at once; returns
    the farthest offset searched for any row."""
    n = src.shape[0]
    farthest = 0
    reach = min(_NEAR_REACH, n - 1)
    for i in range(n):
        best = dst[i]
        o = 0
        if _count_above(best, spacing2) > 0:
            for o in range(1, reach + 1):
                offset = spacing2 * o * o
                if offset > cap2:
                    o -= 1
                    break
                if i >= o:
                    _lower_row(best, src[i - o], offset)
                if i + o < n:
                    _lower_row(best, src[i + o], offset)
                following = o + 1
                if _count_above(best, spacing2 * following * following) == 0:
                    break
        farthest = max(farthest, o)
    return farthest


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _far_search_columns(src, dst, spacing2, cap2, searched, columns, count):
    """The outward search, past offset ``searched``, of the samples of the
    given ``columns`` that the near search left open."""
    n = src.shape[0]
    for k in range(count):
        c = columns[k]
        for i in range(n):
            best = dst[i, c]
            j = searched + 1
            offset = spacing2 * j * j
            while offset < best and offset <= cap2 and j < n:
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


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _parabola_columns(src, dst, spacing2, columns, count, work):
    """The envelope along axis 0 of the given ``columns``, gathered a block
    at a time (one cache line of each row), its minimum taken into ``dst``."""
    block, vertices, heights, bounds, minima = work[0], work[1], work[2], work[3], work[4]
    n = src.shape[0]
    for start in range(0, count, _BLOCK):
        width = min(_BLOCK, count - start)
        for i in range(n):
            for b in range(width):
                block[b, i] = src[i, columns[start + b]]
        for b in range(width):
            _envelope_line(block[b, :n], spacing2, vertices, heights, bounds, minima)
        for i in range(n):
            for b in range(width):
                c = columns[start + b]
                if block[b, i] < dst[i, c]:
                    dst[i, c] = block[b, i]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _open_columns(dst, bound, open_count):
    """Count per column the values of a 2-D plane above ``bound``."""
    m = dst.shape[1]
    open_count[:m] = 0
    for i in range(dst.shape[0]):
        row = dst[i]
        for c in range(m):
            open_count[c] += row[c] > bound


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _envelope_columns(src, dst, spacing2, cap2, work):
    """``dst = min(dst, P src)`` along axis 0 of 2-D float32 planes, ``inf``
    where above ``cap2``. If most columns have many bounds beyond the near
    search's reach, the envelope takes every column; otherwise the near
    search runs first, then the envelope or the outward search finishes the
    columns it left open. ``src`` and ``dst`` must not overlap."""
    n, m = src.shape
    columns, open_count = work[7], work[8]
    reach = min(_NEAR_REACH, n - 1)
    _open_columns(dst, spacing2 * reach * reach, open_count)
    far = 0
    for c in range(m):
        if open_count[c] * _FAR_SHARE > n:
            far += 1
    if 2 * far > m:
        for c in range(m):
            columns[c] = c
        _parabola_columns(src, dst, spacing2, columns, m, work)
    else:
        searched = _near_search_columns(src, dst, spacing2, cap2)
        if searched < n - 1:
            _open_columns(dst, spacing2 * (searched + 1) * (searched + 1), open_count)
            far = 0
            for c in range(m):
                if open_count[c] * _FAR_SHARE > n:
                    columns[far] = c
                    far += 1
            _parabola_columns(src, dst, spacing2, columns, far, work)
            near = 0
            for c in range(m):
                if 0 < open_count[c] and open_count[c] * _FAR_SHARE <= n:
                    columns[near] = c
                    near += 1
            _far_search_columns(src, dst, spacing2, cap2, searched, columns, near)
    _cap(dst, cap2)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _cap(values, cap2):
    """Set the values of a 2-D plane above ``cap2`` to ``inf``."""
    if cap2 < _INF:
        for i in range(values.shape[0]):
            row = values[i]
            for c in range(row.shape[0]):
                if row[c] > cap2:
                    row[c] = _INF


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _near_search_row(line, best, spacing2, cap2, pad):
    """The near search along one line: ``best[i] = min(best[i], line[pad + i
    +- o] + spacing2 o^2)``; ``line`` holds the samples from ``pad`` on, with
    ``inf`` in the ``pad`` values before and after them. Returns the farthest
    offset searched."""
    width = best.shape[0]
    reach = min(_NEAR_REACH, width - 1)
    o = 0
    if _count_above(best, spacing2) > 0:
        for o in range(1, reach + 1):
            offset = spacing2 * o * o
            if offset > cap2:
                o -= 1
                break
            _lower_row(best, line[pad - o:pad - o + width], offset)
            _lower_row(best, line[pad + o:pad + o + width], offset)
            following = o + 1
            if _count_above(best, spacing2 * following * following) == 0:
                break
    return o


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _far_search_line(line, best, spacing2, cap2, pad, searched, settled):
    """The outward search, past offset ``searched``, of the samples of one
    line (as in :func:`_near_search_row`) that the near search left open."""
    width = best.shape[0]
    for i in range(width):
        value = best[i]
        if value <= settled:
            continue
        j = searched + 1
        offset = spacing2 * j * j
        while offset < value and offset <= cap2 and j < width:
            nearest = min(line[pad + i - j], line[pad + i + j])
            candidate = np.float32(nearest + offset)
            if candidate < value:
                value = candidate
            j += 1
            offset = spacing2 * j * j
        best[i] = value


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _envelope_rows(src, dst, width, spacing2, cap2, work):
    """``dst = min(dst, P src)`` along axis 1 (the contiguous one) of the
    first ``width`` columns of 2-D planes, ``inf`` where above ``cap2``: the
    near search, then the envelope for a row it left open."""
    vertices, heights, bounds, minima = work[1], work[2], work[3], work[4]
    line = work[5]
    pad = width  # line: inf, the row, inf
    for r in range(src.shape[0]):
        row = src[r]
        out = dst[r]
        for i in range(width):
            line[pad + i] = row[i]
        reach = min(_NEAR_REACH, width - 1)
        if _count_above(out, spacing2 * reach * reach) * _FAR_SHARE > width:
            searched = 0  # mostly far: straight to the envelope
        else:
            searched = _near_search_row(line, out, spacing2, cap2, pad)
        if searched < width - 1:
            settled = spacing2 * (searched + 1) * (searched + 1)
            open_count = 0
            for i in range(width):
                if out[i] > settled:
                    open_count += 1
            if open_count * _FAR_SHARE > width:
                segment = line[pad:pad + width]
                _envelope_line(segment, spacing2, vertices, heights, bounds, minima)
                for i in range(width):
                    out[i] = min(out[i], segment[i])
            elif open_count > 0:
                _far_search_line(line, out, spacing2, cap2, pad, searched, settled)
        for i in range(width):
            if out[i] > cap2:
                out[i] = _INF


# ---------------------------------------------------------------------------
# 1-D distances along a plane's columns, on SIMD lanes across the columns
# ---------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _sweep_columns(labels, outside, has_outside, spacing2, cap2, out, face):
    """:func:`_sweep_line` along axis 0 of every column of 2-D ``labels``
    ``(n, m)`` into ``out``; ``face`` is float64 work space of ``m`` values."""
    n, m = labels.shape
    # the nearest face at or before each row, its distance kept in `out`
    for c in range(m):
        face[c] = -0.5 if (has_outside and labels[0, c] != outside) else -_INF
    for i in range(n):
        if i > 0:
            for c in range(m):
                if labels[i, c] != labels[i - 1, c]:
                    face[c] = i - 0.5
        for c in range(m):
            out[i, c] = i - face[c]  # a half-integer: exact in float32
    # the nearest face after it, then the squared distance to the nearer one
    for c in range(m):
        face[c] = n - 0.5 if (has_outside and labels[n - 1, c] != outside) else _INF
    for i in range(n - 1, -1, -1):
        if i < n - 1:
            for c in range(m):
                if labels[i, c] != labels[i + 1, c]:
                    face[c] = i + 0.5
        for c in range(m):
            d = min(np.float64(out[i, c]), face[c] - i)
            squared = np.float32(spacing2 * d * d)
            out[i, c] = squared if squared <= cap2 else _INF


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _sweep_rows(labels, outside, has_outside, spacing2, cap2, out):
    """:func:`_sweep_line` along every row of 2-D ``labels`` into ``out``."""
    for r in range(labels.shape[0]):
        _sweep_line(labels[r], outside, has_outside, spacing2, cap2, out[r])


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


# ---------------------------------------------------------------------------
# The 3-D kernel: three passes, each parallel over planes (one chunk of planes
# per thread, with its work space allocated once), so that a plane's steps
# run on data in cache. Column passes run along axis 0 of a plane, with SIMD
# lanes across its contiguous axis; row passes along the contiguous axis.
# ---------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _work_space(n, width, labels):
    """A thread's work space for planes of ``n`` rows of ``width`` samples:
    the envelope's line buffers, a row with ``inf`` margins, per-column
    buffers, float32 planes and planes of the dtype of ``labels``."""
    longest = max(n, width)
    return (
        np.empty((_BLOCK, longest), dtype=np.float32),
        np.empty(longest, dtype=np.int64),
        np.empty(longest, dtype=np.float64),
        np.empty(longest, dtype=np.float64),
        np.empty(longest, dtype=np.float64),
        np.full(3 * width, _INF, dtype=np.float32),
        np.empty(longest, dtype=np.float64),
        np.empty(width, dtype=np.int64),
        np.empty(width, dtype=np.int64),
        np.empty((n, width), dtype=np.float32),
        np.empty((n, width), dtype=np.float32),
        np.empty((n, width), dtype=np.float32),
        np.empty((n, width), dtype=labels.dtype),
        np.empty((width, n), dtype=np.float32),
        np.empty((width, n), dtype=labels.dtype),
    )


@numba.njit(cache=True, nogil=True)
def _chunk(count, chunks, t):
    """The range of the ``t``-th of ``chunks`` equal chunks of ``count``."""
    return t * count // chunks, (t + 1) * count // chunks


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _in_plane_pass(labels, spacing2, outside, has_outside, cap2, out, threads):
    """Step 1, per z-plane: ``out = min(P_y S_x, P_x S_y)``."""
    nz, ny, nx = labels.shape
    wz, wy, wx = spacing2
    chunks = min(nz, threads)
    for t in numba.prange(chunks):
        work = _work_space(ny, nx, labels)
        along_x, spread, face = work[9], work[10], work[6]
        transposed, transposed_labels = work[13], work[14]
        first, last = _chunk(nz, chunks, t)
        for z in range(first, last):
            plane = labels[z]
            # S_x: the column sweep on the transposed plane runs on SIMD lanes
            for y in range(ny):
                for x in range(nx):
                    transposed_labels[x, y] = plane[y, x]
            _sweep_columns(
                transposed_labels, outside, has_outside[2], wx, cap2, transposed, face
            )
            for y in range(ny):
                for x in range(nx):
                    along_x[y, x] = transposed[x, y]
            for y in range(ny):
                for x in range(nx):
                    spread[y, x] = along_x[y, x]
            _envelope_columns(along_x, spread, wy, cap2, work)
            # along_x is free: S_y goes there, and bounds P_x S_y from above
            _sweep_columns(plane, outside, has_outside[1], wy, cap2, along_x, face)
            for y in range(ny):
                for x in range(nx):
                    spread[y, x] = min(spread[y, x], along_x[y, x])
            _envelope_rows(along_x, spread, nx, wx, cap2, work)
            for y in range(ny):
                for x in range(nx):
                    out[z, y, x] = spread[y, x]


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _across_planes_pass(labels, spacing2, outside, has_outside, cap2, out, scratch, threads):
    """Step 2, per y-slab: ``out = P_z out`` and ``scratch = S_z``."""
    nz, ny, nx = labels.shape
    wz, wy, wx = spacing2
    chunks = min(ny, threads)
    for t in numba.prange(chunks):
        work = _work_space(nz, nx, labels)
        slab, spread, face, slab_labels = work[9], work[10], work[6], work[12]
        first, last = _chunk(ny, chunks, t)
        for y in range(first, last):
            for z in range(nz):
                for x in range(nx):
                    slab[z, x] = out[z, y, x]
                    spread[z, x] = out[z, y, x]
            _envelope_columns(slab, spread, wz, cap2, work)
            for z in range(nz):
                for x in range(nx):
                    out[z, y, x] = spread[z, x]
                    slab_labels[z, x] = labels[z, y, x]
            _sweep_columns(slab_labels, outside, has_outside[0], wz, cap2, slab, face)
            for z in range(nz):
                for x in range(nx):
                    scratch[z, y, x] = slab[z, x]


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _final_pass(labels, spacing2, cap2, sign_mode, inverse_scale, out, scratch, threads):
    """Step 3, per z-plane: ``out = min(out, P_x P_y S_z)``, then the square
    root, the sign (``sign_mode``) and, if ``inverse_scale > 0``, the tanh.

    ``P_y S_z`` is only needed where it is below the largest ``out`` of its
    row (elsewhere it cannot lower any voxel of the row): that bound shortens
    the near search, and the samples at or above it are dropped (``inf``).
    """
    nz, ny, nx = labels.shape
    wz, wy, wx = spacing2
    chunks = min(nz, threads)
    for t in numba.prange(chunks):
        work = _work_space(ny, nx, labels)
        along_z, spread, result = work[9], work[10], work[11]
        first, last = _chunk(nz, chunks, t)
        for z in range(first, last):
            for y in range(ny):
                needed = np.float32(0.0)
                for x in range(nx):
                    needed = max(needed, out[z, y, x])
                for x in range(nx):
                    along_z[y, x] = scratch[z, y, x]
                    spread[y, x] = min(scratch[z, y, x], needed)
            _envelope_columns(along_z, spread, wy, cap2, work)
            for y in range(ny):
                needed = np.float32(0.0)
                for x in range(nx):
                    needed = max(needed, out[z, y, x])
                for x in range(nx):
                    if spread[y, x] >= needed:
                        spread[y, x] = _INF
                    result[y, x] = min(out[z, y, x], spread[y, x])
            _envelope_rows(spread, result, nx, wx, cap2, work)
            for y in range(ny):
                row = out[z, y]
                for x in range(nx):
                    d = math.sqrt(result[y, x])
                    if sign_mode != UNSIGNED and labels[z, y, x] == 0:
                        d = -d if sign_mode == SIGNED else 0.0
                    row[x] = d
                if inverse_scale > 0:
                    _tanh_in_place(row, inverse_scale)


def _face_distance_kernel(
    labels, spacing2, outside, has_outside, cap2, sign_mode, inverse_scale, out, scratch
):
    """Face distance of 3-D ``labels`` into ``out``; ``scratch`` is work space.

    ``spacing2`` holds the squared voxel size per axis, ``has_outside`` per
    axis whether the array continues with the label ``outside`` beyond its
    ends. Squared distances above ``cap2`` are reported as ``inf`` (which
    saves work where they do not matter). The result is then signed or zeroed
    by ``sign_mode`` and, if ``inverse_scale > 0``, passed through
    ``tanh(d * inverse_scale)``. The three steps:

    1. :func:`_in_plane_pass`: ``out = min(P_y S_x, P_x S_y)``;
    2. :func:`_across_planes_pass`: ``out = P_z out``, ``scratch = S_z``;
    3. :func:`_final_pass`: ``out = min(out, P_x P_y S_z)``, then the root,
       the sign and the tanh.
    """
    threads = numba.get_num_threads()
    _in_plane_pass(labels, spacing2, outside, has_outside, cap2, out, threads)
    _across_planes_pass(labels, spacing2, outside, has_outside, cap2, out, scratch, threads)
    _final_pass(labels, spacing2, cap2, sign_mode, inverse_scale, out, scratch, threads)


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
