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
the nearest label change on that line (:func:`~gp_hotdistance._kernels.passes.sweep_columns`), and ``P_a`` is
the lower envelope of parabolas along axis ``a``: ``(P_a f)(i) = min_j f(j) +
w_a^2 (i_a - j_a)^2`` (Felzenszwalb and Huttenlocher, "Distance Transforms of
Sampled Functions", Theory of Computing 8, 2012; :func:`~gp_hotdistance._kernels.passes._envelope_line`).
The ``P_a`` commute and are min-plus linear, which lets the three terms of a
3-D array share passes::

    D^2 = min(P_z[min(P_y S_x, P_x S_y)], P_y P_x S_z)

Lower-rank arrays are handled as 3-D arrays with leading axes of length 1.

Passes and their cost
---------------------
The kernel runs in three named steps, each over a range of planes or slabs
(:func:`_in_plane_pass`, :func:`_across_planes_pass`, :func:`_final_pass`;
:func:`face_distance_3d` runs them in turn, each split across threads).
Every pass starts from an
upper bound on its result and only lowers it: ``P_x S_y`` starts from ``P_y
S_x``, and the last ``P_x`` from the distance to the x- and y-faces, so that
a voxel near any face settles after a few samples; ``P_y S_z`` is only needed
below the largest distance of its row already known, and is dropped above it.
A pass searches outward from every sample of a row at once, on SIMD lanes,
until the offset alone reaches the row's bound (:func:`~gp_hotdistance._kernels.passes._near_search_columns`,
:func:`~gp_hotdistance._kernels.passes._near_search_row`), and leaves to the envelope, whose cost does not
grow with the distance, the lines where most samples are farther than the
search's reach: 32 samples along columns and 16 along rows where many samples
are infinite (lines without a face), 48 where few are (:func:`~gp_hotdistance._kernels.passes.envelope_columns`,
:func:`~gp_hotdistance._kernels.passes.envelope_rows`; the comment above them says
why). Columns
are the SIMD axis, so the only transposes are those of the x-sweep (its
plane of face codes, and its result back). The passes read a uint8 code per
voxel, computed first (:func:`~gp_hotdistance._kernels.passes.face_codes`),
instead of the labels, so they compile once whatever the labels' dtype.
Each pass allocates its work space once
per range of planes (a few planes), not per plane: fresh memory costs page
faults on every call.

The tanh
--------
The target's ``tanh(d / scale_factor)`` is taken in the last pass
(:func:`_tanh_in_place`), on every thread, while the row is in cache, and it
is the float32-rounded value of the exact tanh. numpy's float32 ``np.tanh``
is faster but not correctly rounded: many of its values are one float32
step off, and which ones depends on the value's position in the array (SIMD
body or scalar tail; ``np.tanh`` of 9.0 gave 0.99999994 at the start of an
array and 1.0 inside it). The kernel's tanh keeps the target deterministic
whatever the array's shape.

