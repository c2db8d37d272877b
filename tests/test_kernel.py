"""The distance kernel's building blocks and its fast paths, on inputs large
enough to take each of them, against brute force and the doubled-grid oracle.

An envelope pass has three ways to its result (the near search on SIMD lanes,
an outward search for the few samples it leaves open, and the
Felzenszwalb-Huttenlocher envelope for lines with many), along a plane's
columns or along its rows; the inputs here are built so that each one runs,
and all must give the brute-force minimum, with or without a bound known
beforehand.
"""

import math
import threading
import time

import numpy as np
import pytest
from scipy import ndimage

import gp_hotdistance as hd
from gp_hotdistance._kernels import face as _kernels
from gp_hotdistance._kernels import passes as _passes
from oracles import doubled_grid_face_distance


def brute_force_envelope(src, spacing2):
    """``min_j src[j, c] + spacing2 * (i - j)^2``, each sum rounded to float32."""
    n = src.shape[0]
    offsets = spacing2 * (np.arange(n)[:, None] - np.arange(n)[None, :]) ** 2
    sums = (src[None, :, :].astype(np.float64) + offsets[:, :, None]).astype(np.float32)
    return sums.min(axis=1)


def envelope(src, spacing2, cap2=np.inf, bound=None, along="columns"):
    """The kernel's envelope pass along axis 0 of ``src``, starting from
    ``bound`` (``src`` by default): on the plane's columns, or on the rows of
    its transpose."""
    src = np.ascontiguousarray(src if along == "columns" else src.T)
    dst = (
        src.copy()
        if bound is None
        else np.ascontiguousarray(bound if along == "columns" else bound.T).copy()
    )
    work = _passes.line_work(*src.shape)
    if along == "columns":
        _passes.envelope_columns(src, dst, spacing2, cap2, work)
        return dst
    _passes.envelope_rows(src, dst, src.shape[1], spacing2, cap2, work)
    return dst.T


def plane(kind, rng, shape=(128, 40)):
    """Squared-distance-like samples (in voxels): small everywhere (the near
    search settles them); small but for one run of large ones per line, whose
    middle lies farther from the run's ends than the near search reaches (the
    outward search), with few or many samples infinite (the two reaches);
    small but for lines that are mostly large (the envelope, line by line);
    or mostly large and infinite (the envelope for the whole plane)."""
    n, m = shape
    values = rng.integers(0, 3, shape).astype(np.float64) ** 2
    if kind in ("far run", "sparse far run"):
        sparse = kind == "sparse far run"
        reach = max(_passes._COLUMN_REACH, _passes._ROW_REACH) if sparse else _passes._DENSE_REACH
        run = min(2 * reach + 14, n)
        for c in range(m):
            start = rng.integers(0, max(1, n - run))
            values[start : start + run, c] = rng.integers(3 * reach, 400, run)[: n - start] ** 2
        if sparse:
            # more than 1 / _DENSE_SHARE infinite, away from the runs
            values[(values < 9) & (rng.random(shape) < 0.6)] = np.inf
    elif kind == "far lines":
        far = rng.random(m) < 0.3
        reach = _passes._DENSE_REACH
        values[:, far] = rng.integers(3 * reach, 400, (n, far.sum())) ** 2
    elif kind == "far":
        values = rng.integers(0, 300, shape).astype(np.float64) ** 2
        values[rng.random(shape) < 0.7] = np.inf
    return values.astype(np.float32)


KINDS = ["near", "far run", "sparse far run", "far lines", "far"]


