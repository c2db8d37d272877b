"""Precompute the hot-distance target of a whole zarr volume, block by block,
with daisy.

The entry point is :func:`precompute_target` (it returns a
:class:`PrecomputeResult`; bad data raises :class:`InvalidDataError`);
:func:`done_dataset_name` and :func:`distance_mask_dataset_name` give the
names of the outputs beside the target.

The volume is tiled into write blocks of ``block_size`` voxels. Each block
reads the gt over its write ROI grown by :meth:`HotDistancePredictor.padding
<gp_hotdistance.predictor.HotDistancePredictor.padding>` (cut to the gt's ROI:
beyond the data there is nothing, as for the whole volume in memory), computes
the target of that region with the predictor, and writes the part inside its
write ROI. The padding covers every face that can change a target value by
more than the predictor's ``tolerance``, so the result equals the in-memory
target of the whole volume within ``tolerance`` whatever the block size, and
a worker's memory depends on the block size only.

daisy hands out the blocks to worker processes; only daisy's public API is
used (``daisy.Task``, ``daisy.Server``, ``daisy.logging``), which daisy 1.2
and daisy 2 both offer. After writing a block, a worker sets the block's cell
in a small done-marker dataset beside the output (``<out>_done``, one chunk
per block); a later run with the same settings skips the marked blocks, so an
interrupted run resumes where it stopped.

Safety rules:

* Nothing that exists at an output name is written over, except the outputs
  of an interrupted run with the same settings (which is resumed), unless
  ``overwrite`` is given; even then only datasets that this package wrote
  (they carry a ``gp_hotdistance`` attribute) are removed. An output may
  never be, contain or lie inside an input dataset.
* Bad data stops the run once: the gt (and mask) are checked before any block
  is scheduled (dtype, channels, the values of a sample of blocks); a block
  that still finds a value other than 0 and 1 stops the task, and
  :class:`InvalidDataError` names the dataset, the values and the block.
* A block that cannot be read or written (an unreadable chunk) fails alone:
  every other block is written, and :class:`BlockFailedError` names the
  dataset, the blocks and the error; a later run retries only the blocks
  not done. A killed worker's block is retried by daisy, and a later run
  resumes whatever is left.

With ``worker_command``, the workers are started by a command of the user's
(``srun``, ``bsub -I``, ``ssh``) that runs ``python -m gp_hotdistance
worker``; they connect back to daisy's scheduler over TCP and share the rest
through the container (see :mod:`gp_hotdistance.precompute._worker`).

The outputs get the zarr format of the gt (2 or 3), so the container stays
readable by the stack that reads the gt. The functions here take and raise
Python values and exceptions; the command line (``gp-hotdistance
precompute``) lives in :mod:`gp_hotdistance.__main__`.
"""

import logging
import math
import os
import pickle
import shutil
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

try:
    import daisy
    from tqdm.auto import tqdm
except ImportError as error:  # the blockwise extra is not installed
    raise ImportError(
        f"gp_hotdistance.precompute needs daisy and tqdm ({error}); install them "
        f'with: pip install "gp_hotdistance[blockwise]"'
    ) from error
import numpy as np
import zarr
from funlib.geometry import Coordinate, Roi

from .._checks import check_threads
from ..predictor import HotDistancePredictor
from ._checks import (
    DEFAULT_BLOCK_SIZE,
    InvalidDataError,
    as_block_size,
    as_roi,
    check_channels,
    check_clashes,
    check_count,
    check_mask,
    check_values,
    check_worker_command,
    dataset_name,
    open_dataset,
    run_settings,
    zarr_format,
)
from ._output import claim_outputs, create_outputs, prepare_log_dir
from ._worker import (
    SchedulerUnreachableError,
    _BlockWriter,
    _DoneCheck,
    _Launcher,
    failed_blocks,
    read_text,
    run_paths,
)

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "BlockFailedError",
    "InvalidDataError",
    "PrecomputePlan",
    "PrecomputeResult",
    "SchedulerUnreachableError",
    "distance_mask_dataset_name",
    "done_dataset_name",
    "precompute_target",
]

