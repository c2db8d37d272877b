"""One-dimensional passes of the face distance, on lines and planes (numba
only; private).

:mod:`gp_hotdistance._kernels` (whose docstring derives the algorithm) runs
these on the planes of a 3-D array: the sweeps give the squared 1-D distance
along an axis to the nearest label change (``S_k``), the envelope passes the
lower envelope of parabolas along an axis (``P_a``).
"""

import math
from collections import namedtuple

import numpy as np

from ._jit import jit

_INF = np.inf
_INF32 = np.float32(np.inf)  # selects between float32 values stay float32

#: A thread's buffers for the passes over planes of ``(n, width)`` samples
#: (:func:`line_work`): the envelope's stack of parabolas along a line
#: (``vertices``, ``heights``, ``numerators``, ``denominators``, ``minima``)
#: and the first sample of each (``owners``); a row with ``inf`` margins
#: (``padded_row``, ``3 * width``); the sweep's face positions (``faces``);
#: per-column indices and counts (``columns``, ``open_count``, ``width``).
#: None depends on the labels' dtype, so the envelope passes compile once.
LineWork = namedtuple(
    "LineWork",
    [
        "vertices",
        "heights",
        "numerators",
        "denominators",
        "minima",
        "owners",
        "padded_row",
        "faces",
        "columns",
        "open_count",
    ],
)


@jit(nogil=True)
def line_work(n, width):
    """A :class:`LineWork` for planes of ``n`` rows of ``width`` samples
    (and for their transposes)."""
    longest = max(n, width)
    return LineWork(
        np.empty(longest, dtype=np.float64),
        np.empty(longest, dtype=np.float64),
        np.empty(longest, dtype=np.float64),
        np.empty(longest, dtype=np.float64),
        np.empty(longest, dtype=np.float64),
        np.empty(longest, dtype=np.int64),
        np.full(3 * width, _INF, dtype=np.float32),
        np.empty(longest, dtype=np.float32),
        np.empty(width, dtype=np.int64),
        np.empty(width, dtype=np.int64),
    )


# ---------------------------------------------------------------------------
# Stores. A loop that writes back ``min(x[i], y)`` (or ``y if c else x[i]``)
# to ``x[i]`` is compiled by LLVM into a conditional store: a masked SIMD
# store. With AVX-512 that costs what a plain store does; with AVX2 it is
# ``vmaskmovps``, much slower than a plain store in the near search's inner
# loop (``benchmarks/bench_target.py --avx2`` shows the effect on a CPU with
# AVX-512). Storing ``value + 0.0`` instead, a
# sum LLVM may not fold away (it would turn -0.0 into +0.0), makes the
# store unconditional. It is exact for every value stored here (squared
# distances, face positions and inf are never -0.0).
# ---------------------------------------------------------------------------


@jit(nogil=True, error_model="numpy")
def unmasked(value):
    """``value`` itself (any float but -0.0, which becomes +0.0), in a form
    that LLVM stores with a plain SIMD store rather than a masked one."""
    return value + np.float32(0.0)


# ---------------------------------------------------------------------------
# 1-D kernels
# ---------------------------------------------------------------------------


@jit(nogil=True, error_model="numpy")
def _envelope_line(values, out, spacing2, work):
    """``out[i] = min(out[i], min_j values[j] + spacing2 * (i - j)^2)``.

    The lower envelope of the parabolas rooted at the finite samples
    (Felzenszwalb and Huttenlocher). In index units a parabola rooted at ``q``
    is ``i^2 - 2 q i + height``, with ``height = values[q] / spacing2 +
    q^2``; the envelope's parabolas sit on a stack, the ``k``-th one lowest
    from its intersection with the ``(k-1)``-th on. That intersection is kept
    as a fraction (``numerators[k] / denominators[k]``, denominators positive
    but the bottom parabola's, ``-1 / 0``, which no test pops) so that no
    division lies on the loop's critical path. The line
    is then filled from each parabola's first sample, marked in ``owners``,
    and a running maximum over the marks: with a loop per parabola instead,
    whose short trip counts vary, branches are mispredicted. The line
    buffers of ``work`` (a
    :class:`LineWork`) must be at least as long as ``values``.
    """
    vertices, heights, numerators, minima = (
        work.vertices,
        work.heights,
        work.numerators,
        work.minima,
    )
    denominators, owners = work.denominators, work.owners
    n = values.shape[0]
    inverse = 1.0 / spacing2
    k = -1
    for q in range(n):
        fq = values[q]
        if fq == _INF:
            continue
        hq = fq * inverse + q * q
        # pop the parabolas that q's parabola undercuts from their start on:
        # start >= intersection with q's, multiplied out (q > vertex); the
        # first parabola's fraction (-1 / 0) is never popped
        while k >= 0 and (hq - heights[k]) * denominators[k] <= numerators[k] * (
            2.0 * (q - vertices[k])
        ):
            k -= 1
        k += 1
        if k == 0:
            numerators[0] = -1.0
            denominators[0] = 0.0
        else:
            numerators[k] = hq - heights[k - 1]
            denominators[k] = 2.0 * (q - vertices[k - 1])
        vertices[k] = q
        heights[k] = hq
        minima[k] = fq
    if k < 0:
        return  # no finite sample: the line stays infinite
    # the owner of sample i is the last parabola starting at or before it:
    # mark each start, then a running maximum; no branch per parabola
    for i in range(n):
        owners[i] = 0
    for j in range(1, k + 1):
        start = math.floor(numerators[j] / denominators[j]) + 1.0
        if start < n:
            owners[int(max(start, 0.0))] = j
    owner = 0
    for i in range(n):
        owner = max(owner, owners[i])
        d = i - vertices[owner]
        out[i] = min(out[i], np.float32(spacing2 * d * d + minima[owner]))