Threads
-------
The caller chooses the thread count per call (``threads``). Each pass is a
compiled function over a range of planes that releases the GIL; the planes
are split into one range per thread, run on plain Python threads started
for the call (the calling thread takes the first range), all of which finish
a pass before any starts the next; arrays too small to be worth a thread's
start run on fewer. A caller with many channels runs whole channels side by
side instead (:func:`run_channels`): no thread then waits at a barrier for
the slowest range.
Nothing is set process-wide: no numba threading layer (numba's
``parallel=True`` would make one, shared with every other numba function of
the process, and GNU OpenMP's aborts forked children), no thread count and no
thread outlives the call, so a fork at any moment finds nothing to inherit,
and calls from several threads run side by side. Every plane's result is the
same whichever thread computes it, so results do not depend on the count.
"""

import math
import threading

import numpy as np

from ._jit import jit
from .passes import (
    FACE_BEFORE_X,
    FACE_BEFORE_Y,
    FACE_BEFORE_Z,
    LABEL_ZERO,
    MAX_AXIS_LENGTH,
    envelope_columns,
    envelope_rows,
    face_codes,
    line_work,
    sweep_columns,
    unmasked,
)

_INF = np.inf
_INF32 = np.float32(np.inf)


# float32 tanh is exactly +-1 past 9.02
TANH_SATURATION = 9.5

# fewer voxels than this per thread are not worth a thread's start
_VOXELS_PER_THREAD = 1 << 12


@jit(nogil=True, error_model="numpy")
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
        # fmt: off
        e = 1.0 + y * (1.0 + y * (1.0 / 2 + y * (1.0 / 6 + y * (1.0 / 24 + y * (
            1.0 / 120 + y * (1.0 / 720 + y * (1.0 / 5040 + y * (1.0 / 40320 + y * (
                1.0 / 362880 + y * (1.0 / 3628800 + y * (1.0 / 39916800 + y * (
                    1.0 / 479001600 + y * (1.0 / 6227020800 + y / 87178291200)
                ))))))))))))
        # fmt: on
        for _ in range(5):
            e = e * e
        a2 = a * a
        small = a * (1.0 - a2 * (1.0 / 3 - a2 * (2.0 / 15 - a2 * (17.0 / 315))))
        t = small if a < 0.02 else 1.0 - 2.0 / (e + 1.0)
        values[i] = math.copysign(t, x)


# what _final_pass does with the label at the end
UNSIGNED = 0  # plain distance
SIGNED = 1  # negative where the label is 0
ZERO_OUTSIDE = 2  # 0 where the label is 0


# ---------------------------------------------------------------------------
# The 3-D kernel: three passes, each over a range [first, last) of planes (z)
# or slabs (y), with its work space allocated once per range, so that a
# plane's steps run on data in cache. face_distance_3d splits each pass into
# one range per thread. Column passes run along axis 0 of a plane, with SIMD
# lanes across its contiguous axis; row passes along the contiguous axis.
# The passes read face codes (uint8, see passes.face_codes), not labels, so
# they compile once whatever the labels' dtype. The face bits go to the sweep as
# uint8 values, not as numba's literal ints, which would compile it per bit.
# ---------------------------------------------------------------------------


@jit(nogil=True, error_model="numpy")
def _in_plane_pass(codes, spacing2, has_outside, cap2, out, first, last):
    """Step 1, per z-plane of ``first:last``: ``out = min(P_y S_x, P_x S_y)``."""
    nz, ny, nx = codes.shape
    wz, wy, wx = spacing2
    work = line_work(ny, nx)
    along_x = np.empty((ny, nx), dtype=np.float32)
    spread = np.empty((ny, nx), dtype=np.float32)
    transposed = np.empty((nx, ny), dtype=np.float32)
    transposed_codes = np.empty((nx, ny), dtype=np.uint8)
    for z in range(first, last):
        plane = codes[z]
        # S_x: the column sweep on the transposed plane runs on SIMD lanes
        for y in range(ny):
            for x in range(nx):
                transposed_codes[x, y] = plane[y, x]
        sweep_columns(
            transposed_codes,
            np.uint8(FACE_BEFORE_X),
            has_outside[2],
            wx,
            cap2,
            transposed,
            work.faces,
        )
        for y in range(ny):
            for x in range(nx):
                along_x[y, x] = transposed[x, y]
        for y in range(ny):
            for x in range(nx):
                spread[y, x] = along_x[y, x]
        envelope_columns(along_x, spread, wy, cap2, work)
        # along_x is free: S_y goes there, and bounds P_x S_y from above
        sweep_columns(plane, np.uint8(FACE_BEFORE_Y), has_outside[1], wy, cap2, along_x, work.faces)
        for y in range(ny):
            for x in range(nx):
                spread[y, x] = min(spread[y, x], along_x[y, x])
        envelope_rows(along_x, spread, nx, wx, cap2, work)
        for y in range(ny):
            for x in range(nx):
                out[z, y, x] = spread[y, x]


@jit(nogil=True, error_model="numpy")
def _across_planes_pass(codes, spacing2, has_outside, cap2, out, scratch, first, last):
    """Step 2, per y-slab of ``first:last``: ``out = P_z out`` and ``scratch
    = S_z``."""
    nz, ny, nx = codes.shape
    wz, wy, wx = spacing2
    work = line_work(nz, nx)
    slab = np.empty((nz, nx), dtype=np.float32)
    spread = np.empty((nz, nx), dtype=np.float32)
    slab_codes = np.empty((nz, nx), dtype=np.uint8)
    for y in range(first, last):
        for z in range(nz):
            for x in range(nx):
                slab[z, x] = out[z, y, x]
                spread[z, x] = out[z, y, x]
        envelope_columns(slab, spread, wz, cap2, work)
        for z in range(nz):
            for x in range(nx):
                out[z, y, x] = spread[z, x]
                slab_codes[z, x] = codes[z, y, x]
        sweep_columns(
            slab_codes, np.uint8(FACE_BEFORE_Z), has_outside[0], wz, cap2, slab, work.faces
        )
        for z in range(nz):
            for x in range(nx):
                scratch[z, y, x] = slab[z, x]


@jit(nogil=True, error_model="numpy")
def _final_pass(
    codes, spacing2, cap2, sign_mode, inverse_scale, one_hot, out, scratch, first, last
):
    """Step 3, per z-plane of ``first:last``: ``out = min(out, P_x P_y
    S_z)``, then the square root, the sign (``sign_mode``) and, if
    ``inverse_scale > 0``, the tanh; with ``one_hot``, ``scratch`` then
    holds 1.0 where the label is not 0, else 0.0 (the plane is not read
    again: this spares the caller a pass over the labels).

    ``P_y S_z`` is only needed where it is below the largest ``out`` of its
    row (elsewhere it cannot lower any voxel of the row): that bound shortens
    the near search, and the samples at or above it are dropped (``inf``).
    """
    nz, ny, nx = codes.shape
    wz, wy, wx = spacing2
    work = line_work(ny, nx)
    along_z = np.empty((ny, nx), dtype=np.float32)
    spread = np.empty((ny, nx), dtype=np.float32)
    result = np.empty((ny, nx), dtype=np.float32)
    # per row, the largest out: P_y S_z is only needed below it
    needed = np.empty(ny, dtype=np.float32)
    for z in range(first, last):
        for y in range(ny):
            largest = np.float32(0.0)
            for x in range(nx):
                largest = max(largest, out[z, y, x])
            needed[y] = largest
            for x in range(nx):
                along_z[y, x] = scratch[z, y, x]
                spread[y, x] = min(scratch[z, y, x], largest)
        envelope_columns(along_z, spread, wy, cap2, work)
        for y in range(ny):
            for x in range(nx):
                kept = _INF32 if spread[y, x] >= needed[y] else spread[y, x]
                spread[y, x] = unmasked(kept)
                result[y, x] = min(out[z, y, x], kept)
        envelope_rows(spread, result, nx, wx, cap2, work)
        for y in range(ny):
            row = out[z, y]
            for x in range(nx):
                d = math.sqrt(result[y, x])
                if sign_mode != UNSIGNED and (codes[z, y, x] & LABEL_ZERO) != 0:
                    d = -d if sign_mode == SIGNED else 0.0
                row[x] = d
            if inverse_scale > 0:
                _tanh_in_place(row, inverse_scale)
        if one_hot:
            for y in range(ny):
                for x in range(nx):
                    label_zero = (codes[z, y, x] & LABEL_ZERO) != 0
                    scratch[z, y, x] = np.float32(0.0) if label_zero else np.float32(1.0)


def _on_threads(work, threads, stop):
    """Run ``work(t)`` for each ``t`` in ``range(threads)``: ``t = 0`` on the
    calling thread, the others on threads started for the call and joined
    before this returns. The first error raised in any is raised here; once
    one is, ``stop()`` tells the others to finish early."""
    errors = []

    def run(t):
        try:
            work(t)
        except BaseException as error:  # handed to the calling thread
            errors.append(error)
            stop()

    helpers = []
    try:
        for t in range(1, threads):
            helper = threading.Thread(
                target=run, args=(t,), name="gp_hotdistance-kernel", daemon=True
            )
            helper.start()
            helpers.append(helper)
        run(0)
    except BaseException:  # a thread that did not start, an interrupt
        stop()
        raise
    finally:
        try:
            for helper in helpers:
                helper.join()
        except BaseException:  # interrupted while waiting: stop the rest early
            stop()
            raise
    if errors:
        raise errors[0]


def _run_stages(stages, threads):
    """Run each ``(kernel, arguments, count)`` of ``stages`` in turn as
    ``kernel(*arguments, first, last)`` over ``0:count``, split into one
    range per thread; all threads finish a stage before any starts the next
    (a barrier), so that one thread start serves every stage."""
    if threads == 1:
        for kernel, arguments, count in stages:
            kernel(*arguments, 0, count)
        return
    barrier = threading.Barrier(threads)

    def work(t):
        try:
            for kernel, arguments, count in stages:
                first, last = t * count // threads, (t + 1) * count // threads
                if first < last:
                    kernel(*arguments, first, last)
                barrier.wait()
        except threading.BrokenBarrierError:
            pass  # another thread failed: its error is reported

    _on_threads(work, threads, barrier.abort)


def run_channels(count, voxels, run_channel, threads):
    """Run ``run_channel(c, threads_of_c, slot)`` for each channel ``c`` in
    ``range(count)`` (of ``voxels`` voxels each) on up to ``threads``
    threads.

    While at least ``threads`` channels are left, whole channels run side by
    side, one thread each (a thread takes the next channel as soon as it is
    done with its own: no barrier waits for the slowest range of a plane
    split); the last ``count % threads`` run one after the other, each split
    across the threads. ``slot``, below ``threads``, names the work space a
    channel may use: two channels with the same slot never run at once.
    """
    threads = max(1, min(threads, count * voxels // _VOXELS_PER_THREAD))
    side_by_side = count - count % threads if threads > 1 else 0
    if side_by_side:
        claimed = iter(range(side_by_side))
        lock = threading.Lock()
        stopped = threading.Event()

        def work(slot):
            while not stopped.is_set():
                with lock:
                    c = next(claimed, None)
                if c is None:
                    return
                run_channel(c, 1, slot)

        _on_threads(work, threads, stopped.set)
    for c in range(side_by_side, count):
        run_channel(c, threads, 0)


def face_distance_3d(
    labels,
    voxel_size,
    out,
    scratch,
    outside=None,
    sign_mode=UNSIGNED,
    inverse_scale=0.0,
    max_distance=np.inf,
    threads=1,
    codes=None,
    one_hot=False,
):
    """Run the kernel on ``labels`` with 1 to 3 spatial axes.

    ``labels`` is uint8 or uint64, native-endian, C-contiguous and writeable
    (the public layer's :func:`gp_hotdistance._checks.kernel_labels` makes it
    so); ``out`` and ``scratch`` are float32, C-contiguous and shaped like
    ``labels``. With ``outside``, the array is surrounded by that label along
    its own axes (not along the added axes of length 1). Distances above
    ``max_distance`` may come out as ``inf``. Each pass runs on up to
    ``threads`` threads. ``codes``, if given, is uint8 work space shaped
    like ``labels`` (a caller with many channels allocates it once). With
    ``one_hot``, ``scratch`` ends up holding 1.0 where the label is not 0
    and 0.0 where it is (the one-hot channel of binary labels).

    ``spacing2`` holds the squared voxel size per axis, ``has_outside`` per
    axis whether the array continues with the label ``outside`` beyond its
    ends. Squared distances above ``cap2`` are reported as ``inf`` (which
    saves work where they do not matter). First the face codes
    (:func:`~gp_hotdistance._kernels.passes.face_codes`), then the three
    steps:

    1. :func:`_in_plane_pass`: ``out = min(P_y S_x, P_x S_y)``;
    2. :func:`_across_planes_pass`: ``out = P_z out``, ``scratch = S_z``;
    3. :func:`_final_pass`: ``out = min(out, P_x P_y S_z)``, then the root,
       the sign (``sign_mode``) and, if ``inverse_scale > 0``, the tanh
       ``tanh(d * inverse_scale)``.
    """
    if max(labels.shape) > MAX_AXIS_LENGTH:
        raise ValueError(
            f"arrays with an axis longer than {MAX_AXIS_LENGTH} voxels are not supported, "
            f"got shape {labels.shape}"
        )
    spatial_dims = labels.ndim
    labels3 = to_3d(labels)
    out3, scratch3 = to_3d(out), to_3d(scratch)
    spacing2 = (1.0,) * (3 - spatial_dims) + tuple(float(v * v) for v in voxel_size)
    has_outside = tuple(outside is not None and axis >= 3 - spatial_dims for axis in range(3))
    outside = labels3.dtype.type(0 if outside is None else outside)
    if inverse_scale > 0:
        # the kernel maps every distance past this one to exactly +-1
        max_distance = min(max_distance, TANH_SATURATION / inverse_scale)
    cap2 = float(max_distance) ** 2
    inverse_scale = float(inverse_scale)
    nz, ny = labels3.shape[:2]
    threads = max(1, min(threads, labels3.size // _VOXELS_PER_THREAD))
    # the planes of a range run through the face codes and step 1 in turn:
    # step 1 of a plane needs its own codes only
    threads = max(1, min(threads, nz))
    codes = np.empty(labels3.shape, dtype=np.uint8) if codes is None else to_3d(codes)
    final = (codes, spacing2, cap2, int(sign_mode), inverse_scale, bool(one_hot), out3, scratch3)
    _run_stages(
        (
            (face_codes, (labels3, outside, codes), nz),
            (_in_plane_pass, (codes, spacing2, has_outside, cap2, out3), nz),
            (_across_planes_pass, (codes, spacing2, has_outside, cap2, out3, scratch3), ny),
            (_final_pass, final, nz),
        ),
        threads,
    )


def to_3d(array):
    """View a 1-3-D array as 3-D, adding leading axes of length 1."""
    return array.reshape((1,) * (3 - array.ndim) + array.shape)


@jit(nogil=True)
def unknown_box(known):
    """First and last index per axis of the voxels where 3-D ``known``
    (uint8) is 0; first > last if there are none."""
    low = np.array(known.shape)
    high = np.full(3, -1)
    nz, ny, nx = known.shape
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if known[z, y, x] == 0:
                    low[0] = min(low[0], z)
                    low[1] = min(low[1], y)
                    low[2] = min(low[2], x)
                    high[0] = max(high[0], z)
                    high[1] = max(high[1], y)
                    high[2] = max(high[2], x)
    return low, high


# the slack, in tanh units, of the cheap lower bound's shortcut: far above
# the bound's own rounding and half a float32 step below 1, so that neither
# lets a voxel escape the exact tests
_BOUND_SLACK = 1e-6


@jit(nogil=True)
def distrust(distances, unknown, inverse_scale, epsilon, threshold, reach, known):
    """Clear ``known`` (uint8) where a target distance (float32) cannot be
    trusted (flat arrays); ``unknown`` is the distance to the unknown region,
    ``inf`` past ``reach``.

    Two tests, on voxels within ``reach`` of the unknown region (past it every
    voxel is trusted). Not clearly nearer: ``min(|t| + epsilon, threshold) >=
    tanh(unknown / scale)``, the unknown region is not clearly farther, in
    tanh units, than the measured boundary. Decided by the unknown region:
    ``|t| >= tanh(unknown / scale)`` compared in float32, the target's
    precision (the first test misses this where ``|t|`` is past
    ``threshold``).
    """
    for i in range(known.shape[0]):
        if known[i] and unknown[i] <= reach:
            target = abs(distances[i])
            measured = min(target + epsilon, threshold)
            x = unknown[i] * inverse_scale
            # tanh(x) <= x: the first test holds without tanh
            if measured >= x:
                known[i] = 0
                continue
            # x - x^3 / 3 <= tanh(x): clearly below it, neither test holds
            # (written so that a NaN bound, from an infinite x, falls through)
            bound = x - x * x * x / 3 - _BOUND_SLACK
            if not (measured < bound and target < bound):
                reached = math.tanh(x)
                if measured >= reached or target >= np.float32(reached):
                    known[i] = 0


@jit(nogil=True)
def count_classes(foreground, known):
    """Known background and foreground voxels (flat uint8 arrays of 0 and
    1)."""
    seen = 0
    seen_foreground = 0
    for i in range(foreground.shape[0]):
        if known[i] != 0:
            seen += 1
            if foreground[i] != 0:
                seen_foreground += 1
    return seen - seen_foreground, seen_foreground


@jit(nogil=True)
def fill_weights(foreground, known, background_weight, foreground_weight, out):
    """``out`` (float32) = the weight of each known voxel's class, 0 where
    unknown (flat uint8 arrays of 0 and 1)."""
    for i in range(out.shape[0]):
        # selects, not branches: the loop vectorizes
        weight = foreground_weight if foreground[i] != 0 else background_weight
        out[i] = weight if known[i] != 0 else np.float32(0.0)
