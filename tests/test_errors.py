"""Every bad input of ``docs/errors.md`` gets its documented error.

Each row of the table in ``docs/errors.md`` is one case here, by its id: the
call must raise exactly the documented exception type (``ValueError`` or
``TypeError``, or gunpowder's ``PipelineRequestError`` for a request made
through a pipeline; never an ``AssertionError``, ``IndexError`` or a numpy
broadcasting error), and the message must contain the documented excerpt,
which names the argument and what was expected. The table and the cases are
checked against each other, so neither can drift.
"""

import math
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array, prepare_ds
from gunpowder import ArrayKey, ArraySpec, BatchRequest, PipelineRequestError

import gp_hotdistance as hd
from gp_hotdistance import AddHotDistance, BalanceHotDistance, HotDistancePredictor
from gp_hotdistance.precompute import SchedulerUnreachableError, precompute_target
from gp_hotdistance.precompute._worker import run_worker

TABLE = Path(__file__).resolve().parents[1] / "docs" / "errors.md"

P = HotDistancePredictor


def array(data, voxel_size, offset=None, channels=True):
    data = np.asarray(data)
    spatial = len(voxel_size)
    offset = (0,) * spatial if offset is None else offset
    names = (["c"] if channels else []) + ["t", "z", "y", "x"][-spatial:]
    types = (["channel"] if channels else []) + ["space"] * spatial
    return Array(data, offset=offset, voxel_size=voxel_size, axis_names=names, types=types)


def two_classes():
    return P(["mito", "er"], 10.0, mask_distances=True)


GT, TARGET, WEIGHTS = ArrayKey("GT"), ArrayKey("TARGET"), ArrayKey("WEIGHTS")


def balance_node():
    return BalanceHotDistance(two_classes(), GT, TARGET, WEIGHTS)


def zero_counts():
    return np.zeros((4, 2), np.int64)


def gt_data():
    gt = np.zeros((2, 4, 5), np.uint8)
    gt[0, 1:, 2:] = 1
    return gt


def gt_array():
    return array(gt_data(), (2, 2))


def target_array():
    return two_classes().create_target(gt_array())


def target_data():
    return two_classes().process(gt_data(), (2, 2), "tanh")


def with_value(value, dtype):
    """The two-class gt with one voxel of channel 0 set to ``value``."""
    gt = gt_data().astype(dtype)
    gt[0, 0, 0] = value
    return gt


def model(**attributes):
    torch = pytest.importorskip("torch", reason="create_model needs the torch extra")
    return type("Net", (torch.nn.Module,), attributes)()


def not_a_module():
    """A string for create_model; without torch it raises ImportError first."""
    pytest.importorskip("torch", reason="create_model needs the torch extra")
    return "unet"


def weight_with_counts(counts):
    return two_classes().create_weight(gt_array(), target_array(), None, counts)


def counts_of_one_class():
    one = P(["mito"], 10.0, mask_distances=False)
    gt = array(gt_data()[:1], (2, 2))
    return one.create_weight(gt, one.create_target(gt), None)[1]


def spec(roi, voxel_size):
    return ArraySpec(roi=roi, voxel_size=None if voxel_size is None else Coordinate(voxel_size))