# ---------------------------------------------------------------------------
# Envelope passes on planes. A pass takes the minimum into ``dst``, which
# holds an upper bound on the result (the samples themselves, or a smaller
# value already known): ``dst[i] = min(dst[i], min_j src[j] + spacing2 (i - j)^2)``.
# Three ways to the same minimum, in named steps:
# - the near search (:func:`_near_search_columns`, :func:`_near_search_row`):
#   offset by offset outward from every sample of a row at once, on SIMD
#   lanes, until the offset alone reaches the row's largest bound (no nearer
#   sample can then be beaten by a farther one) or its reach. A bound already
#   known settles a row sooner;
# - the outward search of the few samples it leaves open
#   (:func:`_far_search_columns`), one at a time;
# - the Felzenszwalb-Huttenlocher envelope (:func:`_envelope_line`), whose
#   cost does not grow with the distance, for lines with many open samples.
# Which one runs depends on the samples. Where many are infinite (the first
# passes over sparse labels: lines without a face) the envelope is cheap,
# as it skips them, while a near search would never settle the lanes that
# have no finite sample in reach: there the near search reaches
# _COLUMN_REACH samples along columns and _ROW_REACH along rows, and a plane
# or row whose bounds are mostly beyond it goes straight to the envelope
# (the reaches were chosen on the benchmark's label sets). Where at most
# 1 / _DENSE_SHARE are infinite (the passes that follow another one), a
# bound is often far above the result (the in-plane distance above the 3-D
# one), so the bounds cannot tell which way is cheaper; the near search,
# far cheaper per lane and offset than the envelope per finite sample, then
# runs up to _DENSE_REACH samples.
# Each sum is rounded to float32 once, as the envelope's value is, so all
# give the minimum of the float32-rounded sums, bit for bit. A lane stops
# once its value is at most the float32-rounded next offset: every farther
# sum rounds to at least that.
# The near searches' loops are written inline, the two sides of an offset
# in one loop: a call per row and offset (a function for one side) costs
# more than the loop's body, and with indices that numba cannot prove
# non-negative (``line[pad + i - o]``) the loop runs scalar.
# ---------------------------------------------------------------------------

# the near search's farthest offset, in samples: on planes and rows with
# many infinite samples, and on those with few (at most 1 / _DENSE_SHARE)
_COLUMN_REACH = 32
_ROW_REACH = 16
_DENSE_REACH = 48
_DENSE_SHARE = 4
# the largest float32: a sample above it is infinite
_LARGEST = float(np.finfo(np.float32).max)
# a line with more than 1 / _FAR_SHARE of its samples open after the near
# search goes to the envelope
_FAR_SHARE = 4


@jit(nogil=True, error_model="numpy")
def _count_above(values, bound):
    """How many values of a 1-D float32 array exceed ``bound`` (a count, not
    a maximum: its reduction runs on SIMD lanes)."""
    count = 0
    for c in range(values.shape[0]):
        count += values[c] > bound
    return count


@jit(nogil=True, error_model="numpy")
def _near_reach(infinite, samples, length, sparse_reach):
    """For a plane or row of ``samples`` values, ``infinite`` of them
    infinite, searched along lines of ``length``: whether few of them are
    infinite (at most 1 / _DENSE_SHARE), and the near search's reach
    (``sparse_reach`` where many are)."""
    dense = infinite * _DENSE_SHARE <= samples
    return dense, min(_DENSE_REACH if dense else sparse_reach, length - 1)