@pytest.mark.parametrize("along", ["columns", "rows"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("spacing2", [1.0, 64.0, 17.64, 1600.0])
def test_envelope_equals_brute_force(kind, spacing2, along):
    rng = np.random.default_rng(len(kind) + int(spacing2))
    src = plane(kind, rng) * np.float32(spacing2)
    expected = brute_force_envelope(src, spacing2)
    np.testing.assert_array_equal(envelope(src, spacing2, along=along), expected)


@pytest.mark.parametrize("along", ["columns", "rows"])
@pytest.mark.parametrize("kind", KINDS)
def test_envelope_from_a_known_bound_takes_the_minimum(kind, along):
    """Started from a bound below the samples (as the kernel starts from the
    distance to other faces), a pass gives min(bound, envelope)."""
    rng = np.random.default_rng(3 + len(kind))
    src = plane(kind, rng) * np.float32(4.0)
    bound = plane("near", rng) * np.float32(rng.integers(1, 40, src.shape) ** 2)
    bound = np.minimum(bound, src)
    expected = np.minimum(bound, brute_force_envelope(src, 4.0))
    np.testing.assert_array_equal(envelope(src, 4.0, bound=bound, along=along), expected)


@pytest.mark.parametrize("along", ["columns", "rows"])
def test_envelope_cap_reports_far_values_as_inf(along):
    rng = np.random.default_rng(7)
    src = plane("far run", rng)
    cap2 = 30.0
    expected = brute_force_envelope(src, 1.0)
    capped = envelope(src, 1.0, cap2, along=along)
    near = expected <= cap2
    np.testing.assert_array_equal(capped[near], expected[near])
    assert np.all(np.isinf(capped[~near]))


@pytest.mark.parametrize("length", [1, 2, 9])
@pytest.mark.parametrize("along", ["columns", "rows"])
def test_envelope_short_lines(length, along):
    rng = np.random.default_rng(length)
    src = plane("far run", rng, (length, 7))
    expected = brute_force_envelope(src, 4.0)
    np.testing.assert_array_equal(envelope(src, 4.0, along=along), expected)


@pytest.mark.parametrize("spacing2", [1.0, 17.64, 1600.0])
def test_envelope_line_equals_brute_force(spacing2):
    """The Felzenszwalb-Huttenlocher line alone, on lines that stress its
    stack and its fill: ties, parabolas lowest on no sample, a single finite
    sample, none, and lines of length 1; its minimum taken into a bound that
    is partly lower, partly infinite."""
    rng = np.random.default_rng(int(spacing2))
    work = _passes.line_work(40, 40)
    for trial in range(400):
        n = int(rng.integers(1, 41))
        line = (rng.integers(0, 12, n).astype(np.float64) ** 2 * spacing2).astype(np.float32)
        line[rng.random(n) < rng.random()] = np.inf
        bound = (rng.integers(0, 30, n).astype(np.float64) ** 2).astype(np.float32)
        bound[rng.random(n) < 0.5] = np.inf
        expected = np.minimum(brute_force_envelope(line[:, None], spacing2)[:, 0], bound)
        got = bound.copy()
        _passes._envelope_line(line, got, spacing2, work)
        np.testing.assert_array_equal(got, expected, err_msg=f"trial {trial}: {line}")


def brute_force_sweep(labels, outside, spacing2, cap2):
    """Per sample of each column: ``spacing2`` times the squared distance to
    the nearest face (half-way between two samples of different label, or
    past an end sample whose label differs from ``outside``, if given)."""
    n, m = labels.shape
    out = np.full((n, m), np.inf, dtype=np.float32)
    for c in range(m):
        column = list(labels[:, c])
        if outside is not None:
            column = [outside] + column + [outside]
        shift = 0.0 if outside is None else 1.0
        faces = [k + 0.5 - shift for k in range(len(column) - 1) if column[k] != column[k + 1]]
        for i in range(n):
            if faces:
                d = min(abs(i - f) for f in faces)
                squared = np.float32(spacing2 * d * d)
                out[i, c] = squared if squared <= cap2 else np.inf
    return out


@pytest.mark.parametrize("outside", [None, 0, 1])
@pytest.mark.parametrize("shape", [(1, 5), (2, 3), (37, 19)])
def test_sweep_columns_equals_brute_force(outside, shape):
    rng = np.random.default_rng(len(shape) + shape[0])
    work = _passes.line_work(*shape)
    for trial in range(40):
        labels = rng.random(shape) < rng.random()
        spacing2, cap2 = rng.choice([1.0, 17.64, 1600.0]), rng.choice([np.inf, 50.0, 3000.0])
        got = np.empty(shape, dtype=np.float32)
        # the face codes of axis 0, written out here
        codes = np.where(labels != bool(outside), _passes.NOT_OUTSIDE, 0).astype(np.uint8)
        codes[1:] |= np.where(labels[1:] != labels[:-1], _passes.FACE_BEFORE_Z, 0).astype(np.uint8)
        _passes.sweep_columns(
            codes, _passes.FACE_BEFORE_Z, outside is not None, spacing2, cap2, got, work.faces
        )
        expected = brute_force_sweep(labels, outside, spacing2, cap2)
        np.testing.assert_array_equal(got, expected, err_msg=f"trial {trial}: {labels}")


@pytest.mark.parametrize("outside", [0, 3])
def test_face_codes_written_out(outside):
    """Each bit of the face codes against numpy's comparisons of shifted
    labels, on uint64 labels split over several ranges of planes."""
    rng = np.random.default_rng(outside)
    labels = rng.integers(0, 4, (7, 9, 11)).astype(np.uint64)
    codes = np.full(labels.shape, 255, np.uint8)
    for first, last in ((0, 3), (3, 4), (4, 7)):
        _passes.face_codes(labels, np.uint64(outside), codes, first, last)
    expected = np.zeros(labels.shape, np.uint8)
    expected[labels == 0] |= _passes.LABEL_ZERO
    expected[labels != outside] |= _passes.NOT_OUTSIDE
    expected[1:][labels[1:] != labels[:-1]] |= _passes.FACE_BEFORE_Z
    expected[:, 1:][labels[:, 1:] != labels[:, :-1]] |= _passes.FACE_BEFORE_Y
    expected[:, :, 1:][labels[:, :, 1:] != labels[:, :, :-1]] |= _passes.FACE_BEFORE_X
    np.testing.assert_array_equal(codes, expected)


def test_tanh_matches_libm_rounded_to_float32():
    x = np.concatenate(
        [
            np.linspace(-12, 12, 400001),
            np.geomspace(1e-12, 12, 100000),
            -np.geomspace(1e-12, 12, 100000),
            [0.0, np.inf, -np.inf],
        ]
    ).astype(np.float32)
    values = x.copy()
    _kernels._tanh_in_place(values, 1.0)
    expected = np.array([math.tanh(v) for v in x.astype(np.float64)], dtype=np.float32)
    assert np.abs(values - expected).max() <= np.finfo(np.float32).eps
    assert np.mean(values == expected) > 0.999
    assert values[-2] == 1.0 and values[-1] == -1.0


def blobs(shape, density, seed):
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
    return noise > np.quantile(noise, 1 - density)


@pytest.mark.parametrize("density", [0.3, 0.02])
@pytest.mark.parametrize("voxel_size", [(8, 8, 8), (40, 4, 4), (3.3, 7.1, 5.0)])
def test_face_distance_equals_doubled_grid_on_medium_volumes(density, voxel_size):
    labels = blobs((40, 36, 44), density, seed=int(density * 100))
    expected = doubled_grid_face_distance(labels, voxel_size)
    np.testing.assert_allclose(hd.face_distance(labels, voxel_size), expected, rtol=1e-6)


@pytest.mark.parametrize("box", [None, "inside", "at the edge"])
def test_unknown_distance_capped_equals_exact_within_the_cap(box):
    shape = (30, 40, 36)
    voxel_size = (8.0, 4.0, 5.0)
    mask = np.ones(shape, np.uint8)
    if box == "inside":
        mask[10:18, 12:20, 5:30] = 0
    elif box == "at the edge":
        mask[:4, 30:, :] = 0
    exact = hd.unknown_distance(mask, voxel_size)
    for cap in (10.0, 25.0, 1000.0):
        capped = hd.unknown_distance(mask, voxel_size, max_distance=cap)
        within = exact <= cap
        np.testing.assert_array_equal(capped[within], exact[within])
        assert np.all(capped[~within] > cap)


# ---------------------------------------------------------------------------
# whole channels side by side (run_channels), and the longest axis
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 2, 3, 5, 8])
@pytest.mark.parametrize("threads", [1, 2, 3, 4])
def test_run_channels_runs_each_channel_once_and_never_shares_a_slot(count, threads):
    lock = threading.Lock()
    calls, busy, clashes = [], set(), []

    def run_channel(c, threads_of_c, slot):
        with lock:
            if slot in busy:
                clashes.append((c, slot))
            busy.add(slot)
            calls.append((c, threads_of_c, slot))
        time.sleep(0.002)  # long enough for the threads to overlap
        with lock:
            busy.discard(slot)

    _kernels.run_channels(count, 1 << 20, run_channel, threads)
    assert sorted(c for c, _, _ in calls) == list(range(count))
    assert not clashes
    assert all(0 <= slot < threads for _, _, slot in calls)
    # whole channels on one thread each while at least `threads` are left,
    # the rest split across all of them
    side_by_side = count - count % threads if threads > 1 else 0
    for c, threads_of_c, _ in calls:
        assert threads_of_c == (1 if c < side_by_side else threads)