# id -> (the call, the argument its message must name)
CASES = {
    # -- HotDistancePredictor(...) ------------------------------------------
    "scale_factor-zero": (lambda: P(["mito"], 0, False), "scale_factor"),
    "scale_factor-negative": (lambda: P(["mito"], -5.0, False), "scale_factor"),
    "scale_factor-nan": (lambda: P(["mito"], math.nan, False), "scale_factor"),
    "scale_factor-inf": (lambda: P(["mito"], math.inf, False), "scale_factor"),
    "scale_factor-string": (lambda: P(["mito"], "10", False), "scale_factor"),
    "scale_factor-bool": (lambda: P(["mito"], True, False), "scale_factor"),
    "scale_factor-none": (lambda: P(["mito"], None, False), "scale_factor"),
    "tolerance-zero": (lambda: P(["mito"], 1.0, False, tolerance=0), "tolerance"),
    "tolerance-one": (lambda: P(["mito"], 1.0, False, tolerance=1), "tolerance"),
    "epsilon-negative": (lambda: P(["mito"], 1.0, False, epsilon=-0.1), "epsilon"),
    "epsilon-nan": (lambda: P(["mito"], 1.0, False, epsilon=math.nan), "epsilon"),
    "threshold-zero": (lambda: P(["mito"], 1.0, False, threshold=0), "threshold"),
    "threshold-one": (lambda: P(["mito"], 1.0, False, threshold=1.0), "threshold"),
    "clipmin-zero": (lambda: P(["mito"], 1.0, False, clipmin=0), "clipmin"),
    "clipmax-above-one": (lambda: P(["mito"], 1.0, False, clipmax=1.5), "clipmax"),
    "clipmin-above-clipmax": (
        lambda: P(["mito"], 1.0, False, clipmin=0.9, clipmax=0.1),
        "clipmin",
    ),
    "kernel_size-zero": (lambda: P(["mito"], 1.0, False, kernel_size=0), "kernel_size"),
    "kernel_size-float": (lambda: P(["mito"], 1.0, False, kernel_size=1.5), "kernel_size"),
    "channels-empty": (lambda: P([], 1.0, False), "channels"),
    "channels-one-string": (lambda: P("mito", 1.0, False), "channels"),
    "channels-duplicate": (lambda: P(["mito", "mito"], 1.0, False), "channels"),
    "channels-not-strings": (lambda: P([1, 2], 1.0, False), "channels"),
    "channels-none": (lambda: P(None, 1.0, False), "channels"),
    "mask_distances-string": (lambda: P(["mito"], 1.0, "yes"), "mask_distances"),
    "mask_distances-int": (lambda: P(["mito"], 1.0, 1), "mask_distances"),
    # -- the gt ----------------------------------------------------------------
    "gt-channels-differ-from-classes": (
        lambda: two_classes().create_target(array(np.zeros((3, 4, 5), np.uint8), (2, 2))),
        "gt",
    ),
    "gt-channel-axis-missing": (
        lambda: two_classes().create_target(
            array(np.zeros((4, 5), np.uint8), (2, 2), channels=False)
        ),
        "gt",
    ),
    "labels-channels-differ-from-classes": (
        lambda: two_classes().process(np.zeros((3, 4, 5), np.uint8), (2, 2), "tanh"),
        "labels",
    ),
    "gt-nan": (
        lambda: two_classes().create_target(array(with_value(np.nan, np.float32), (2, 2))),
        "gt channel 0",
    ),
    "gt-value-2": (
        lambda: two_classes().process(with_value(2, np.int32), (2, 2), "tanh"),
        "labels channel 0",
    ),
    "gt-value-minus-1": (
        lambda: two_classes().process(with_value(-1, np.int8), (2, 2), "tanh"),
        "labels channel 0",
    ),
    "gt-value-half": (
        lambda: two_classes().process(with_value(0.5, np.float32), (2, 2), "tanh"),
        "labels channel 0",
    ),
    "gt-value-256-uint16": (
        lambda: hd.hot_distance_target(with_value(256, np.uint16), (2, 2), 10.0),
        "gt channel 0",
    ),
    "gt-complex": (
        lambda: hd.hot_distance_target(with_value(1j, np.complex64), (2, 2), 10.0),
        "gt channel 0",
    ),
    "gt-not-an-array": (lambda: two_classes().create_target(gt_data()), "gt"),
    "gt-string": (lambda: hd.hot_distance_target("gt.zarr", (1,), 10.0), "gt"),
    "gt-0d": (lambda: hd.hot_distance_target(np.array(1), (), 10.0), "gt"),
    "labels-0d": (lambda: P(["mito"], 10.0, False).process(np.array(1), (1,), "tanh"), "labels"),
    "gt-4-spatial-axes": (
        lambda: hd.hot_distance_target(np.zeros((1, 2, 2, 2, 2)), (1, 1, 1, 1), 10.0),
        "gt",
    ),
    "gt-array-4-spatial-axes": (
        lambda: P(["mito"], 10.0, False).create_target(
            array(np.zeros((1, 2, 2, 2, 2), np.uint8), (1, 1, 1, 1))
        ),
        "gt",
    ),
    "gt-empty": (lambda: hd.hot_distance_target(np.zeros((1, 0, 3)), (1, 1), 10.0), "gt"),
    "labels-empty": (
        lambda: P(["mito"], 10.0, False).process(np.zeros((0, 3)), (1, 1), "tanh"),
        "labels",
    ),
    "labels-axis-too-long": (
        lambda: hd.face_distance(np.zeros((1 << 23) + 1, dtype=np.uint8), (1,)),
        "labels",
    ),
    "gt-axis-too-long": (
        lambda: P(["mito"], 10.0, False).compute_target(
            np.zeros((1, (1 << 23) + 1), dtype=np.uint8), (1,)
        ),
        "gt",
    ),
    # -- the mask --------------------------------------------------------------
    "mask-shape": (
        lambda: two_classes().process_weight(gt_data(), target_data(), np.ones((3, 3)), (2, 2)),
        "mask",
    ),
    "mask-array-roi": (
        lambda: two_classes().create_weight(
            gt_array(), target_array(), array(np.ones((3, 3), np.uint8), (2, 2), channels=False)
        ),
        "mask",
    ),
    "mask-channels": (
        lambda: two_classes().create_weight(
            gt_array(), target_array(), array(np.ones((3, 4, 5), np.uint8), (2, 2))
        ),
        "mask",
    ),
    "mask-voxel-size": (
        lambda: two_classes().create_weight(
            gt_array(), target_array(), array(np.ones((8, 10), np.uint8), (1, 1), channels=False)
        ),
        "mask",
    ),
    "mask-offset": (
        lambda: two_classes().create_weight(
            gt_array(),
            target_array(),
            array(np.ones((4, 5), np.uint8), (2, 2), offset=(2, 0), channels=False),
        ),
        "mask",
    ),
    "mask-not-an-array": (
        lambda: two_classes().create_weight(gt_array(), target_array(), np.ones((4, 5))),
        "mask",
    ),
    "mask-value-2": (
        lambda: two_classes().process_weight(gt_data(), target_data(), np.full((4, 5), 2), (2, 2)),
        "mask",
    ),
    "mask-nan": (
        lambda: two_classes().process_weight(
            gt_data(), target_data(), np.full((4, 5), np.nan), (2, 2)
        ),
        "mask",
    ),
    # -- the target ------------------------------------------------------------
    "target-shape": (
        lambda: two_classes().process_weight(
            gt_data(), np.zeros((3, 4, 5), np.float32), None, (2, 2)
        ),
        "target",
    ),
    "target-voxel-size": (
        lambda: two_classes().create_weight(gt_array(), array(target_data(), (1, 1)), None),
        "target",
    ),
    "target-offset": (
        lambda: two_classes().create_weight(
            gt_array(), array(target_data(), (2, 2), offset=(0, 2)), None
        ),
        "target",
    ),
    "unknown-shape": (
        lambda: two_classes().process_weight(
            gt_data(), target_data(), None, (2, 2), unknown=np.zeros((3, 3))
        ),
        "unknown",
    ),
    "distances-channels": (
        lambda: two_classes().create_distance_mask(np.zeros((3, 4, 5)), None, (2, 2)),
        "distances",
    ),
    # -- moving class counts ---------------------------------------------------
    "counts-of-other-classes": (
        lambda: weight_with_counts(counts_of_one_class()),
        "moving_class_counts",
    ),
    "counts-negative": (lambda: weight_with_counts(np.full((4, 2), -1)), "moving_class_counts"),
    "counts-float": (lambda: weight_with_counts(np.full((4, 2), 0.5)), "moving_class_counts"),
    "counts-string": (lambda: weight_with_counts("counts"), "moving_class_counts"),
    # -- voxel size ------------------------------------------------------------
    "voxel_size-too-long": (
        lambda: two_classes().process(gt_data(), (1, 1, 1), "tanh"),
        "voxel_size",
    ),
    "voxel_size-too-short-core": (
        lambda: hd.hot_distance_target(gt_data(), (1,), 10.0),
        "voxel_size",
    ),
    "voxel_size-4-entries": (
        lambda: two_classes().process(gt_data(), (1, 1, 1, 1), "tanh"),
        "voxel_size",
    ),
    "voxel_size-zero": (lambda: two_classes().process(gt_data(), (0, 1), "tanh"), "voxel_size"),
    "voxel_size-negative": (
        lambda: two_classes().process(gt_data(), (-4, 4), "tanh"),
        "voxel_size",
    ),
    "voxel_size-nan": (
        lambda: hd.hot_distance_target(gt_data(), (math.nan, 1), 10.0),
        "voxel_size",
    ),
    "voxel_size-strings": (
        lambda: two_classes().process(gt_data(), ("4", "4"), "tanh"),
        "voxel_size",
    ),
    "voxel_size-number": (lambda: two_classes().process(gt_data(), 4, "tanh"), "voxel_size"),
    "voxel_size-none": (lambda: two_classes().process(gt_data(), None, "tanh"), "voxel_size"),
    "padding-voxel_size-zero": (lambda: two_classes().padding(Coordinate(0, 4)), "voxel_size"),
    "padding_voxels-context-string": (lambda: hd.padding_voxels("38", (4, 4)), "context"),
    "padding_voxels-context-negative": (lambda: hd.padding_voxels(-1.0, (4, 4)), "context"),
    "unknown_distance-max_distance-string": (
        lambda: hd.unknown_distance(np.ones((4, 4)), (2, 2), max_distance="10"),
        "max_distance",
    ),
    "unknown_distance-max_distance-negative": (
        lambda: hd.unknown_distance(np.ones((4, 4)), (2, 2), max_distance=-1.0),
        "max_distance",
    ),
    # -- create_model ----------------------------------------------------------
    "architecture-not-a-module": (
        lambda: two_classes().create_model(not_a_module()),
        "architecture",
    ),
    "architecture-dims-1": (
        lambda: two_classes().create_model(model(dims=1, num_out_channels=12)),
        "architecture.dims",
    ),
    "architecture-dims-4": (
        lambda: two_classes().create_model(model(dims=4, num_out_channels=12)),
        "architecture.dims",
    ),
    "architecture-no-dims": (
        lambda: two_classes().create_model(model(num_out_channels=12)),
        "architecture.dims",
    ),
    "architecture-no-num_out_channels": (
        lambda: two_classes().create_model(model(dims=3)),
        "architecture.num_out_channels",
    ),
    # -- gt_region_for_roi -----------------------------------------------------
    "target_spec-not-a-spec": (
        lambda: two_classes().gt_region_for_roi(Roi((0, 0), (8, 8))),
        "target_spec",
    ),
    "target_spec-off-grid": (
        lambda: two_classes().gt_region_for_roi(spec(Roi((1, 0), (8, 8)), (2, 2))),
        "target_spec.roi",
    ),
    "target_spec-no-voxel-size": (
        lambda: two_classes().gt_region_for_roi(spec(Roi((0, 0), (8, 8)), None)),
        "target_spec.voxel_size",
    ),
    "target_spec-dims": (
        lambda: two_classes().gt_region_for_roi(spec(Roi((0, 0), (8, 8)), (2, 2, 2))),
        "target_spec.roi",
    ),
    # -- normalize ---------------------------------------------------------------
    "normalize-not-tanh": (
        lambda: two_classes().process(gt_data(), (2, 2), "sigmoid"),
        "normalize",
    ),
    "normalize_args-negative": (
        lambda: two_classes().process(gt_data(), (2, 2), "tanh", -1.0),
        "normalize_args",
    ),
    # -- gunpowder nodes --------------------------------------------------------
    "node-predictor-string": (lambda: AddHotDistance("mito", GT, TARGET), "predictor"),
    "node-predictor-none": (lambda: BalanceHotDistance(None, GT, TARGET, WEIGHTS), "predictor"),
    "state-not-dict": (lambda: balance_node().load_state_dict([1, 2]), "state"),
    "state-channels-string": (
        lambda: balance_node().load_state_dict(
            {"channels": "mito", "moving_class_counts": zero_counts()}
        ),
        "state['channels']",
    ),
    "state-other-classes": (
        lambda: balance_node().load_state_dict(
            {"channels": ["a", "b"], "moving_class_counts": zero_counts()}
        ),
        "state",
    ),
    "state-counts-shape": (
        lambda: balance_node().load_state_dict({"moving_class_counts": np.zeros((6, 2), np.int64)}),
        "state['moving_class_counts']",
    ),
    "state-counts-negative": (
        lambda: balance_node().load_state_dict({"moving_class_counts": -np.ones((4, 2), np.int64)}),
        "state['moving_class_counts']",
    ),
    # a request larger than the data names the context and gp.Pad
    "request-larger-than-data-random-location": (lambda: request_larger_than_data(True), "GT"),
    "request-larger-than-data-bounded": (lambda: request_larger_than_data(False), "GT"),
    # precompute_target: the names are checked before the container is opened
    "precompute-gt-not-str": (
        lambda: precompute_target("x.zarr", 1, "t", P(["mito"], 1.0, False)),
        "gt",
    ),
    "precompute-out-not-str": (
        lambda: precompute_target("x.zarr", "gt", None, P(["mito"], 1.0, False)),
        "out",
    ),
    "precompute-out-outside": (
        lambda: precompute_target("x.zarr", "gt", "../t", P(["mito"], 1.0, False)),
        "out",
    ),
    "precompute-out-contains-gt": (
        lambda: precompute_target("x.zarr", "labels/gt", "labels", P(["mito"], 1.0, False)),
        "out",
    ),
    # -- label images with class groups ----------------------------------------
    "groups-unknown-class": (
        lambda: P(["mito", "er"], 1.0, False, groups={"mito": [1], "er": [2], "golgi": [3]}),
        "groups",
    ),
    "groups-missing-class": (lambda: P(["mito", "er"], 1.0, False, groups={"mito": [1]}), "groups"),
    "groups-empty": (
        lambda: P(["mito", "er"], 1.0, False, groups={"mito": [], "er": [2]}),
        "groups",
    ),
    "groups-non-integer-ids": (
        lambda: P(["mito", "er"], 1.0, False, groups={"mito": [1.5], "er": [2]}),
        "groups",
    ),
    "groups-ids-string": (
        lambda: P(["mito", "er"], 1.0, False, groups={"mito": "3,4", "er": [2]}),
        "groups",
    ),
    "groups-not-a-mapping": (lambda: P(["mito", "er"], 1.0, False, groups=[1, 2]), "groups"),
    "unannotated-without-groups": (
        lambda: P(["mito", "er"], 1.0, False, unannotated=[0]),
        "unannotated",
    ),
    "instances-unknown-class": (
        lambda: P(["mito", "er"], 1.0, False, groups={"mito": [1], "er": [2]}, instances=["golgi"]),
        "instances",
    ),
    "instances-id-0": (
        lambda: P(
            ["mito", "er"], 1.0, False, groups={"mito": [0, 1], "er": [2]}, instances=["mito"]
        ),
        "instances",
    ),
    "groups-labels-with-channel-axis": (
        lambda: grouped().create_target(array(np.zeros((2, 4, 5), np.uint8), (2, 2))),
        "gt",
    ),
    "groups-float-labels": (
        lambda: grouped().process(np.zeros((4, 5), np.float32), (2, 2), "tanh"),
        "labels",
    ),
    "groups-bool-labels": (
        lambda: grouped().compute_target(np.zeros((4, 5), bool), (2, 2)),
        "gt",
    ),
    # dtypes and threads
    "dtype-labels-complex": (lambda: hd.face_distance(np.zeros(4, complex)), "labels"),
    "dtype-labels-str": (lambda: hd.face_distance(np.array(["a", "b"])), "labels"),
    "dtype-gt-object": (
        lambda: hd.hot_distance_target(np.array([[0, 1]], object), (1,), 1.0),
        "gt",
    ),
    "dtype-gt-datetime": (
        lambda: hd.hot_distance_target(np.zeros((1, 3), "datetime64[s]"), (1,), 1.0),
        "gt",
    ),
    "dtype-mask-timedelta": (lambda: hd.unknown_distance(np.zeros(3, "timedelta64[s]")), "mask"),
    "dtype-distances-bytes": (
        lambda: hd.distance_mask(np.zeros((1, 3), "S1"), None, (1,), 1.0),
        "distances",
    ),
    "dtype-target-void": (
        lambda: hd.hot_distance_weights(
            np.array([[0, 1, 1]]), np.zeros((2, 3), "V4"), None, (1,), 1.0
        ),
        "target",
    ),
    "dtype-unknown-complex": (
        lambda: hd.hot_distance_weights(
            np.array([[0, 1, 1]]),
            np.zeros((2, 3), np.float32),
            None,
            (1,),
            1.0,
            mask_distances=True,
            unknown=np.zeros(3, complex),
        ),
        "unknown",
    ),
    "dtype-predictor-gt-complex": (
        lambda: two_classes().create_target(array(gt_data().astype(np.complex64), (2, 2))),
        "gt",
    ),
    "threads-zero": (lambda: hd.face_distance(np.array([0, 1]), threads=0), "threads"),
    "threads-float": (lambda: P(["mito"], 1.0, False, threads=1.5), "threads"),
    "threads-node-string": (
        lambda: AddHotDistance(two_classes(), GT, TARGET, threads="2"),
        "threads",
    ),
    # values the package cannot use
    "gt-channel-axis-last": (
        lambda: two_classes().create_target(
            Array(
                np.moveaxis(gt_data(), 0, -1).copy(),
                offset=(0, 0),
                voxel_size=(2, 2),
                axis_names=["y", "x", "c^"],
                types=["space", "space", "channel"],
            )
        ),
        "gt",
    ),
    "distances-raw": (
        lambda: hd.distance_mask(two_classes().process(gt_data(), (2, 2))[2:], None, (2, 2), 10.0),
        "distances",
    ),
    "distances-nan": (
        lambda: hd.distance_mask(np.full((1, 4, 5), np.nan), None, (2, 2), 10.0),
        "distances",
    ),
    "target-raw-mask_distances": (
        lambda: hd.hot_distance_weights(
            gt_data(),
            two_classes().process(gt_data(), (2, 2)),
            None,
            (2, 2),
            10.0,
            mask_distances=True,
        ),
        "target",
    ),
    "unknown-negative": (
        lambda: hd.hot_distance_weights(
            gt_data(),
            hd.hot_distance_target(gt_data(), (2, 2), 10.0),
            None,
            (2, 2),
            10.0,
            mask_distances=True,
            unknown=np.full((4, 5), -1.0),
        ),
        "unknown",
    ),
    "weights-mask_distances-int": (
        lambda: hd.hot_distance_weights(
            gt_data(),
            hd.hot_distance_target(gt_data(), (2, 2), 10.0),
            None,
            (2, 2),
            10.0,
            mask_distances=1,
        ),
        "mask_distances",
    ),
    "voxel_size-too-large": (lambda: hd.face_distance(np.array([0, 1, 1]), (2e19,)), "voxel_size"),
    "voxel_size-too-small": (lambda: hd.face_distance(np.array([0, 1, 1]), (1e-30,)), "voxel_size"),
    "scale_factor-huge-int": (lambda: P(["mito"], 10**400, False), "scale_factor"),
    "outside-array": (lambda: hd.face_distance(np.array([1, 2]), outside=np.array([1])), "outside"),
    "outside-not-held-float": (
        lambda: hd.face_distance(np.ones(2, np.float32), outside=1 + 2**-30),
        "outside",
    ),
    "threads-precompute-zero": (
        lambda: precompute_target("x.zarr", "gt", "t", P(["mito"], 1.0, False), threads=0),
        "threads",
    ),
    "precompute-num_workers-float": (
        lambda: precompute_target(
            small_container(), "gt", "t", P(["mito"], 1.0, False), num_workers=2.5
        ),
        "num_workers",
    ),
    # precompute on a cluster: the launcher, the scheduler, --roi
    "precompute-worker_command-no-placeholder": (
        lambda: precompute_target(
            "x.zarr", "gt", "t", P(["mito"], 1.0, False), worker_command="srun -n1"
        ),
        "worker_command",
    ),
    "precompute-launcher-not-found": (
        lambda: precompute_target(
            small_container(),
            "gt",
            "launched",
            P(["mito"], 1.0, False),
            worker_command="/nonexistent/srun {command}",
            host="127.0.0.1",
            progress=False,
            overwrite=True,
        ),
        "worker command",
    ),
    "precompute-worker-unreachable": (
        lambda: run_worker("x.zarr", "t", "127.0.0.1:1", "task", 0, connect_timeout=1),
        "scheduler",
    ),
    "precompute-roi-outside": (
        lambda: precompute_target(
            small_container(), "gt", "t", P(["mito"], 1.0, False), roi=((0, 0, 0), (16, 8, 8))
        ),
        "roi",
    ),
    "precompute-roi-empty": (
        lambda: precompute_target(
            small_container(), "gt", "t", P(["mito"], 1.0, False), roi=((0, 0, 0), (0, 8, 8))
        ),
        "roi",
    ),
    "precompute-roi-axes": (
        lambda: precompute_target(
            small_container(), "gt", "t", P(["mito"], 1.0, False), roi=((0, 0), (8, 8))
        ),
        "roi",
    ),
}


