"""What runs in the precompute's workers: the process function that
computes and writes one block (:class:`_BlockWriter`), the check function that
skips a block (:class:`_DoneCheck`, on daisy's server, before handing it out),
the spawn function that starts a worker through the user's launcher command
(:class:`_Launcher`) and the worker that such a command runs
(:func:`run_worker`, ``python -m gp_hotdistance worker``).

Workers may run on other machines: everything they share with the run goes
through the zarr container (a shared filesystem), in the run folder inside
the done-marker dataset (:func:`run_paths`): the pickled block writer, one
record per failed block, one progress file per worker, the first bad value
found. daisy's TCP connection carries only the blocks.
Private: see :func:`gp_hotdistance.precompute.precompute_target`.
"""

import errno
import json
import logging
import os
import pickle
import shlex
import socket
import subprocess
import sys
import time

import daisy
import dask
import numpy as np
import zarr
from funlib.geometry import Coordinate
from funlib.persistence import open_ds

from ._checks import InvalidDataError

logger = logging.getLogger(__name__)

_DAISY_2 = hasattr(daisy, "Pipeline")

#: exit status of ``gp-hotdistance worker`` when it cannot reach the
#: scheduler, and when it cannot open the run (container not visible there)
EXIT_UNREACHABLE = 3
EXIT_NO_RUN = 4
# seconds a worker retries a refused connection to the scheduler
_REFUSED_GRACE = 5.0
# a shell's status for a command it cannot find or cannot execute
_NOT_STARTED = (126, 127)


def run_paths(done_path):
    """The run folder inside the done-marker dataset and its entries."""
    run = os.path.join(done_path, "run")
    return {
        "run": run,
        "writer": os.path.join(run, "writer.pickle"),
        "invalid": os.path.join(run, "invalid"),
        "failed": os.path.join(run, "failed"),
        "progress": os.path.join(run, "progress"),
        "fatal": os.path.join(run, "fatal"),
        "restarts": os.path.join(run, "restarts"),
    }