# blocks of the gt (and mask) whose values are checked before any block is
# scheduled, spread evenly over the block grid
_SAMPLE_BLOCKS = 8

# daisy 2 renamed Task(num_workers=) to max_workers= (the old name warns)
_DAISY_2 = hasattr(daisy, "Pipeline")

#: Seconds a worker started by a launcher keeps trying to reach the
#: scheduler before it gives up with a message.
DEFAULT_CONNECT_TIMEOUT = 60.0

# failed blocks named in the final message; the rest are counted
_FAILED_SHOWN = 3


class BlockFailedError(RuntimeError):
    """Some blocks could not be read or written (an unreadable chunk, a full
    disk); every other block was written. The message names the dataset,
    the blocks' ROIs and the error; a later run with the same settings
    retries only the blocks not done."""


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
class PrecomputePlan:
    """What :func:`precompute_target` is about to do, given to its
    ``on_plan`` before any block is scheduled.

    Attributes
    ----------
    target : str
        Path of the target dataset.
    blocks : int
        Blocks this run covers (all of the volume, or those covering ``roi``).
    done_blocks : int
        Of those, blocks already done by an earlier run (skipped).
    block_size : tuple of int
        Write block in voxels (z-y-x).
    context : tuple of int
        Voxels read beyond each side of a block (the predictor's padding).
    workers : int
        Worker processes.
    worker_command : str or None
        The launcher template, or ``None`` for local workers.
    output_bytes : int
        Size of the outputs of these blocks on disk without compression (an
        upper bound of the estimate: zarr compresses the saturated parts).
    roi : Roi
        The world ROI the blocks cover.
    """

    target: str
    blocks: int
    done_blocks: int
    block_size: tuple
    context: tuple
    workers: int
    worker_command: object
    output_bytes: int
    roi: object

    def describe(self):
        """The plan in a few lines of text."""
        where = (
            "local worker processes"
            if self.worker_command is None
            else f"workers started by {self.worker_command!r}"
        )
        lines = [
            f"{self.target}: {self.blocks} blocks of {_voxels(self.block_size)} "
            f"voxels (+{_voxels(self.context)} context each side) in ROI {self.roi}",
            f"{self.workers} {where}; outputs up to {_size(self.output_bytes)} on "
            f"disk (uncompressed)",
        ]
        if self.done_blocks:
            lines.append(
                f"resuming: {self.done_blocks} of {self.blocks} blocks already done, "
                f"{self.blocks - self.done_blocks} to go"
            )
        return "\n".join(lines)


def _voxels(shape):
    return "x".join(str(int(size)) for size in shape)


def _size(count):
    for unit in ["B", "kB", "MB", "GB", "TB"]:
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000


@dataclass(frozen=True)
class PrecomputeResult:
    """What :func:`precompute_target` did.

    Attributes
    ----------
    target : str
        Path of the target dataset (``<container>/<out>``).
    distance_mask : str or None
        Path of the distance mask dataset, or ``None`` without
        ``mask_distances``.
    total_blocks : int
        Blocks this run covers: all that tile the volume, or with ``roi``
        those that cover it.
    skipped_blocks : int
        Blocks already done by an earlier run, not processed again.
    processed_blocks : int
        Blocks processed by this run.
    """

    target: str
    distance_mask: object
    total_blocks: int
    skipped_blocks: int
    processed_blocks: int