def test_run_channels_raises_a_channels_error_and_leaves_no_thread():
    before = threading.active_count()
    done = []

    def run_channel(c, threads_of_c, slot):
        if c == 2:
            raise ValueError("channel 2 failed")
        time.sleep(0.001)
        done.append(c)

    with pytest.raises(ValueError, match="channel 2 failed"):
        _kernels.run_channels(12, 1 << 20, run_channel, 3)
    assert threading.active_count() == before
    assert len(done) < 11  # the others stopped taking channels


@pytest.mark.parametrize("classes", [1, 2, 3, 5])
@pytest.mark.parametrize("threads", [2, 3])
def test_target_on_threads_equals_one_thread_and_the_doubled_grid(classes, threads):
    rng = np.random.default_rng(classes)
    gt = np.stack([blobs((24, 20, 22), 0.1 + 0.1 * c, seed=c) for c in range(classes)])
    voxel_size = (40.0, 4.0, 5.5)
    one = hd.hot_distance_target(gt, voxel_size, 30.0)
    many = hd.hot_distance_target(gt, voxel_size, 30.0, threads=threads)
    assert one.tobytes() == many.tobytes()
    c = int(rng.integers(classes))
    distance = np.arctanh(np.clip(many[classes + c], -1 + 1e-7, 1 - 1e-7)) * 30.0
    expected = doubled_grid_face_distance(gt[c], voxel_size)
    decided = np.abs(many[classes + c]) < 0.99  # arctanh is ill-conditioned near 1
    np.testing.assert_allclose(np.abs(distance[decided]), expected[decided], rtol=1e-4)