def request_larger_than_data(random_location):
    """docs/errors.md, "Requests larger than the data": the data's ROI of
    TARGET from a (2, 100, 100) gt, with RandomLocation or without."""
    import gunpowder as gp

    gt = array(np.zeros((2, 100, 100), np.uint8), (2, 2))
    pipeline = gp.ArraySource(GT, gt, interpolatable=False)
    if random_location:
        pipeline += gp.RandomLocation()
    pipeline += AddHotDistance(two_classes(), GT, TARGET)
    request = BatchRequest()
    request[TARGET] = ArraySpec(roi=Roi((0, 0), (200, 200)))
    with gp.build(pipeline):
        pipeline.request_batch(request)


def grouped():
    return P(["mito", "er"], 10.0, False, groups={"mito": [1, 2], "er": [3]})


_CONTAINER = []


def small_container():
    """A zarr container with a (1, 8, 8, 8) gt, voxel size 1, made once in a
    temporary folder."""
    if not _CONTAINER:
        directory = tempfile.TemporaryDirectory()
        container = os.path.join(directory.name, "small.zarr")
        gt = prepare_ds(
            os.path.join(container, "gt"),
            (1, 8, 8, 8),
            offset=(0, 0, 0),
            voxel_size=(1, 1, 1),
            axis_names=["c^", "z", "y", "x"],
            types=["channel", "space", "space", "space"],
            dtype=np.uint8,
        )
        gt[gt.roi] = np.pad(np.ones((1, 4, 4, 4), np.uint8), ((0, 0),) + ((2, 2),) * 3)
        _CONTAINER.extend([directory, container])
    return _CONTAINER[1]