@jit(nogil=True, error_model="numpy")
def _last_offset(spacing2, cap2, reach):
    """The farthest offset ``o <= reach`` of a near search whose ``spacing2 *
    o^2`` is within ``cap2`` (farther sums are capped to ``inf`` anyway)."""
    last = 0
    while last < reach and spacing2 * (last + 1) * (last + 1) <= cap2:
        last += 1
    return last


@jit(nogil=True, error_model="numpy")
def _near_search_columns(src, dst, spacing2, cap2, reach):
    """The near search along axis 0 of 2-D planes, all columns at once, up to
    ``reach`` samples; returns the farthest offset searched for any row."""
    n, m = src.shape
    farthest = 0
    last = _last_offset(spacing2, cap2, min(reach, n - 1))
    for i in range(n):
        o = 0
        if _count_above(dst[i], np.float32(spacing2)) > 0:
            for o in range(1, last + 1):
                offset = spacing2 * o * o
                narrow = np.float32(offset)
                following = o + 1
                settled = np.float32(spacing2 * following * following)
                # past an end, the row on the other side stands in (the
                # minimum of a row and itself is the row)
                before = i - o if i >= o else i + o
                after = i + o if i + o < n else before
                unsettled = False
                if after >= n:
                    unsettled = _count_above(dst[i], settled) > 0
                elif narrow == offset:
                    for c in range(m):
                        value = min(dst[i, c], min(src[before, c], src[after, c]) + narrow)
                        dst[i, c] = unmasked(value)
                        unsettled |= value > settled
                else:
                    for c in range(m):
                        nearer = min(src[before, c], src[after, c])
                        value = min(dst[i, c], np.float32(nearer + offset))
                        dst[i, c] = unmasked(value)
                        unsettled |= value > settled
                if not unsettled:
                    break
        farthest = max(farthest, o)
    return farthest


@jit(nogil=True, error_model="numpy")
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


@jit(nogil=True, error_model="numpy")
def _parabola_columns(src, dst, spacing2, columns, count, work):
    """The envelope along axis 0 of the given ``columns``, its minimum taken
    into ``dst``, read and written in place (gathering the columns into
    contiguous lines first costs a copy per column)."""
    for k in range(count):
        c = columns[k]
        _envelope_line(src[:, c], dst[:, c], spacing2, work)


@jit(nogil=True, error_model="numpy")
def _open_columns(dst, bound, open_count):
    """Count per column the values of a 2-D plane above ``bound``."""
    m = dst.shape[1]
    open_count[:m] = 0
    for i in range(dst.shape[0]):
        row = dst[i]
        for c in range(m):
            open_count[c] += row[c] > bound


@jit(nogil=True, error_model="numpy")
def _mostly_far(dst, bound, open_count):
    """Whether most columns of a 2-D plane have more than 1 / _FAR_SHARE of
    their values above ``bound`` (``open_count`` is work space)."""
    n, m = dst.shape
    _open_columns(dst, bound, open_count)
    far = np.int64(0)
    for c in range(m):
        if open_count[c] * _FAR_SHARE > n:
            far += 1
    return 2 * far > m


@jit(nogil=True, error_model="numpy")
def envelope_columns(src, dst, spacing2, cap2, work):
    """``dst = min(dst, P src)`` along axis 0 of 2-D float32 planes, ``inf``
    where above ``cap2``. If many samples are infinite and most columns have
    many bounds beyond the near search's reach, the envelope takes every
    column; otherwise the near search runs first, then the envelope or the
    outward search finishes the columns it left open. ``src`` and ``dst``
    must not overlap."""
    n, m = src.shape
    columns, open_count = work.columns, work.open_count
    # counters and constants start as int64, not as numba's literal ints: a
    # literal argument compiles a callee once more for each literal value
    infinite = np.int64(0)
    for i in range(n):
        infinite += _count_above(src[i], _LARGEST)
    dense, reach = _near_reach(infinite, n * m, n, np.int64(_COLUMN_REACH))
    if not dense and _mostly_far(dst, spacing2 * reach * reach, open_count):
        for c in range(m):
            columns[c] = c
        _parabola_columns(src, dst, spacing2, columns, m, work)
    else:
        searched = _near_search_columns(src, dst, spacing2, cap2, reach)
        if searched < n - 1:
            _open_columns(dst, spacing2 * (searched + 1) * (searched + 1), open_count)
            far = np.int64(0)
            for c in range(m):
                if open_count[c] * _FAR_SHARE > n:
                    columns[far] = c
                    far += 1
            _parabola_columns(src, dst, spacing2, columns, far, work)
            near = np.int64(0)
            for c in range(m):
                if 0 < open_count[c] and open_count[c] * _FAR_SHARE <= n:
                    columns[near] = c
                    near += 1
            _far_search_columns(src, dst, spacing2, cap2, searched, columns, near)
    _cap(dst, cap2)