def test_a_long_axis_is_measured_exactly():
    # the sweeps hold doubled face positions in float32: exact integers far
    # past this axis (a coarser type would round the far end's distances)
    n = (1 << 17) + 3
    labels = np.zeros(n, dtype=np.uint8)
    labels[:2] = 1
    labels[-3:] = 1
    i = np.arange(n, dtype=np.float64)
    expected = np.minimum(np.abs(i - 1.5), np.abs(i - (n - 3.5))).astype(np.float32)
    np.testing.assert_array_equal(hd.face_distance(labels, (1.0,)), expected)
    only_start = labels.copy()
    only_start[-3:] = 0
    expected = np.abs(i - 1.5).astype(np.float32)
    np.testing.assert_array_equal(hd.face_distance(only_start, (1.0,)), expected)


def test_an_axis_past_the_longest_is_refused():
    longest = _passes.MAX_AXIS_LENGTH
    labels = np.zeros(longest + 1, dtype=np.uint8)
    with pytest.raises(ValueError, match=rf"labels must have spatial axes of at most {longest}"):
        hd.face_distance(labels, (1.0,))
    with pytest.raises(ValueError, match=rf"gt must have spatial axes of at most {longest}"):
        hd.hot_distance_target(labels[None], (1.0,), 1.0)


@pytest.mark.parametrize("runner", ["stages", "channels"])
def test_a_thread_that_cannot_start_fails_the_call_without_a_hang(monkeypatch, runner):
    class FailingSecondStart(threading.Thread):
        started = 0

        def start(self):
            FailingSecondStart.started += 1
            if FailingSecondStart.started == 2:  # the kernels' second helper
                raise RuntimeError("can't start new thread")
            super().start()

    before = threading.active_count()
    watcher_type = threading.Thread
    # large enough for every thread asked for (small arrays run on fewer)
    gt = blobs((3, 20, 40, 40), 0.3, seed=1).astype(np.uint8)
    if runner == "stages":  # one channel, split across the threads at barriers
        call = lambda: hd.signed_face_distance(gt[0], (1.0, 1.0, 1.0), threads=4)  # noqa: E731
    else:
        call = lambda: hd.hot_distance_target(gt, (1.0, 1.0, 1.0), 5.0, threads=3)  # noqa: E731
    outcome = []

    def attempt():
        try:
            call()
        except RuntimeError as error:
            outcome.append(error)

    watcher = watcher_type(target=attempt)
    monkeypatch.setattr(_kernels.threading, "Thread", FailingSecondStart)
    watcher.start()
    watcher.join(timeout=60)
    assert not watcher.is_alive(), "the call hung"
    assert outcome and "can't start new thread" in str(outcome[0])
    monkeypatch.undo()
    deadline = time.monotonic() + 10
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before


# ---------------------------------------------------------------------------
# the distance mask's shortcut before its tanh never skips a voxel the two
# tests clear
# ---------------------------------------------------------------------------


def test_distance_mask_with_an_infinite_ratio_of_distance_to_scale():
    # u / scale_factor overflows: tanh is 1, so a target of 1 near the
    # unknown region (voxels 1 and, at the array's edge, 3) is distrusted
    mask = hd.distance_mask(np.ones((1, 4), np.float32), np.array([0, 1, 1, 1]), (1e10,), 1e-300)
    np.testing.assert_array_equal(mask, [[0, 0, 1, 0]])


def test_distance_mask_first_test_at_a_tie_below_the_cubic_bounds_rounding():
    # x - x^3 / 3 rounds above tanh(x) here: min(0 + epsilon, threshold) ==
    # tanh(u / s) still distrusts the voxels half a voxel from the unknown
    # region (voxel 1, and voxel 3 at the array's edge)
    scale = 3915.457678169149
    epsilon = math.tanh(0.5 / scale)
    assert 0.5 / scale - (0.5 / scale) ** 3 / 3 > epsilon
    mask = hd.distance_mask(
        np.zeros((1, 4), np.float32), np.array([0, 1, 1, 1]), (1,), scale, epsilon=epsilon
    )
    np.testing.assert_array_equal(mask, [[0, 0, 1, 0]])