class _BlockWriter:
    """daisy's process function: computes and writes one block.

    Sent to each worker process (forked by daisy 1, pickled by daisy 2, read
    from the run folder by a worker that a launcher started); the datasets
    are opened there, once per process.

    A block that raises :class:`InvalidDataError` (a value other than 0 and
    1) stops the run; any other exception (an unreadable chunk, a full disk)
    fails that block only: it is recorded in the run folder, logged in one
    line, and the worker goes on with the next block. daisy is not told, so
    it neither retries the block nor restarts the worker for it.
    """

    def __init__(self, job, distance_mask_path, done_path):
        self.predictor = job.predictor
        self.gt_name = job.gt
        self.mask_name = job.mask
        self.out_name = job.out
        self.gt_path = job.path(job.gt)
        self.mask_path = None if job.mask is None else job.path(job.mask)
        self.target_path = job.path(job.out)
        self.distance_mask_path = distance_mask_path
        self.done_path = done_path
        self.paths = run_paths(done_path)
        self.origin = job.gt_array.roi.offset
        self.block_world = job.block_world
        self.threads = job.threads
        self.blocks = job.block_slices()
        self._arrays = None
        self._progress = None
        self.stage = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_arrays"] = None  # open datasets stay in their process
        state["_progress"] = None
        return state

    def _open(self):
        if self._arrays is None:
            self._arrays = {
                "gt": open_ds(self.gt_path),
                "mask": None if self.mask_path is None else open_ds(self.mask_path),
                "target": open_ds(self.target_path, mode="r+"),
                "distance_mask": (
                    None
                    if self.distance_mask_path is None
                    else open_ds(self.distance_mask_path, mode="r+")
                ),
                "done": zarr.open_array(self.done_path, mode="r+"),
            }
        return self._arrays

    def __call__(self, block):
        if os.path.exists(self.paths["invalid"]):
            return  # the run is stopping: bad data was found
        # a forked worker hangs on dask's threaded scheduler if its parent
        # used it; these reads are small
        with dask.config.set(scheduler="synchronous"):
            self.stage = "opening the datasets"
            try:
                self.write_block(block.read_roi, block.write_roi)
            except InvalidDataError as error:
                _create_once(self.paths["invalid"], str(error))
            except Exception as error:  # noqa: BLE001 - one bad block must not stop the others
                self._failed(block.write_roi, self.stage, error)

    def _failed(self, write_roi, stage, error):
        index = _block_index(write_roi.offset, self.origin, self.block_world)
        cause = f"{type(error).__name__}: {error}".strip().splitlines()[0]
        record = {"index": list(index), "roi": str(write_roi), "stage": stage, "error": cause}
        name = "_".join(map(str, index))
        try:
            _create_once(os.path.join(self.paths["failed"], name), json.dumps(record))
        except OSError:
            pass  # the run folder is gone: the run has ended
        logger.warning("block %s (ROI %s) failed while %s: %s", index, write_roi, stage, cause)

    def write_block(self, read_roi, write_roi):
        """Compute the target over ``read_roi`` (cut to the data) and write
        its ``write_roi`` part, then mark the block done. ``self.stage`` says
        what is being done, for the message of a failure.

        Raises :class:`InvalidDataError` if the gt or mask holds a value other
        than 0 and 1 there.
        """
        self.stage = "opening the datasets"
        arrays = self._open()
        gt = arrays["gt"]
        voxel_size = gt.voxel_size
        index = _block_index(write_roi.offset, self.origin, self.block_world)
        # beyond the data there is nothing, as for the whole volume in memory
        context_roi = read_roi.intersect(gt.roi)
        self.stage = f"reading gt dataset {self.gt_name!r}"
        gt_data = np.asarray(gt[context_roi])
        self.stage = "computing the target"
        try:
            # the gt (binary channels, or a label image with the predictor's
            # groups) through the package's one entry, checked once
            class_gt = self.predictor._class_gt(gt_data, None, voxel_size.dims, "gt")
            target = self.predictor._target(
                class_gt,
                tuple(float(v) for v in voxel_size),
                1.0 / self.predictor.scale_factor,
                self.threads,
            )
        except ValueError as error:
            raise InvalidDataError(
                f"gt dataset {self.gt_name!r}, block {index} (ROI {write_roi}): {error}"
            ) from None
        inside = (slice(None),) + ((write_roi - context_roi.offset) / voxel_size).to_slices()
        self.stage = f"writing target dataset {self.out_name!r}"
        arrays["target"][write_roi] = target[inside]
        if arrays["distance_mask"] is not None:
            mask_data = None
            if arrays["mask"] is not None:
                self.stage = f"reading mask dataset {self.mask_name!r}"
                mask_data = np.asarray(arrays["mask"][context_roi])
            self.stage = "computing the distance mask"
            try:
                if class_gt.labels is not None:
                    # the mask with the gt's unannotated ids zeroed
                    mask_data = self.predictor._class_gt(
                        class_gt.labels, mask_data, voxel_size.dims, "gt"
                    ).mask
                distance_mask = self.predictor.create_distance_mask(
                    target[self.predictor.classes :],
                    mask_data,
                    voxel_size,
                    threads=self.threads,
                )
            except ValueError as error:
                raise InvalidDataError(
                    f"mask dataset {self.mask_name!r}, block {index} (ROI {write_roi}): {error}"
                ) from None
            self.stage = "writing the distance mask"
            arrays["distance_mask"][write_roi] = distance_mask[inside]
        # the marker goes last: a block killed before it is redone
        self.stage = "writing the done marker"
        arrays["done"][index] = 1
        self._count()
        logger.debug("wrote block %s (read %s)", write_roi, context_roi)

    def run_is_done(self):
        """Whether every block of the run is marked done."""
        try:
            done = zarr.open_array(self.done_path, mode="r")
            return bool(np.all(done[self.blocks]))
        except Exception:  # noqa: BLE001 - zarr 2 and 3 raise different errors
            return False

    def _count(self):
        """One byte per block in this worker's own progress file (workers on
        several machines never append to the same file)."""
        try:
            if self._progress is None:
                name = f"{socket.gethostname()}-{os.getpid()}"
                self._progress = os.path.join(self.paths["progress"], name)
            with open(self._progress, "ab") as counter:
                counter.write(b".")
        except OSError:
            pass  # the run folder is gone: the run has ended


class _DoneCheck:
    """daisy's check function (called on the server before a block is handed
    out): skip the block if an earlier run did it, or if bad data was found
    (the run is stopping)."""

    def __init__(self, done, origin, block_world, invalid_path):
        self.done = done
        self.origin = Coordinate(origin)
        self.block_world = Coordinate(block_world)
        self.invalid_path = invalid_path

    def __call__(self, block):
        index = _block_index(block.write_roi.offset, self.origin, self.block_world)
        return bool(self.done[index]) or os.path.exists(self.invalid_path)