def precompute_target(
    container: str,
    gt: str,
    out: str,
    predictor: HotDistancePredictor,
    *,
    mask: str | None = None,
    block_size: int | Sequence[int] | None = None,
    num_workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    log_dir: str | None = None,
    threads: int | None = None,
    roi: Roi | tuple | None = None,
    worker_command: str | None = None,
    host: str | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    on_plan: Callable[["PrecomputePlan"], object] | None = None,
) -> "PrecomputeResult":
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
        ``(z, y, x)`` for one class, with funlib.persistence metadata; with
        the predictor's ``groups``, an integer label image ``(z, y, x)``.
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
        Worker processes.
    overwrite : bool, optional
        Replace existing outputs that this package wrote (recognised by their
        ``gp_hotdistance`` attribute) instead of refusing (or resuming).
        Anything else at an output name is refused even so.
    progress : bool, optional
        Show a progress bar (tqdm, on stderr).
    log_dir : str or os.PathLike, optional
        Directory for daisy's per-worker log files; by default the workers
        log to this process's stderr.
    threads : int, optional
        Threads each worker's kernels run on; by default ``cpu_count //
        num_workers`` (at least one) for local workers, so that they share
        the cores, and the cores its launcher gives it for a worker started
        by ``worker_command``.
    roi : Roi or (offset, shape), optional
        World ROI to process (z-y-x, world units), inside the gt's ROI: only
        the blocks that cover it are processed (it is snapped outward to the
        block grid); the outputs keep the gt's full extent, and a later run
        without ``roi`` skips the blocks done.
    worker_command : str, optional
        Start each worker with this shell command instead of as a local
        process: ``{command}`` in it is replaced by the worker's command line
        (``python -m gp_hotdistance worker ...``), e.g. ``"srun -n1 -c8
        {command}"``. The workers must see ``container`` at the same path (a
        shared filesystem) and run the same Python environment.
    host : str, optional
        Address of this machine that the workers connect to (daisy's
        scheduler). By default the environment variable ``DAISY_HOST``, else
        daisy's guess (this machine's address on its default route).
    connect_timeout : float, optional
        Seconds a worker started by ``worker_command`` tries to reach the
        scheduler before it gives up; the run then stops with a message.
    on_plan : callable, optional
        Called with a :class:`PrecomputePlan` once the run is planned and
        before any block is scheduled (the command line prints it).

    Returns
    -------
    PrecomputeResult

    Raises
    ------
    TypeError
        ``predictor`` is not a :class:`HotDistancePredictor`, a dataset name
        is not a string, ``num_workers`` is not an int, ``roi``,
        ``worker_command``, ``host``, ``connect_timeout`` or ``on_plan`` is
        of the wrong type, or the gt or mask is not a bool, integer or float
        array.
    FileNotFoundError
        The container or a dataset does not exist.
    FileExistsError
        Something exists at an output name (the target, its done markers or
        its distance mask) and is not an interrupted run with the same
        settings, and ``overwrite`` is false; or, with ``overwrite``, it was
        not written by this package. Nothing is written or removed then.
    InvalidDataError
        The gt or mask holds a value other than 0 and 1: found in the sample
        checked before the run (nothing is written), or by a block (the run
        stops; the blocks written stay done).
    ValueError
        An output is, contains or lies inside the gt or mask; the gt's
        channels do not match the predictor's classes; the mask does not fit
        the gt; ``block_size``, ``num_workers`` or ``threads`` is invalid;
        ``roi`` is empty, has the wrong number of axes or is not inside the
        gt's ROI; ``worker_command`` has no ``{command}``; ``log_dir`` cannot
        be made a directory; or the gt or mask is zarr format 3 and this zarr
        reads format 2 only.
    BlockFailedError
        Some blocks could not be read or written (e.g. an unreadable chunk);
        every other block was written and a new run retries only those.
    RuntimeError
        Some blocks failed for another reason (a worker died), or the
        workers could not be started or could not reach the scheduler; a new
        run retries the blocks not done.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from funlib.persistence import open_ds, prepare_ds
    >>> from gp_hotdistance import HotDistancePredictor
    >>> directory = tempfile.TemporaryDirectory()
    >>> container = os.path.join(directory.name, "data.zarr")
    >>> gt = prepare_ds(os.path.join(container, "gt"), (1, 8, 8, 8),
    ...                 offset=(0, 0, 0), voxel_size=(4, 4, 4),
    ...                 axis_names=["c^", "z", "y", "x"],
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
    if threads is not None:
        threads = check_threads(threads)
    worker_command = check_worker_command(worker_command)
    host = _host(host)
    if isinstance(connect_timeout, bool) or not isinstance(connect_timeout, (int, float)):
        raise TypeError(f"connect_timeout must be a number of seconds, got {connect_timeout!r}")
    if not 0 < connect_timeout < math.inf:
        raise ValueError(f"connect_timeout must be positive, got {connect_timeout!r}")
    if on_plan is not None and not callable(on_plan):
        raise TypeError(f"on_plan must be callable, got {on_plan!r}")
    job = _plan(container, gt, out, predictor, mask, block_size, num_workers)
    job.roi = as_roi(roi, job.gt_array.roi, job.block_world)
    job.worker_command = worker_command
    job.host = host
    job.connect_timeout = float(connect_timeout)
    # launched workers get the threads asked for, else the cores their
    # launcher gives them; local ones share this machine's cores
    job.worker_threads = threads
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // job.num_workers)
    job.threads = threads
    check_values(job, _SAMPLE_BLOCKS)
    prepare_log_dir(log_dir)
    done = done_dataset_name(job.out)
    resume = claim_outputs(job, done, overwrite)
    if not resume:
        distance_mask = distance_mask_dataset_name(job.out)
        create_outputs(job, done, distance_mask if predictor.mask_distances else None)
    return _run(job, resume, progress, log_dir, on_plan)


def _host(host):
    if host is None:
        return os.environ.get("DAISY_HOST") or None
    if not isinstance(host, str) or not host.strip():
        raise TypeError(f"host must be a host name or address (str), got {host!r}")
    return host.strip()


# ---------------------------------------------------------------------------
# the steps of precompute_target
# ---------------------------------------------------------------------------


@dataclass
class _Job:
    """Everything the steps share: names, opened inputs and the tiling."""

    container: str
    predictor: HotDistancePredictor
    gt: str
    mask: object
    out: str
    outputs: list
    gt_array: object
    mask_array: object
    block_voxels: tuple
    num_workers: int
    settings: dict
    zarr_format: int
    threads: int = 1
    worker_threads: object = None
    roi: object = None
    worker_command: object = None
    host: object = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT

    @property
    def block_world(self):
        return Coordinate(self.block_voxels) * self.gt_array.voxel_size

    @property
    def grid(self):
        shape = self.gt_array.roi.shape / self.gt_array.voxel_size
        return tuple(math.ceil(s / b) for s, b in zip(shape, self.block_voxels))

    def path(self, dataset):
        return os.path.join(self.container, dataset)

    def block_slices(self):
        """The done markers' slices of the blocks that cover ``roi``."""
        origin = self.gt_array.roi.offset
        begin = (self.roi.begin - origin) / self.block_world
        end = (self.roi.end - origin + self.block_world - 1) / self.block_world
        return tuple(slice(int(b), int(e)) for b, e in zip(begin, end))


def _plan(container, gt, out, predictor, mask, block_size, num_workers):
    """Check the arguments, open the inputs and check their metadata; the
    job. Writes nothing."""
    if not isinstance(predictor, HotDistancePredictor):
        raise TypeError(f"predictor must be a HotDistancePredictor, got {type(predictor).__name__}")
    # absolute: workers on other machines are given this path
    container = os.path.abspath(os.fspath(container))
    gt = dataset_name(gt, "gt")
    out = dataset_name(out, "out")
    if mask is not None:
        mask = dataset_name(mask, "mask")
        if not predictor.mask_distances:
            raise ValueError(
                "mask is only used for the distance mask: give a predictor with "
                "mask_distances=True, or no mask"
            )
    num_workers = check_count(num_workers, "num_workers")
    outputs = [out, done_dataset_name(out)]
    if predictor.mask_distances:
        outputs.append(distance_mask_dataset_name(out))
    inputs = {"gt": gt} if mask is None else {"gt": gt, "mask": mask}
    check_clashes(container, out, outputs, inputs)

    if not os.path.isdir(container):
        raise FileNotFoundError(f"zarr container {container!r} does not exist")
    gt_array = open_dataset(container, gt, "gt")
    check_channels(gt_array, predictor, gt)
    mask_array = None
    if mask is not None:
        mask_array = open_dataset(container, mask, "mask")
        check_mask(mask_array, gt_array, predictor, mask)
    block_voxels = as_block_size(block_size, gt_array.voxel_size.dims)
    return _Job(
        container=container,
        predictor=predictor,
        gt=gt,
        mask=mask,
        out=out,
        outputs=outputs,
        gt_array=gt_array,
        mask_array=mask_array,
        block_voxels=block_voxels,
        num_workers=num_workers,
        settings=run_settings(gt, mask, predictor, gt_array, block_voxels),
        zarr_format=zarr_format(os.path.join(container, gt)),
    )


def _run(job, resume, progress, log_dir, on_plan):
    """Run the blocks not done yet on daisy; the result."""
    done_path = job.path(done_dataset_name(job.out))
    blocks = job.block_slices()
    done_before = zarr.open_array(done_path, mode="r")[...] != 0
    total = int(done_before[blocks].size)
    skipped = int(done_before[blocks].sum())
    plan = _make_plan(job, total, skipped)
    logger.info("%s %s", "resuming" if resume else "writing", plan.describe())
    if on_plan is not None:
        on_plan(plan)
    paths = run_paths(done_path)
    # a run folder left by an earlier run (its failures are retried now)
    shutil.rmtree(paths["run"], ignore_errors=True)
    os.makedirs(paths["failed"])
    os.makedirs(paths["progress"])
    try:
        distance_mask_path = (
            job.path(distance_mask_dataset_name(job.out)) if job.predictor.mask_distances else None
        )
        writer = _BlockWriter(job, distance_mask_path, done_path)
        check = _DoneCheck(done_before, job.gt_array.roi.offset, job.block_world, paths["invalid"])
        task = _task(job, writer, check, paths)
        with _Progress(paths["progress"], total, skipped, job.out, progress):
            try:
                cause = _run_task(task, log_dir, job.host)
            except RuntimeError:  # daisy 1 raises a launcher's error
                if read_text(paths["fatal"]) is None:
                    raise
                cause = None
        invalid = read_text(paths["invalid"])
        fatal = read_text(paths["fatal"])
        failed = failed_blocks(paths["failed"])
    finally:
        shutil.rmtree(paths["run"], ignore_errors=True)
    if invalid is not None:
        raise InvalidDataError(
            f"{invalid}; the run stopped at that block (the blocks written so far "
            f"stay done): fix the data, then run again"
        )
    done_after = zarr.open_array(done_path, mode="r")[...] != 0
    written = int((done_after & ~done_before)[blocks].sum())
    if fatal is not None and not done_after[blocks].all():
        raise RuntimeError(
            f"{fatal}. The run stopped: {written} blocks were written by this run, "
            f"{int((~done_after[blocks]).sum())} of {total} are not done; run again "
            f"with the same settings to do them"
        )
    if failed:
        raise BlockFailedError(_failed_message(job, failed, total, done_after[blocks]))
    missing = int((~done_after[blocks]).sum())
    if missing:
        cause = f"first failure: {cause}" if cause else "see daisy's worker logs"
        raise RuntimeError(
            f"{missing} of {total} blocks of {job.out!r} were not written "
            f"({cause}); run again with the same settings to retry them"
        )
    return PrecomputeResult(
        target=job.path(job.out),
        distance_mask=writer.distance_mask_path,
        total_blocks=total,
        skipped_blocks=skipped,
        processed_blocks=written,
    )


def _make_plan(job, total, skipped):
    padding = job.predictor.padding(job.gt_array.voxel_size)
    voxel_size = job.gt_array.voxel_size
    per_voxel = 4 * job.predictor.embedding_dims
    if job.predictor.mask_distances:
        per_voxel += job.predictor.classes
    voxels = int(np.prod(job.roi.shape / voxel_size))
    return PrecomputePlan(
        target=job.path(job.out),
        blocks=total,
        done_blocks=skipped,
        block_size=tuple(job.block_voxels),
        context=tuple(int(-(-p // v)) for p, v in zip(padding, voxel_size)),
        workers=job.num_workers,
        worker_command=job.worker_command,
        output_bytes=voxels * per_voxel + total,
        roi=job.roi,
    )


def _failed_message(job, failed, total, done):
    shown = "; ".join(
        f"{tuple(record['index'])} at {record['roi']}" for record in failed[:_FAILED_SHOWN]
    )
    more = len(failed) - _FAILED_SHOWN
    if more > 0:
        shown += f" and {more} more"
    first = failed[0]
    return (
        f"{len(failed)} of {total} blocks of {job.out!r} failed and were not written "
        f"(blocks {shown}); the first while {first['stage']}: {first['error']}. "
        f"The other {int(done.sum())} blocks were written. Once the data is fixed, "
        f"run again with the same settings: only the blocks not done are processed"
    )


# ---------------------------------------------------------------------------
# running daisy
# ---------------------------------------------------------------------------


def _task(job, writer, check, paths):
    padding = job.predictor.padding(job.gt_array.voxel_size)
    spatial_dims = job.gt_array.voxel_size.dims
    options = {"max_workers" if _DAISY_2 else "num_workers": job.num_workers}
    process_function = writer
    if job.worker_command is not None:
        # the workers read the writer from the run folder in the container
        _write_atomically(paths["writer"], pickle.dumps(writer))
        # killed workers are replaced this often before the run stops (a
        # rerun resumes it)
        max_restarts = max(2, job.num_workers)
        process_function = _Launcher(
            job.worker_command,
            job.container,
            job.out,
            paths,
            None,
            job.connect_timeout,
            max_restarts,
            threads=job.worker_threads,
        )
        if _DAISY_2:
            # once ours has stopped the run, each spawn fails at once, until
            # daisy's cap gives the task up
            options["max_worker_restarts"] = max_restarts
    with warnings.catch_warnings():
        # daisy 2 advises its own done markers over a check function, unless
        # "the ground truth genuinely lives in your output data": ours does
        # (the done markers beside the target), so the advice does not apply
        warnings.filterwarnings("ignore", message=r"Task\(check_function", category=UserWarning)
        return daisy.Task(
            task_id="gp_hotdistance_precompute_" + job.out.replace("/", "_"),
            total_roi=job.roi.grow(padding, padding),
            read_roi=Roi((0,) * spatial_dims, job.block_world + padding * 2),
            write_roi=Roi(padding, job.block_world),
            process_function=process_function,
            check_function=check,
            read_write_conflict=False,
            fit="shrink",
            **options,
        )


def _write_atomically(path, data):
    temporary = path + ".partial"
    with open(temporary, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


def _run_task(task, log_dir, host):
    """Run ``task`` on daisy's server and workers, without daisy's own
    progress bar and summary (daisy 1 has no switch for them in
    ``run_blockwise``, so the server is used directly); the last line of the
    first worker error that daisy 2 reports, or ``None``."""
    previous_log_dir = daisy.logging.get_log_basedir()
    daisy.logging.set_log_basedir(None if log_dir is None else os.fspath(log_dir))
    try:
        if _DAISY_2:
            states = daisy.Server().run_blockwise([task], progress=False, summary=False, host=host)
        else:
            states = daisy.Server(host=host).run_blockwise([task])
    finally:
        daisy.logging.set_log_basedir(previous_log_dir)
    error = getattr(states.get(task.task_id), "first_worker_error", None)
    lines = [] if not error else [line for line in error.splitlines() if line.strip()]
    return lines[-1].strip() if lines else None


class _Progress:
    """A tqdm bar over the blocks, fed by a thread that sums the lengths of
    the files (one per worker) to which the workers append one byte per
    block written."""

    def __init__(self, path, total, done, description, enabled):
        self.path = path
        self.bar = tqdm(
            total=total, initial=done, desc=description, unit="blocks", disable=not enabled
        )
        self.done = done
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _update(self):
        written = 0
        try:
            with os.scandir(self.path) as entries:
                for entry in entries:
                    try:
                        written += entry.stat().st_size
                    except FileNotFoundError:
                        pass
        except FileNotFoundError:
            pass
        self.bar.update(self.done + written - self.bar.n)

    def _watch(self):
        while not self.stop.wait(0.5):
            self._update()

    def __enter__(self):
        if not self.bar.disable:
            self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()
        self._update()
        self.bar.close()