@jit(nogil=True, error_model="numpy")
def _cap_line(values, cap2):
    """Set the values of a 1-D float32 array above ``cap2`` to ``inf``."""
    if cap2 < _INF:
        for c in range(values.shape[0]):
            values[c] = unmasked(_INF32 if values[c] > cap2 else values[c])


@jit(nogil=True, error_model="numpy")
def _cap(values, cap2):
    """Set the values of a 2-D float32 plane above ``cap2`` to ``inf``."""
    for i in range(values.shape[0]):
        _cap_line(values[i], cap2)


@jit(nogil=True, error_model="numpy")
def _near_search_row(line, best, spacing2, cap2, pad, reach):
    """The near search along one line: ``best[i] = min(best[i], line[pad + i
    +- o] + spacing2 o^2)``; ``line`` holds the samples from ``pad`` on, with
    ``inf`` in the ``pad`` values before and after them; up to ``reach``
    samples. Returns the farthest offset searched."""
    width = best.shape[0]
    last = _last_offset(spacing2, cap2, min(reach, width - 1))
    o = 0
    if _count_above(best, np.float32(spacing2)) > 0:
        for o in range(1, last + 1):
            offset = spacing2 * o * o
            narrow = np.float32(offset)
            following = o + 1
            settled = np.float32(spacing2 * following * following)
            before = line[pad - o : pad - o + width]
            after = line[pad + o : pad + o + width]
            unsettled = False
            if narrow == offset:
                for i in range(width):
                    value = min(best[i], min(before[i], after[i]) + narrow)
                    best[i] = unmasked(value)
                    unsettled |= value > settled
            else:
                for i in range(width):
                    nearer = min(before[i], after[i])
                    value = min(best[i], np.float32(nearer + offset))
                    best[i] = unmasked(value)
                    unsettled |= value > settled
            if not unsettled:
                break
    return o


@jit(nogil=True, error_model="numpy")
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


@jit(nogil=True, error_model="numpy")
def envelope_rows(src, dst, width, spacing2, cap2, work):
    """``dst = min(dst, P src)`` along axis 1 (the contiguous one) of the
    first ``width`` columns of 2-D planes, ``inf`` where above ``cap2``: the
    near search, then the envelope for a row it left open."""
    line = work.padded_row
    pad = width  # line: inf, the row, inf
    for r in range(src.shape[0]):
        row = src[r]
        out = dst[r]
        for i in range(width):
            line[pad + i] = row[i]
        dense, reach = _near_reach(
            _count_above(row[:width], _LARGEST), width, width, np.int64(_ROW_REACH)
        )
        if not dense and _count_above(out, spacing2 * reach * reach) * _FAR_SHARE > width:
            searched = 0  # mostly far: straight to the envelope
        else:
            searched = _near_search_row(line, out, spacing2, cap2, pad, reach)
        if searched < width - 1:
            settled = spacing2 * (searched + 1) * (searched + 1)
            open_count = 0
            for i in range(width):
                if out[i] > settled:
                    open_count += 1
            if open_count * _FAR_SHARE > width:
                _envelope_line(row[:width], out[:width], spacing2, work)
            elif open_count > 0:
                _far_search_line(line, out, spacing2, cap2, pad, searched, settled)
        _cap_line(out[:width], cap2)


# ---------------------------------------------------------------------------
# Face codes. The passes never see the labels: per voxel, one uint8 holds a
# bit per axis for a face between the voxel and the one before it along that
# axis, a bit for label 0 (the sign) and one for a label other than the one
# the array is surrounded by (faces at the array's ends). So the passes and
# everything they call compile once, whatever the labels' dtype; only
# :func:`face_codes`, a short loop, compiles per kernel dtype of the labels.
# ---------------------------------------------------------------------------

FACE_BEFORE_Z = 1
FACE_BEFORE_Y = 2
FACE_BEFORE_X = 4
LABEL_ZERO = 8
NOT_OUTSIDE = 16