def read_table():
    """``{id: (exception name, message excerpt)}`` from ``docs/errors.md``."""
    rows = {}
    for line in TABLE.read_text().splitlines():
        # cells are split at the pipes that markdown does not escape
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) != 5 or not re.fullmatch(r"`[\w.-]+`", cells[0]):
            continue
        case_id = cells[0].strip("`")
        assert case_id not in rows, f"row {case_id} twice in {TABLE}"
        exception = cells[3].strip("`")
        # the excerpt is written as `code`; a | inside it is escaped in markdown
        excerpt = cells[4].strip("`").replace("\\|", "|")
        rows[case_id] = (exception, excerpt)
    return rows


ROWS = read_table()


def test_table_and_cases_agree():
    assert sorted(ROWS) == sorted(CASES)


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_bad_input(case_id):
    call, argument = CASES[case_id]
    exception_name, excerpt = ROWS[case_id]
    exception = {
        "ValueError": ValueError,
        "TypeError": TypeError,
        "RuntimeError": RuntimeError,
        "PipelineRequestError": PipelineRequestError,
        "SchedulerUnreachableError": SchedulerUnreachableError,
    }[exception_name]
    with pytest.raises(Exception) as raised:
        call()
    # exactly the documented type: a numpy broadcasting error is a ValueError
    # too, so the message decides, and an IndexError or assert never passes
    assert type(raised.value) is exception, repr(raised.value)
    message = str(raised.value)
    assert excerpt in message, message
    assert argument in excerpt, f"the excerpt of {case_id} does not name {argument}"
    assert "broadcast" not in message
