"""Precompute the hot-distance target of a whole zarr volume, block by block,
with daisy.

The volume is tiled into write blocks of ``block_size`` voxels. Each block
reads the gt over its write ROI grown by :meth:`HotDistancePredictor.padding
<gp_hotdistance.predictor.HotDistancePredictor.padding>` (cut to the gt's ROI:
beyond the data there is nothing, as for the whole volume in memory), computes
the target of that region with the predictor, and writes the part inside its
write ROI. The padding covers every face that can change a target value by
more than the predictor's ``tolerance``, so the result equals the in-memory
target of the whole volume within ``tolerance`` whatever the block size, and
a worker's memory depends on the block size only.

daisy hands out the blocks to worker processes. After writing a block, a
worker sets the block's cell in a small done-marker dataset beside the output
(``<out>_done``, one chunk per block); a later run with the same settings
skips the marked blocks, so an interrupted run resumes where it stopped.

The functions here take and raise Python values and exceptions; the command
line (``gp-hotdistance precompute``) lives in :mod:`gp_hotdistance.__main__`.
"""

import json
import logging
import math
import numbers
import os
from dataclasses import dataclass
from multiprocessing import Event
from multiprocessing.pool import ThreadPool

import daisy
import dask
import numpy as np
import zarr
from daisy.server_observer import ServerObserver
from daisy.tcp import IOLooper
from funlib.geometry import Coordinate, Roi
from funlib.persistence import open_ds, prepare_ds
from tqdm.auto import tqdm

from .predictor import HotDistancePredictor

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "PrecomputeResult",
    "distance_mask_dataset_name",
    "done_dataset_name",
    "precompute_target",
]

#: Edge of a write block in voxels, along every axis, when none is given.
DEFAULT_BLOCK_SIZE = 64

# version of the layout of the done markers and settings; a run only resumes
# a run of the same layout
_LAYOUT = 1


def distance_mask_dataset_name(out):
    """Name of the dataset that holds the distance mask of target ``out``.

    Examples
    --------
    >>> distance_mask_dataset_name("volumes/target")
    'volumes/target_distance_mask'
    """
    return f"{out}_distance_mask"


def done_dataset_name(out):
    """Name of the done-marker dataset of target ``out``: one ``uint8`` per
    block, 1 once the block is written.

    Examples
    --------
    >>> done_dataset_name("volumes/target")
    'volumes/target_done'
    """
    return f"{out}_done"


@dataclass(frozen=True)
class PrecomputeResult:
    """What :func:`precompute_target` did.

    Attributes:
        target: Path of the target dataset (``<container>/<out>``).
        distance_mask: Path of the distance mask dataset, or ``None`` without
            ``mask_distances``.
        total_blocks: Blocks that tile the volume.
        skipped_blocks: Blocks already done by an earlier run, not processed
            again.
        processed_blocks: Blocks processed by this run.
    """

    target: str
    distance_mask: object
    total_blocks: int
    skipped_blocks: int
    processed_blocks: int