def _block_index(offset, origin, block_world):
    return tuple(int((o - g) // b) for o, g, b in zip(offset, origin, block_world))


def _create_once(path, text):
    """Write ``text`` to a new file ``path``; keep what is there if it
    exists (the first message wins)."""
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


def read_text(path):
    try:
        with open(path) as file:
            return file.read()
    except FileNotFoundError:
        return None


def failed_blocks(failed_dir):
    """The records of the failed blocks, sorted by block index."""
    records = []
    try:
        names = os.listdir(failed_dir)
    except FileNotFoundError:
        return records
    for name in names:
        text = read_text(os.path.join(failed_dir, name))
        if text:
            records.append(json.loads(text))
    return sorted(records, key=lambda record: record["index"])


# ---------------------------------------------------------------------------
# workers started by a launcher command
# ---------------------------------------------------------------------------


class _Launcher:
    """daisy's spawn function when the user's launcher starts the workers:
    runs ``template`` with ``{command}`` replaced by the worker's command
    line, and waits for it.

    It runs on the scheduler's machine (daisy 1 forks it, daisy 2 runs it in
    a subprocess of its own), so the scheduler's address, port and task come
    from daisy's context. A launcher that cannot start (status 126 or 127),
    a worker that cannot reach the scheduler or cannot open the run, and
    workers that die more than ``max_restarts`` times stop the run: the first
    such message goes to the run folder's ``fatal`` file, and every later
    spawn fails at once without starting anything.
    """

    def __init__(
        self,
        template,
        container,
        out,
        paths,
        host,
        connect_timeout,
        max_restarts,
        python=None,
        threads=None,
    ):
        self.template = template
        self.container = container
        self.out = out
        self.paths = paths
        self.host = host
        self.connect_timeout = connect_timeout
        self.max_restarts = max_restarts
        self.python = python or sys.executable
        # None: each worker takes the cores its launcher gave it
        self.threads = threads

    def command(self, host, port, task_id, worker_id):
        """The worker's command line, quoted for a POSIX shell."""
        return shlex.join(
            [
                self.python,
                "-m",
                "gp_hotdistance",
                "worker",
                "--zarr",
                self.container,
                "--out",
                self.out,
                "--scheduler",
                f"{host}:{port}",
                "--task-id",
                str(task_id),
                "--worker-id",
                str(worker_id),
                "--connect-timeout",
                f"{self.connect_timeout:g}",
                *([] if self.threads is None else ["--threads", str(self.threads)]),
            ]
        )

    def __call__(self, *, context=None):
        if context is None:  # daisy 1 passes it in the environment
            context = daisy.Context.from_env()
        fatal = read_text(self.paths["fatal"])
        if fatal is not None:
            self._stop(fatal, announce=False)
        host = self.host or context["hostname"]
        port = context["port"]
        line = self.template.replace(
            "{command}",
            self.command(host, port, context["task_id"], context["worker_id"]),
        )
        try:
            status = subprocess.call(line, shell=True)  # noqa: S602 - the user's own command
        except OSError as error:  # no shell at all
            status = None
            cause = f"it could not be run: {error}"
        if status == 0:
            return
        if status is None:
            pass
        elif status in _NOT_STARTED:
            cause = (
                f"the shell could not start it (exit status {status}: "
                f"{'command not found' if status == 127 else 'not executable'})"
            )
        elif status == EXIT_UNREACHABLE:
            self._stop(
                f"a worker could not reach the scheduler at {host}:{port} (see its "
                f"message above); give the scheduler an address of this "
                f"machine that the workers can reach (host=, --host or the "
                f"DAISY_HOST environment variable)"
            )
        elif status == EXIT_NO_RUN:
            self._stop(
                f"a worker could not open the run in {self.container!r}: the "
                f"workers must see the zarr container at the same path (a shared "
                f"filesystem); see the worker's message above"
            )
        else:
            self._count_restart(status, line)
            return self._died()
        self._stop(f"the worker command {line!r} failed to start: {cause}")

    def _count_restart(self, status, line):
        try:
            with open(self.paths["restarts"], "ab") as counter:
                counter.write(b".")
            restarts = os.path.getsize(self.paths["restarts"])
        except OSError:
            return  # the run folder is gone: the run has ended
        logger.warning(
            "a worker exited with status %s (%d of at most %d)", status, restarts, self.max_restarts
        )
        if restarts > self.max_restarts:
            self._stop(
                f"workers exited with an error {restarts} times (last exit status "
                f"{status} of {line!r}); see their messages above"
            )

    def _died(self):
        # daisy 1 replaces a worker that exits non-zero; daisy 2 counts it
        # against the task's max_worker_restarts and replaces it
        if _DAISY_2:
            _exit_quietly()
        raise SystemExit(1)

    def _stop(self, message, announce=True):
        """Stop the run: daisy 1 stops on an exception from a spawn
        function; daisy 2 gives up the task once every respawn fails."""
        if announce:
            try:
                _create_once(self.paths["fatal"], message)
                message = read_text(self.paths["fatal"]) or message
            except OSError:
                pass  # the run folder is gone: the run has ended
        if _DAISY_2:
            _exit_quietly()
        raise RuntimeError(message)


def _exit_quietly():
    """End daisy 2's spawn process with status 1 and no traceback (its
    wrapper would print one for every respawn)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def _scheduler_address(text):
    host, _, port = text.rpartition(":")
    try:
        port = int(port)
    except ValueError:
        port = -1
    if not host or not 0 < port < 65536:
        raise ValueError(f"--scheduler must be HOST:PORT, got {text!r}")
    return host.strip("[]"), port


def _wait_for_scheduler(host, port, timeout):
    """``None`` if a TCP connection to ``host:port`` opens within ``timeout``
    seconds, else the last error. Retried (a launcher may start a worker
    before its network is up), but a refused connection only for a few
    seconds: nothing listens there, or the run has ended."""
    start = time.monotonic()
    deadline = start + timeout
    refused_deadline = start + min(timeout, _REFUSED_GRACE)
    while True:
        left = deadline - time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=max(0.1, min(left, 5))):
                return None
        except ConnectionRefusedError as error:
            last = error
            if time.monotonic() + 0.5 >= refused_deadline:
                break
        except OSError as error:
            last = error
        if time.monotonic() + 0.5 >= deadline:
            break
        time.sleep(0.5)
    last.seconds = time.monotonic() - start
    return last


class SchedulerUnreachableError(ConnectionError):
    """A worker could not reach the scheduler in time (exit status
    :data:`EXIT_UNREACHABLE` of the worker command)."""


class RunNotFoundError(FileNotFoundError):
    """A worker could not open the run in the container (exit status
    :data:`EXIT_NO_RUN` of the worker command)."""


def run_worker(container, out, scheduler, task_id, worker_id, connect_timeout, threads=None):
    """Run one worker: connect to the scheduler at ``scheduler``
    (``HOST:PORT``), then write the blocks it hands out until there are no
    more.

    Raises :class:`RunNotFoundError`, :class:`SchedulerUnreachableError`,
    or ``ValueError`` for a malformed ``scheduler``."""
    from . import done_dataset_name

    host, port = _scheduler_address(scheduler)
    done_path = os.path.join(container, done_dataset_name(out))
    paths = run_paths(done_path)
    error = _wait_for_scheduler(host, port, connect_timeout)
    try:
        with open(paths["writer"], "rb") as file:
            # written by the run that started this worker, in the user's
            # own container
            writer = pickle.load(file)  # noqa: S301
    except (OSError, pickle.UnpicklingError, EOFError) as open_error:
        writer = None
        if os.path.isdir(done_path) and not os.path.exists(paths["run"]):
            return  # the run has ended (it removes its run folder)
        if error is None:
            raise RunNotFoundError(
                f"cannot open the run of {out!r} in {container!r} on "
                f"{socket.gethostname()}: {open_error}; the workers must see the "
                f"zarr container at the same path as the run (a shared filesystem)"
            ) from None
    if error is not None:
        if writer is not None and writer.run_is_done():
            return  # a late worker: the run has ended
        reason = os.strerror(error.errno) if error.errno in errno.errorcode else error
        raise SchedulerUnreachableError(
            f"cannot reach the scheduler at {host}:{port} from "
            f"{socket.gethostname()} ({reason}, gave up after {error.seconds:.0f} s); "
            f"start the run with an address of its machine that this one can reach "
            f"(--host or DAISY_HOST)"
        )
    writer.threads = threads or _available_cores()
    client = daisy.Client(context=_context(host, port, task_id, worker_id))
    while True:
        with client.acquire_block() as block:
            if block is None:
                return
            writer(block)


def _available_cores():
    try:
        return len(os.sched_getaffinity(0))  # what the launcher gave this process
    except AttributeError:
        return os.cpu_count() or 1


def _context(host, port, task_id, worker_id):
    context = daisy.Context(hostname=host, port=port, task_id=task_id, worker_id=worker_id)
    if _DAISY_2:
        context["logdir"] = ""  # log to this process's stderr
    return context