@jit(nogil=True, error_model="numpy")
def face_codes(labels, outside, codes, first, last):
    """The face codes of the z-planes ``first:last`` of 3-D ``labels`` into
    uint8 ``codes`` (``outside``: the label the array is surrounded by)."""
    nz, ny, nx = labels.shape
    for z in range(first, last):
        for y in range(ny):
            row = labels[z, y]
            out = codes[z, y]
            for x in range(nx):
                v = row[x]
                out[x] = np.uint8((v == 0) * LABEL_ZERO + (v != outside) * NOT_OUTSIDE)
            for x in range(1, nx):
                out[x] |= np.uint8((row[x] != row[x - 1]) * FACE_BEFORE_X)
            if y > 0:
                before = labels[z, y - 1]
                for x in range(nx):
                    out[x] |= np.uint8((row[x] != before[x]) * FACE_BEFORE_Y)
            if z > 0:
                before = labels[z - 1, y]
                for x in range(nx):
                    out[x] |= np.uint8((row[x] != before[x]) * FACE_BEFORE_Z)


# ---------------------------------------------------------------------------
# 1-D distances along a plane's columns, on SIMD lanes across the columns.
# Face positions are kept doubled (a face between rows i and i + 1 at 2i + 1),
# so that they are integers, held as float32: exact below 2^24 (hence
# MAX_AXIS_LENGTH), twice the SIMD lanes of float64, and, unlike int64,
# converted on SIMD lanes with AVX2 too; -inf and inf stand for no face on
# that side. Only the square is taken in float64, rounded to float32 once,
# as the envelopes' sums are. The loops over a row are functions of their own:
# written inline in the loop over rows, LLVM's overlap check between the row
# and the face positions failed at run time (the rows run backwards on the
# way back) and the loops ran scalar.
# ---------------------------------------------------------------------------

#: the longest axis the sweeps measure exactly: doubled positions up to
#: ``2 * MAX_AXIS_LENGTH + 1`` are integers that float32 holds exactly
MAX_AXIS_LENGTH = (1 << 23) - 1


@jit(nogil=True, error_model="numpy")
def _mark_faces(faces, codes, bit, position):
    """``faces[c] = position`` where ``codes[c]`` has ``bit`` set."""
    for c in range(faces.shape[0]):
        faces[c] = unmasked(position if (codes[c] & bit) != 0 else faces[c])


@jit(nogil=True, error_model="numpy")
def _distance_after_face(row, faces, position):
    """``row = position - faces``: the doubled distance to the face before."""
    for c in range(row.shape[0]):
        row[c] = position - faces[c]


@jit(nogil=True, error_model="numpy")
def _squared_distance(row, faces, position, spacing2, cap2):
    """``row`` = the squared distance to the nearer of the face before (its
    doubled distance in ``row``) and the face after (``faces``), ``inf`` if
    above ``cap2`` or if there is neither."""
    for c in range(row.shape[0]):
        doubled = min(row[c], faces[c] - position)
        d = 0.5 * np.float64(doubled)
        squared = np.float32(spacing2 * d * d)
        row[c] = squared if squared <= cap2 else _INF


@jit(nogil=True, error_model="numpy")
def sweep_columns(codes, bit, has_outside, spacing2, cap2, out, faces):
    """``S``: the squared distance along axis 0 of every column of a 2-D
    plane ``(n, m)`` of face codes (:data:`FACE_BEFORE_Z` ...) to the nearest
    face on it, times ``spacing2``, into float32 ``out``; ``inf`` above
    ``cap2`` or without a face. ``bit`` is the code's bit of a face between
    a sample and the one before it along axis 0 (a face between rows ``i``
    and ``i + 1`` lies at ``i + 0.5``). With ``has_outside`` the columns
    continue beyond both ends with the label the array is surrounded by, so
    an end sample with :data:`NOT_OUTSIDE` has a face at its end. ``faces`` is
    float32 work space of at least ``m`` values."""
    n, m = codes.shape
    marks = faces[:m]
    # the doubled position of the nearest face at or before each row; the
    # doubled distance to it is kept in `out`
    for c in range(m):
        edge = has_outside and (codes[0, c] & NOT_OUTSIDE) != 0
        marks[c] = -1.0 if edge else -_INF
    for i in range(n):
        if i > 0:
            _mark_faces(marks, codes[i], bit, np.float32(2 * i - 1))
        _distance_after_face(out[i], marks, np.float32(2 * i))
    # the nearest face after each row, and the nearer of the two
    for c in range(m):
        edge = has_outside and (codes[n - 1, c] & NOT_OUTSIDE) != 0
        marks[c] = 2.0 * n - 1.0 if edge else _INF
    for i in range(n - 1, -1, -1):
        if i < n - 1:
            _mark_faces(marks, codes[i + 1], bit, np.float32(2 * i + 1))
        _squared_distance(out[i], marks, np.float32(2 * i), spacing2, cap2)
