"""Every public entry over dtypes x byte orders x layouts (issue 26).

Each entry's result on an array of any bool, integer or float dtype, in
either byte order, C- or F-ordered, strided, read-only or memory-mapped,
equals its result on the native C-ordered copy; no new kernel is compiled for
any of them; and the dtypes that are no labels, masks or distances are a
``TypeError`` naming the argument. The native results themselves are checked
against brute force in test_core, test_kernel and test_properties; here a few
dtypes are also checked against the result of the same values as int64 or
float64.
"""

import gunpowder as gp
import numpy as np
import pytest
from funlib.persistence import Array

import gp_hotdistance as hd
from gp_hotdistance._kernels import face, passes
from oracles import brute_force_face_distance

DTYPES = [
    np.bool_,
    np.int8,
    np.uint8,
    np.int16,
    np.uint16,
    np.int32,
    np.uint32,
    np.int64,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.longdouble,
]
FLOATS = [np.float16, np.float32, np.float64, np.longdouble]
LAYOUTS = ["C", "F", "strided", "read-only", "memmap"]


def _variants(dtypes):
    found = []
    for dtype in dtypes:
        orders = ["native"] if np.dtype(dtype).itemsize == 1 else ["native", "swapped"]
        for order in orders:
            for layout in LAYOUTS:
                found.append(
                    pytest.param(
                        dtype, order, layout, id=f"{np.dtype(dtype).name}-{order}-{layout}"
                    )
                )
    return found


VARIANTS = _variants(DTYPES)
FLOAT_VARIANTS = _variants(FLOATS + [np.int16, np.bool_])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("memmaps")


_count = [0]


def variant(native, order, layout, folder):
    """``native`` (a native C-ordered array) in another byte order and
    layout, with the same values."""
    array = native
    if order == "swapped":
        array = array.astype(array.dtype.newbyteorder())
    if layout == "F":
        array = np.asfortranarray(array)
    elif layout == "strided":
        # every other element along the last axis, the first axis reversed
        wide = np.zeros(array.shape[:-1] + (2 * array.shape[-1],), dtype=array.dtype)
        wide[..., ::2] = array[::-1]
        array = wide[..., ::2][::-1]
        assert not array.flags.c_contiguous and not array.flags.f_contiguous
    elif layout == "read-only":
        array = array.copy()
        array.flags.writeable = False
    elif layout == "memmap":
        _count[0] += 1
        path = folder / f"array{_count[0]}.npy"
        np.save(path, array)
        array = np.load(path, mmap_mode="r")
    np.testing.assert_array_equal(array, native)
    assert array.dtype.newbyteorder("=") == native.dtype.newbyteorder("=")
    return array