def precompute_target(
    container,
    gt,
    out,
    predictor,
    mask=None,
    block_size=None,
    num_workers=1,
    overwrite=False,
    progress=True,
    log_dir=None,
):
    """Write the hot-distance target of a zarr gt dataset, block by block.

    The target (``float32``, ``2 * classes`` channels: one-hot, then tanh
    distances) gets the gt's offset and voxel size, chunks of one block and
    the attributes ``channel_names`` and ``gp_hotdistance`` (the settings).
    With ``predictor.mask_distances``, the distance mask (``uint8``, one
    channel per class, see :meth:`HotDistancePredictor.create_distance_mask
    <gp_hotdistance.predictor.HotDistancePredictor.create_distance_mask>`) goes
    to :func:`distance_mask_dataset_name` ``(out)``.

    If the outputs exist from an interrupted run with the same settings, the
    blocks it finished are skipped; the done markers stay after a complete
    run, so running again does nothing.

    Parameters
    ----------
    container : str or os.PathLike
        Path of the zarr container (a directory).
    gt : str
        Dataset of the binary gt in the container: ``(classes, z, y, x)``, or
        ``(z, y, x)`` for one class, with funlib.persistence metadata.
    out : str
        Dataset to write the target to.
    predictor : HotDistancePredictor
        Gives the classes, scale factor, ``mask_distances`` and tolerance.
    mask : str, optional
        Dataset of a binary mask (1 known, 0 unknown) covering the gt's ROI,
        one channel per class or none; used by the distance mask only, so it
        needs ``predictor.mask_distances``.
    block_size : int or sequence of int, optional
        Write block size in voxels, one per spatial axis (z-y-x) or one for
        all; :data:`DEFAULT_BLOCK_SIZE` by default.
    num_workers : int, optional
        Worker processes. Each runs its numba kernels on ``cpu_count //
        num_workers`` threads (at least one).
    overwrite : bool, optional
        Replace existing outputs instead of refusing (or resuming).
    progress : bool, optional
        Show a progress bar (tqdm, on stderr).
    log_dir : str or os.PathLike, optional
        Directory for daisy's per-worker log files; by default the workers
        log to this process's stderr.

    Returns
    -------
    PrecomputeResult

    Raises
    ------
    FileNotFoundError
        The container or a dataset does not exist.
    FileExistsError
        An output exists and is not an interrupted run with the same settings,
        and ``overwrite`` is false.
    ValueError
        The gt's channels do not match the predictor's classes, the mask does
        not fit the gt, or ``block_size`` or ``num_workers`` is invalid.
    RuntimeError
        Some blocks failed; a new run retries them.

    Examples
    --------
    >>> import tempfile
    >>> from funlib.persistence import prepare_ds
    >>> from gp_hotdistance import HotDistancePredictor
    >>> directory = tempfile.TemporaryDirectory()
    >>> container = os.path.join(directory.name, "data.zarr")
    >>> gt = prepare_ds(os.path.join(container, "gt"), (1, 8, 8, 8),
    ...                 offset=(0, 0, 0), voxel_size=(4, 4, 4),
    ...                 axis_names=["c", "z", "y", "x"],
    ...                 types=["channel", "space", "space", "space"], dtype=np.uint8)
    >>> gt[gt.roi] = np.pad(np.ones((1, 4, 4, 4), np.uint8), ((0, 0),) + ((2, 2),) * 3)
    >>> predictor = HotDistancePredictor(["cell"], scale_factor=4.0, mask_distances=False)
    >>> result = precompute_target(container, "gt", "target", predictor,
    ...                            block_size=4, progress=False)
    >>> result.total_blocks, result.processed_blocks
    (8, 8)
    >>> target = open_ds(result.target)
    >>> target.shape, target.voxel_size
    ((2, 8, 8, 8), (4, 4, 4))
    >>> directory.cleanup()
    """
    if not isinstance(predictor, HotDistancePredictor):
        raise TypeError(
            f"predictor must be a HotDistancePredictor, got {type(predictor).__name__}"
        )
    container = os.fspath(container)
    for name, value in (("gt", gt), ("out", out)):
        if not isinstance(value, str) or not value.strip("/"):
            raise ValueError(f"{name} must be a dataset name, got {value!r}")
    if mask is not None and not isinstance(mask, str):
        raise ValueError(f"mask must be a dataset name or None, got {mask!r}")
    if mask is not None and not predictor.mask_distances:
        raise ValueError(
            "mask is only used for the distance mask: give a predictor with "
            "mask_distances=True, or no mask"
        )
    num_workers = _check_count(num_workers, "num_workers")
    gt, out = gt.strip("/"), out.strip("/")
    mask = None if mask is None else mask.strip("/")

    outputs = [out, done_dataset_name(out)]
    if predictor.mask_distances:
        outputs.append(distance_mask_dataset_name(out))
    clashes = sorted({gt, mask} & set(outputs))
    if clashes:
        raise ValueError(
            f"out {out!r} would write over the input {clashes[0]!r}: the outputs are "
            f"{', '.join(map(repr, outputs))}"
        )

    store = _open_container(container)
    gt_array = _open_dataset(store, container, gt, "gt")
    spatial_dims = gt_array.voxel_size.dims
    _check_channels(gt_array, predictor, "gt", gt)
    if mask is not None:
        mask_array = _open_dataset(store, container, mask, "mask")
        _check_mask(mask_array, gt_array, predictor, mask)
    block_voxels = _as_block_size(block_size, spatial_dims)

    settings = _settings(gt, mask, predictor, gt_array, block_voxels)
    resume = _prepare_outputs(store, container, out, outputs, settings, overwrite)
    if not resume:
        _create_outputs(container, out, predictor, gt_array, block_voxels, settings)

    voxel_size = gt_array.voxel_size
    block_world = Coordinate(block_voxels) * voxel_size
    padding = predictor.padding(voxel_size)
    done_path = _path(container, done_dataset_name(out))
    done_before = zarr.open_array(done_path, mode="r")[...] != 0

    writer = _BlockWriter(
        predictor=predictor,
        gt_path=_path(container, gt),
        mask_path=None if mask is None else _path(container, mask),
        target_path=_path(container, out),
        distance_mask_path=(
            _path(container, distance_mask_dataset_name(out))
            if predictor.mask_distances else None
        ),
        done_path=done_path,
        origin=gt_array.roi.offset,
        block_world=block_world,
        threads=max(1, (os.cpu_count() or 1) // num_workers),
    )
    task = daisy.Task(
        task_id="gp_hotdistance_precompute_" + out.replace("/", "_"),
        total_roi=gt_array.roi.grow(padding, padding),
        read_roi=Roi((0,) * spatial_dims, block_world + padding * 2),
        write_roi=Roi(padding, block_world),
        process_function=writer,
        check_function=_DoneCheck(done_before, gt_array.roi.offset, block_world),
        read_write_conflict=False,
        num_workers=num_workers,
        fit="shrink",
    )
    skipped = int(done_before.sum())
    logger.info(
        "%s %s: %d blocks of %s voxels, %d already done, %d workers",
        "resuming" if resume else "writing", out, done_before.size,
        tuple(block_voxels), skipped, num_workers,
    )
    failures = _run_task(task, progress, log_dir)

    done_after = zarr.open_array(done_path, mode="r")[...] != 0
    missing = int(done_after.size - done_after.sum())
    if missing:
        cause = f"; first failure: {failures[0]!r}" if failures else ""
        raise RuntimeError(
            f"{missing} of {done_after.size} blocks of {out!r} were not written"
            f"{cause}; run again with the same settings to retry them"
        )
    return PrecomputeResult(
        target=_path(container, out),
        distance_mask=writer.distance_mask_path,
        total_blocks=int(done_after.size),
        skipped_blocks=skipped,
        processed_blocks=int((done_after & ~done_before).sum()),
    )


# ---------------------------------------------------------------------------
# what runs in the workers
# ---------------------------------------------------------------------------


class _BlockWriter:
    """daisy's process function: computes and writes one block.

    Pickled (by dill) into each worker process; the datasets are opened there,
    once per process.
    """

    def __init__(
        self, predictor, gt_path, mask_path, target_path, distance_mask_path,
        done_path, origin, block_world, threads,
    ):
        self.predictor = predictor
        self.gt_path = gt_path
        self.mask_path = mask_path
        self.target_path = target_path
        self.distance_mask_path = distance_mask_path
        self.done_path = done_path
        self.origin = Coordinate(origin)
        self.block_world = Coordinate(block_world)
        self.threads = threads
        self._arrays = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_arrays"] = None  # open datasets stay in their process
        return state

    def _open(self):
        if self._arrays is None:
            import numba

            # the workers share the cores instead of each taking all of them
            numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))
            self._arrays = {
                "gt": open_ds(self.gt_path),
                "mask": None if self.mask_path is None else open_ds(self.mask_path),
                "target": open_ds(self.target_path, mode="r+"),
                "distance_mask": (
                    None if self.distance_mask_path is None
                    else open_ds(self.distance_mask_path, mode="r+")
                ),
                "done": zarr.open_array(self.done_path, mode="r+"),
            }
        return self._arrays

    def __call__(self, block):
        # a forked worker hangs on dask's threaded scheduler if its parent
        # used it; these reads are small
        with dask.config.set(scheduler="synchronous"):
            self.write_block(block.read_roi, block.write_roi)

    def write_block(self, read_roi, write_roi):
        """Compute the target over ``read_roi`` (cut to the data) and write
        its ``write_roi`` part, then mark the block done."""
        arrays = self._open()
        gt = arrays["gt"]
        voxel_size = gt.voxel_size
        # beyond the data there is nothing, as for the whole volume in memory
        context_roi = read_roi.intersect(gt.roi)
        gt_data = np.asarray(gt[context_roi])
        # what create_target computes, without wrapping it in an Array
        target_data = self.predictor.process(
            gt_data, voxel_size, self.predictor.norm, self.predictor.scale_factor
        )
        inside = _crop_slices(context_roi, write_roi, voxel_size)
        arrays["target"][write_roi] = target_data[(slice(None),) + inside]
        if arrays["distance_mask"] is not None:
            mask_data = None
            if arrays["mask"] is not None:
                mask_data = np.asarray(arrays["mask"][context_roi])
            distance_mask = self.predictor.create_distance_mask(
                target_data[self.predictor.classes:], mask_data, voxel_size
            )
            arrays["distance_mask"][write_roi] = distance_mask[(slice(None),) + inside]
        # the marker goes last: a block killed before it is redone
        index = _block_index(write_roi.offset, self.origin, self.block_world)
        arrays["done"][index] = 1
        logger.debug("wrote block %s (read %s)", write_roi, context_roi)