def same(got, expected):
    got = got if isinstance(got, tuple) else (got,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    for g, e in zip(got, expected, strict=True):
        g, e = np.asarray(g), np.asarray(e)
        assert g.dtype == e.dtype and g.shape == e.shape
        assert g.tobytes() == e.tobytes()


RNG = np.random.default_rng(26)
SHAPE = (6, 7, 9)
VOXEL_SIZE = (3.0, 1.0, 2.0)
SCALE = 4.0
MULTI = RNG.integers(0, 4, SHAPE)
BINARY = (RNG.random((2,) + SHAPE) < 0.4).astype(np.int64)
MASK = (RNG.random(SHAPE) < 0.85).astype(np.int64)
TARGET = hd.hot_distance_target(BINARY, VOXEL_SIZE, SCALE)


def labels_of(dtype):
    """Multi-label values the dtype holds (0 and 1 for bool)."""
    return (MULTI % 2 if np.dtype(dtype) == bool else MULTI).astype(dtype)


# ---------------------------------------------------------------------------
# the numpy layer
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, order, layout", VARIANTS)
def test_face_distance(dtype, order, layout, folder):
    native = labels_of(dtype)
    labels = variant(native, order, layout, folder)
    same(hd.face_distance(labels, VOXEL_SIZE), hd.face_distance(native, VOXEL_SIZE))
    same(
        hd.face_distance(labels, VOXEL_SIZE, outside=1, threads=2),
        hd.face_distance(native, VOXEL_SIZE, outside=1),
    )


@pytest.mark.parametrize("dtype, order, layout", VARIANTS)
def test_binary_entries(dtype, order, layout, folder):
    gt_native, mask_native = BINARY.astype(dtype), MASK.astype(dtype)
    gt, mask = (
        variant(gt_native, order, layout, folder),
        variant(mask_native, order, layout, folder),
    )
    same(
        hd.hot_distance_target(gt, VOXEL_SIZE, SCALE),
        hd.hot_distance_target(gt_native, VOXEL_SIZE, SCALE),
    )
    same(
        hd.signed_face_distance(gt[0], VOXEL_SIZE, SCALE),
        hd.signed_face_distance(gt_native[0], VOXEL_SIZE, SCALE),
    )
    same(hd.unknown_distance(mask, VOXEL_SIZE), hd.unknown_distance(mask_native, VOXEL_SIZE))
    same(
        hd.unknown_distance(mask, VOXEL_SIZE, max_distance=3.0),
        hd.unknown_distance(mask_native, VOXEL_SIZE, max_distance=3.0),
    )
    same(hd.balance_weights(gt, mask), hd.balance_weights(gt_native, mask_native))
    same(
        hd.hot_distance_weights(gt, TARGET, mask, VOXEL_SIZE, SCALE, mask_distances=True),
        hd.hot_distance_weights(
            gt_native, TARGET, mask_native, VOXEL_SIZE, SCALE, mask_distances=True
        ),
    )
    same(
        hd.distance_mask(TARGET[2:], mask, VOXEL_SIZE, SCALE),
        hd.distance_mask(TARGET[2:], mask_native, VOXEL_SIZE, SCALE),
    )


@pytest.mark.parametrize("dtype, order, layout", FLOAT_VARIANTS)
def test_distance_entries(dtype, order, layout, folder):
    """Targets, distances and unknown distances (compared as float32)."""
    if np.dtype(dtype).kind == "f":
        distances_native = TARGET.astype(dtype)
    else:  # integer or bool "distances": odd but numbers
        distances_native = np.sign(TARGET).astype(dtype)
    distances = variant(distances_native, order, layout, folder)
    unknown_native = hd.unknown_distance(MASK, VOXEL_SIZE).astype(dtype)
    unknown = variant(unknown_native, order, layout, folder)
    same(
        hd.distance_mask(distances[2:], MASK, VOXEL_SIZE, SCALE),
        hd.distance_mask(distances_native[2:], MASK, VOXEL_SIZE, SCALE),
    )
    same(
        hd.hot_distance_weights(
            BINARY, distances, MASK, VOXEL_SIZE, SCALE, mask_distances=True, unknown=unknown
        ),
        hd.hot_distance_weights(
            BINARY,
            distances_native,
            MASK,
            VOXEL_SIZE,
            SCALE,
            mask_distances=True,
            unknown=unknown_native,
        ),
    )


@pytest.mark.parametrize("dtype", [d for d in DTYPES if d is not np.bool_])
def test_labels_are_compared_by_value(dtype):
    """The result of a dtype equals that of the same values as int64 (and
    brute force on one of them)."""
    expected = hd.face_distance(MULTI, VOXEL_SIZE)
    same(hd.face_distance(MULTI.astype(dtype), VOXEL_SIZE), expected)
    if dtype is np.int16:
        np.testing.assert_allclose(
            expected, brute_force_face_distance(MULTI, VOXEL_SIZE), rtol=1e-6
        )


def test_signed_integer_and_float_labels_keep_their_distinctions():
    """Negative labels, -0.0 (equal to 0.0), and float labels that differ in
    their last bit or lie past 2**53 stay apart or together as they are."""
    signed = np.array([-1, -1, 2, -2, 0, 0, 127, -128], dtype=np.int8)
    same(hd.face_distance(signed), hd.face_distance(signed.astype(np.int64)))
    zeros = np.array([0.0, -0.0, 0.0, 1.0, 1.0], dtype=np.float32)
    same(hd.face_distance(zeros), hd.face_distance(np.array([0, 0, 0, 1, 1])))
    close = np.array([1.0, 1.0, np.nextafter(1.0, 2.0), 2.0**60, 2.0**60 + 2**8])
    same(hd.face_distance(close), hd.face_distance(np.array([0, 0, 1, 2, 3])))
    wide = np.array([1, 1, 2**63 + 1, 2**63, 2**63], dtype=np.uint64)
    same(hd.face_distance(wide), hd.face_distance(np.array([0, 0, 1, 2, 2])))
    if np.finfo(np.longdouble).nmant > 52:
        tiny = np.longdouble(1) + np.finfo(np.longdouble).eps
        long_labels = np.array([1, 1, tiny, tiny, -0.0, 0.0], dtype=np.longdouble)
        same(hd.face_distance(long_labels), hd.face_distance(np.array([0, 0, 1, 1, 2, 2])))
        same(
            hd.face_distance(long_labels, outside=tiny),
            hd.face_distance(np.array([0, 0, 1, 1, 2, 2]), outside=1),
        )


def _compiled():
    return sum(
        len(getattr(function, "signatures", ()))
        for module in (face, passes)
        for function in vars(module).values()
    )


def test_no_dtype_or_layout_compiles_a_new_kernel(folder):
    """After one call of each entry on native uint8 and uint64 arrays, every
    other dtype, byte order and layout compiles nothing."""
    hd.face_distance(MULTI.astype(np.uint64), VOXEL_SIZE)
    hd.face_distance(MULTI.astype(np.uint8), VOXEL_SIZE)
    gt = BINARY.astype(np.uint8)
    mask = MASK.astype(np.uint8)
    target = hd.hot_distance_target(gt, VOXEL_SIZE, SCALE)
    hd.hot_distance_weights(gt, target, mask, VOXEL_SIZE, SCALE, mask_distances=True)
    hd.hot_distance_weights(
        gt,
        target,
        None,
        VOXEL_SIZE,
        SCALE,
        mask_distances=True,
        unknown=hd.unknown_distance(mask, VOXEL_SIZE, max_distance=3.0),
    )
    hd.distance_mask(target[2:], mask, VOXEL_SIZE, SCALE)
    hd.balance_weights(gt, mask)
    before = _compiled()
    for param in VARIANTS:
        dtype, order, layout = param.values
        labels = variant(labels_of(dtype), order, layout, folder)
        hd.face_distance(labels, VOXEL_SIZE, threads=2)
        binary = variant(BINARY.astype(dtype), order, layout, folder)
        known = variant(MASK.astype(dtype), order, layout, folder)
        floats = variant(target.astype(np.result_type(dtype, np.float16)), order, layout, folder)
        hd.hot_distance_target(binary, VOXEL_SIZE, SCALE, threads=3)
        hd.hot_distance_weights(binary, floats, known, VOXEL_SIZE, SCALE, mask_distances=True)
        hd.distance_mask(floats[2:], known, VOXEL_SIZE, SCALE)
        hd.unknown_distance(known, VOXEL_SIZE, max_distance=3.0)
    assert _compiled() == before


# ---------------------------------------------------------------------------
# the predictor and the nodes
# ---------------------------------------------------------------------------

PREDICTOR_VARIANTS = [
    pytest.param(dtype, order, layout, id=f"{np.dtype(dtype).name}-{order}-{layout}")
    for dtype in (np.float32, np.uint16, np.bool_)
    for order in (["native"] if np.dtype(dtype).itemsize == 1 else ["swapped"])
    for layout in ("F", "read-only", "strided")
]


def funlib_array(data):
    channels = data.ndim - 3
    return Array(
        data,
        offset=(0, 0, 0),
        voxel_size=(3, 1, 2),
        axis_names=["c^"] * channels + ["z", "y", "x"],
        types=["channel"] * channels + ["space"] * 3,
    )


@pytest.mark.parametrize("dtype, order, layout", PREDICTOR_VARIANTS)
def test_predictor(dtype, order, layout, folder):
    predictor = hd.HotDistancePredictor(["a", "b"], SCALE, mask_distances=True, threads=2)
    gt_native, mask_native = BINARY.astype(dtype), MASK.astype(dtype)
    gt, mask = (
        variant(gt_native, order, layout, folder),
        variant(mask_native, order, layout, folder),
    )
    target = predictor.create_target(funlib_array(gt))
    expected = predictor.create_target(funlib_array(gt_native))
    same(np.asarray(target.data), np.asarray(expected.data))
    distances = variant(TARGET.astype(">f4"), "native", layout, folder)
    weights, counts = predictor.create_weight(
        funlib_array(gt), funlib_array(distances), funlib_array(mask)
    )
    expected_weights, expected_counts = predictor.create_weight(
        funlib_array(gt_native), funlib_array(TARGET), funlib_array(mask_native)
    )
    same((np.asarray(weights.data), counts), (np.asarray(expected_weights.data), expected_counts))
    same(
        predictor.create_distance_mask(distances[2:], mask, VOXEL_SIZE),
        predictor.create_distance_mask(TARGET[2:], mask_native, VOXEL_SIZE),
    )


def _node_batch(gt, mask, target):
    """The weights (and target) of a pipeline fed these arrays; the target
    from a source where ``target`` is given, else from AddHotDistance."""
    GT, MASK, TARGET_KEY, WEIGHTS = (gp.ArrayKey(n) for n in ("GT", "MASK", "TARGET", "WEIGHTS"))
    predictor = hd.HotDistancePredictor(["a", "b"], 2.0, mask_distances=True)
    sources = [
        gp.ArraySource(GT, funlib_array(gt), interpolatable=False),
        gp.ArraySource(MASK, funlib_array(mask), interpolatable=False),
    ]
    if target is not None:
        sources.append(gp.ArraySource(TARGET_KEY, funlib_array(target), interpolatable=True))
    pipeline = tuple(sources) + gp.MergeProvider()
    if target is None:
        pipeline += hd.AddHotDistance(predictor, GT, TARGET_KEY, MASK, threads=2)
    pipeline += hd.BalanceHotDistance(predictor, GT, TARGET_KEY, WEIGHTS, MASK, threads=2)
    request = gp.BatchRequest()
    roi = gp.Roi((12, 9, 10), (6, 3, 6))
    request[WEIGHTS] = gp.ArraySpec(roi=roi)
    request[TARGET_KEY] = gp.ArraySpec(roi=roi)
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    return batch[TARGET_KEY].data, batch[WEIGHTS].data


@pytest.mark.parametrize("dtype, order, layout", PREDICTOR_VARIANTS)
def test_nodes(dtype, order, layout, folder):
    """AddHotDistance fed any gt, and a BalanceHotDistance(mask_distances)
    pipeline fed a '>f4' target (it failed inside numba)."""
    gt_native = np.zeros((2, 16, 24, 16), dtype=dtype)
    gt_native[0, 5:11, 8:13, 3:12] = 1
    gt_native[1, :, 10:] = 1
    mask_native = np.ones(gt_native.shape[1:], dtype=dtype)
    mask_native[8:, :3] = 0
    gt = variant(gt_native, order, layout, folder)
    mask = variant(mask_native, order, layout, folder)
    expected = _node_batch(gt_native, mask_native, None)
    same(_node_batch(gt, mask, None), expected)
    whole = hd.hot_distance_target(gt_native, (3, 1, 2), 2.0)
    swapped = variant(whole.astype(">f4"), "native", layout, folder)
    same(_node_batch(gt, mask, swapped)[1], _node_batch(gt_native, mask_native, whole)[1])


# ---------------------------------------------------------------------------
# refused dtypes
# ---------------------------------------------------------------------------

REFUSED = {
    "complex": lambda a: a.astype(np.complex64),
    "object": lambda a: a.astype(object),
    "str": lambda a: np.zeros(a.shape, dtype="U1"),
    "bytes": lambda a: np.zeros(a.shape, dtype="S1"),
    "datetime": lambda a: np.zeros(a.shape, dtype="datetime64[s]"),
    "timedelta": lambda a: np.zeros(a.shape, dtype="timedelta64[s]"),
    "void": lambda a: np.zeros(a.shape, dtype="V4"),
    "structured": lambda a: np.zeros(a.shape, dtype=[("a", "<i4")]),
}

ENTRIES = {
    "face_distance labels": (lambda x: hd.face_distance(x(MULTI)), "labels"),
    "signed_face_distance labels": (lambda x: hd.signed_face_distance(x(MASK)), "labels"),
    "hot_distance_target gt": (
        lambda x: hd.hot_distance_target(x(BINARY), VOXEL_SIZE, SCALE),
        "gt channel 0",
    ),
    "unknown_distance mask": (lambda x: hd.unknown_distance(x(MASK)), "mask"),
    "distance_mask distances": (
        lambda x: hd.distance_mask(x(TARGET[2:]), MASK, VOXEL_SIZE, SCALE),
        "distances",
    ),
    "distance_mask mask": (
        lambda x: hd.distance_mask(TARGET[2:], x(MASK), VOXEL_SIZE, SCALE),
        "mask",
    ),
    "hot_distance_weights gt": (
        lambda x: hd.hot_distance_weights(x(BINARY), TARGET, MASK, VOXEL_SIZE, SCALE),
        "gt channel 0",
    ),
    "hot_distance_weights target": (
        lambda x: hd.hot_distance_weights(BINARY, x(TARGET), MASK, VOXEL_SIZE, SCALE),
        "target",
    ),
    "hot_distance_weights mask": (
        lambda x: hd.hot_distance_weights(BINARY, TARGET, x(MASK), VOXEL_SIZE, SCALE),
        "mask",
    ),
    "hot_distance_weights unknown": (
        lambda x: hd.hot_distance_weights(
            BINARY, TARGET, MASK, VOXEL_SIZE, SCALE, mask_distances=True, unknown=x(TARGET[0])
        ),
        "unknown",
    ),
    "balance_weights labels": (lambda x: hd.balance_weights(x(BINARY)), "labels channel 0"),
    "process labels": (
        lambda x: hd.HotDistancePredictor(["a", "b"], SCALE, False).process(
            x(BINARY), VOXEL_SIZE, "tanh"
        ),
        "labels channel 0",
    ),
    "create_distance_mask distances": (
        lambda x: hd.HotDistancePredictor(["a", "b"], SCALE, True).create_distance_mask(
            x(TARGET[2:]), MASK, VOXEL_SIZE
        ),
        "distances",
    ),
}


@pytest.mark.parametrize("refused", REFUSED)
@pytest.mark.parametrize("entry", ENTRIES)
def test_refused_dtypes_name_the_argument(entry, refused):
    call, name = ENTRIES[entry]
    with pytest.raises(TypeError, match=f"^{name} must be a bool, integer or float array"):
        call(REFUSED[refused])


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2", True, None])
def test_threads_must_be_a_positive_int(threads):
    error = ValueError if isinstance(threads, int) and not isinstance(threads, bool) else TypeError
    with pytest.raises(error, match="^threads must be a positive int"):
        hd.face_distance(MULTI, threads=threads)
    with pytest.raises(error, match="^threads must be a positive int"):
        hd.HotDistancePredictor(["a"], SCALE, False, threads=threads)