class _DoneCheck:
    """daisy's check function: whether a block was done before this run."""

    def __init__(self, done, origin, block_world):
        self.done = done
        self.origin = Coordinate(origin)
        self.block_world = Coordinate(block_world)

    def __call__(self, block):
        return bool(self.done[_block_index(block.write_roi.offset, self.origin, self.block_world)])


def _block_index(offset, origin, block_world):
    return tuple(int((o - g) // b) for o, g, b in zip(offset, origin, block_world))


def _crop_slices(outer, inner, voxel_size):
    """Slices of ``inner`` in an array that covers ``outer``."""
    begin = (inner.begin - outer.begin) / voxel_size
    shape = inner.shape / voxel_size
    return tuple(slice(b, b + s) for b, s in zip(begin, shape))


# ---------------------------------------------------------------------------
# running daisy
# ---------------------------------------------------------------------------


class _Monitor(ServerObserver):
    """A progress bar over the blocks, and the failures for the final error
    message."""

    def __init__(self, server, description, enabled):
        super().__init__(server)
        self.description = description
        self.enabled = enabled
        self.bar = None
        self.failures = []

    def _update(self, task_state):
        if self.bar is None:
            self.bar = tqdm(
                total=task_state.total_block_count, desc=self.description,
                unit="blocks", disable=not self.enabled,
            )
        self.bar.update(task_state.completed_count - self.bar.n)
        self.bar.set_postfix(
            running=task_state.processing_count,
            skipped=task_state.skipped_count,
            failed=task_state.failed_count,
            refresh=False,
        )

    def on_acquire_block(self, task_id, task_state):
        self._update(task_state)

    def on_release_block(self, task_id, task_state):
        self._update(task_state)

    def on_task_done(self, task_id, task_state):
        self._update(task_state)

    def on_block_failure(self, block, exception, context):
        self.failures.append(exception)

    def on_server_exit(self):
        if self.bar is not None:
            self.bar.close()


def _serve(task, stop_event, progress):
    server = daisy.Server(stop_event=stop_event)
    monitor = _Monitor(server, task.task_id.removeprefix("gp_hotdistance_"), progress)
    server.run_blockwise([task])
    return monitor.failures


def _run_task(task, progress, log_dir):
    """Run ``task`` on daisy's server and workers; the failures' exceptions.

    As ``daisy.run_blockwise``, with our own progress bar instead of daisy's
    command-line monitor, which prints a summary to stdout.
    """
    previous_log_dir = daisy.logging.get_log_basedir()
    daisy.logging.set_log_basedir(None if log_dir is None else os.fspath(log_dir))
    stop_event = Event()
    IOLooper.clear()
    try:
        with ThreadPool(processes=1) as pool:
            result = pool.apply_async(_serve, (task, stop_event, progress))
            try:
                return result.get()
            except KeyboardInterrupt:
                stop_event.set()  # stops the workers
                result.get()
                raise
    finally:
        daisy.logging.set_log_basedir(previous_log_dir)


# ---------------------------------------------------------------------------
# datasets and checks
# ---------------------------------------------------------------------------


def _path(container, dataset):
    return os.path.join(container, dataset)


def _open_container(container):
    """A store of the container; a container made by ``prepare_ds`` may lack
    a root ``.zgroup``, so any directory will do."""
    if not os.path.isdir(container):
        raise FileNotFoundError(f"zarr container {container!r} does not exist")
    return zarr.DirectoryStore(container)


def _is_array(store, dataset):
    return zarr.storage.contains_array(store, dataset)


def _exists(store, dataset):
    return _is_array(store, dataset) or zarr.storage.contains_group(store, dataset)


def _open_dataset(store, container, dataset, role):
    if not _is_array(store, dataset):
        raise FileNotFoundError(
            f"{role} dataset {dataset!r} does not exist in {container!r}"
        )
    array = open_ds(_path(container, dataset))
    if not 1 <= array.voxel_size.dims <= 3:
        raise ValueError(
            f"{role} dataset {dataset!r} must have 1 to 3 spatial axes, "
            f"got voxel size {array.voxel_size}"
        )
    return array


def _channel_count(array):
    """Channels of a dataset: ``None`` without a channel axis."""
    extra = len(array.shape) - array.voxel_size.dims
    if extra == 0:
        return None
    if extra != 1:
        raise ValueError(
            f"expected at most one channel axis before the spatial axes, got shape "
            f"{array.shape} with voxel size {array.voxel_size}"
        )
    return array.shape[0]


def _check_channels(gt_array, predictor, role, dataset):
    try:
        channels = _channel_count(gt_array)
    except ValueError as error:
        raise ValueError(f"{role} dataset {dataset!r}: {error}") from None
    if channels is None and predictor.classes == 1:
        return
    if channels != predictor.classes:
        found = "no channel axis" if channels is None else f"{channels} channels"
        raise ValueError(
            f"{role} dataset {dataset!r} has {found} (shape {gt_array.shape}), but "
            f"{predictor.classes} classes were given ({','.join(predictor.channels)}); "
            f"it needs one channel per class"
        )


def _check_mask(mask_array, gt_array, predictor, dataset):
    if mask_array.voxel_size != gt_array.voxel_size:
        raise ValueError(
            f"mask dataset {dataset!r} has voxel size {mask_array.voxel_size}, "
            f"the gt {gt_array.voxel_size}; they must be equal"
        )
    if not mask_array.roi.contains(gt_array.roi):
        raise ValueError(
            f"mask dataset {dataset!r} (ROI {mask_array.roi}) must cover the gt's "
            f"ROI {gt_array.roi}"
        )
    try:
        channels = _channel_count(mask_array)
    except ValueError as error:
        raise ValueError(f"mask dataset {dataset!r}: {error}") from None
    if channels is not None and channels != predictor.classes:
        raise ValueError(
            f"mask dataset {dataset!r} has {channels} channels (shape "
            f"{mask_array.shape}); it needs one per class ({predictor.classes}) or none"
        )


def _check_count(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _as_block_size(block_size, spatial_dims):
    if block_size is None:
        return (DEFAULT_BLOCK_SIZE,) * spatial_dims
    if isinstance(block_size, numbers.Integral) and not isinstance(block_size, bool):
        block_size = (block_size,) * spatial_dims
    try:
        block_size = tuple(block_size)
    except TypeError:
        raise ValueError(
            f"block_size must be an int or {spatial_dims} ints (voxels, z-y-x), "
            f"got {block_size!r}"
        ) from None
    if len(block_size) != spatial_dims or not all(
        isinstance(b, numbers.Integral) and not isinstance(b, bool) and b > 0
        for b in block_size
    ):
        raise ValueError(
            f"block_size must be {spatial_dims} positive ints (voxels, z-y-x), "
            f"got {block_size!r}"
        )
    return tuple(int(b) for b in block_size)


def _settings(gt, mask, predictor, gt_array, block_voxels):
    """Everything a resumed run must share with the run it resumes, as JSON."""
    settings = {
        "layout": _LAYOUT,
        "gt": gt,
        "mask": mask,
        "classes": list(predictor.channels),
        "scale_factor": predictor.scale_factor,
        "mask_distances": predictor.mask_distances,
        "tolerance": predictor.tolerance,
        "epsilon": predictor.epsilon,
        "threshold": predictor.threshold,
        "block_size": list(block_voxels),
        "offset": list(gt_array.roi.offset),
        "shape": list(gt_array.roi.shape / gt_array.voxel_size),
        "voxel_size": list(gt_array.voxel_size),
    }
    return json.loads(json.dumps(settings))


def _prepare_outputs(store, container, out, outputs, settings, overwrite):
    """Delete, keep (to resume) or refuse the existing outputs; whether to
    resume."""
    existing = [name for name in outputs if _exists(store, name)]
    if not existing:
        return False
    if overwrite:
        for name in existing:
            logger.info("deleting %s in %s", name, container)
            zarr.storage.rmdir(store, name)
        return False
    done_name = done_dataset_name(out)
    if len(existing) == len(outputs) and all(_is_array(store, name) for name in existing):
        done = zarr.open_array(store, path=done_name, mode="r")
        previous = done.attrs.asdict().get("gp_hotdistance")
        if previous == settings:
            return True
        if isinstance(previous, dict):
            differences = ", ".join(
                f"{key}: {previous.get(key)!r} then, {settings[key]!r} now"
                for key in settings
                if previous.get(key) != settings[key]
            )
            raise FileExistsError(
                f"output {out!r} exists in {container!r} from a run with other "
                f"settings ({differences}); pass overwrite=True (--overwrite) to "
                f"replace it"
            )
    raise FileExistsError(
        f"output {existing[0]!r} already exists in {container!r} and is not an "
        f"interrupted precompute run to resume; pass overwrite=True (--overwrite) "
        f"to replace it"
    )


def _create_outputs(container, out, predictor, gt_array, block_voxels, settings):
    voxel_size = gt_array.voxel_size
    spatial = voxel_size.dims
    shape = tuple(gt_array.roi.shape / voxel_size)
    spatial_names = list(gt_array.axis_names[-spatial:])
    # the parent groups, so that the new datasets are listed in the container
    parent = os.path.dirname(out)
    if parent:
        zarr.open_group(zarr.DirectoryStore(container), path=parent, mode="a")
    prepare_ds(
        _path(container, out),
        shape=(predictor.embedding_dims,) + shape,
        offset=gt_array.roi.offset,
        voxel_size=voxel_size,
        axis_names=["c"] + spatial_names,
        units=list(gt_array.units),
        types=["channel"] + ["space"] * spatial,
        chunk_shape=(predictor.embedding_dims,) + tuple(block_voxels),
        dtype=np.float32,
        mode="w",
        custom_metadata={
            "channel_names": list(predictor.output_array_type.channel_names),
            "gp_hotdistance": settings,
        },
    )
    if predictor.mask_distances:
        prepare_ds(
            _path(container, distance_mask_dataset_name(out)),
            shape=(predictor.classes,) + shape,
            offset=gt_array.roi.offset,
            voxel_size=voxel_size,
            axis_names=["c"] + spatial_names,
            units=list(gt_array.units),
            types=["channel"] + ["space"] * spatial,
            chunk_shape=(predictor.classes,) + tuple(block_voxels),
            dtype=np.uint8,
            mode="w",
            custom_metadata={
                "channel_names": [f"{name}_distance_mask" for name in predictor.channels],
                "gp_hotdistance": settings,
            },
        )
    # one chunk per block, so that workers never write the same chunk; made
    # last, so that a run killed while creating the outputs does not resume
    grid = tuple(math.ceil(s / b) for s, b in zip(shape, block_voxels))
    done = zarr.open_array(
        _path(container, done_dataset_name(out)), mode="w", shape=grid,
        chunks=(1,) * spatial, dtype=np.uint8, fill_value=0,
    )
    done.attrs["gp_hotdistance"] = settings
