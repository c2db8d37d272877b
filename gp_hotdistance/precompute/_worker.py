"""The functions daisy calls for :mod:`gp_hotdistance.precompute`: the process
function that computes and writes one block (in a worker process), and the
check function that skips a block (on daisy's server, before handing it out).
Private: see :func:`gp_hotdistance.precompute.precompute_target`.
"""

import logging
import os

import dask
import numpy as np
import zarr
from funlib.geometry import Coordinate
from funlib.persistence import open_ds

from ._checks import InvalidDataError

logger = logging.getLogger(__name__)

class _BlockWriter:
    """daisy's process function: computes and writes one block.

    Sent to each worker process (forked by daisy 1, pickled by daisy 2); the
    datasets are opened there, once per process.
    """

    def __init__(self, job, distance_mask_path, done_path, failure_path, progress_path):
        self.predictor = job.predictor
        self.gt_name = job.gt
        self.mask_name = job.mask
        self.gt_path = job.path(job.gt)
        self.mask_path = None if job.mask is None else job.path(job.mask)
        self.target_path = job.path(job.out)
        self.distance_mask_path = distance_mask_path
        self.done_path = done_path
        self.failure_path = failure_path
        self.progress_path = progress_path
        self.origin = job.gt_array.roi.offset
        self.block_world = job.block_world
        self.threads = job.threads
        self._arrays = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_arrays"] = None  # open datasets stay in their process
        return state

    def _open(self):
        if self._arrays is None:
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
        if os.path.exists(self.failure_path):
            return  # the run is stopping: bad data was found
        # a forked worker hangs on dask's threaded scheduler if its parent
        # used it; these reads are small
        with dask.config.set(scheduler="synchronous"):
            try:
                self.write_block(block.read_roi, block.write_roi)
            except InvalidDataError as error:
                _record_failure(self.failure_path, str(error))

    def write_block(self, read_roi, write_roi):
        """Compute the target over ``read_roi`` (cut to the data) and write
        its ``write_roi`` part, then mark the block done.

        Raises :class:`InvalidDataError` if the gt or mask holds a value other
        than 0 and 1 there.
        """
        arrays = self._open()
        gt = arrays["gt"]
        voxel_size = gt.voxel_size
        index = _block_index(write_roi.offset, self.origin, self.block_world)
        # beyond the data there is nothing, as for the whole volume in memory
        context_roi = read_roi.intersect(gt.roi)
        try:
            # the gt (binary channels, or a label image with the predictor's
            # groups) through the package's one entry, checked once
            class_gt = self.predictor._class_gt(
                np.asarray(gt[context_roi]), None, voxel_size.dims, "gt"
            )
            target = self.predictor._target(
                class_gt, tuple(float(v) for v in voxel_size), 1.0 / self.predictor.scale_factor,
                self.threads,
            )
        except ValueError as error:
            raise InvalidDataError(
                f"gt dataset {self.gt_name!r}, block {index} (ROI {write_roi}): {error}"
            ) from None
        inside = (slice(None),) + ((write_roi - context_roi.offset) / voxel_size).to_slices()
        arrays["target"][write_roi] = target[inside]
        if arrays["distance_mask"] is not None:
            mask_data = None
            if arrays["mask"] is not None:
                mask_data = np.asarray(arrays["mask"][context_roi])
            try:
                if class_gt.labels is not None:
                    # the mask with the gt's unannotated ids zeroed
                    mask_data = self.predictor._class_gt(
                        class_gt.labels, mask_data, voxel_size.dims, "gt"
                    ).mask
                distance_mask = self.predictor.create_distance_mask(
                    target[self.predictor.classes:], mask_data, voxel_size,
                    threads=self.threads,
                )
            except ValueError as error:
                raise InvalidDataError(
                    f"mask dataset {self.mask_name!r}, block {index} (ROI "
                    f"{write_roi}): {error}"
                ) from None
            arrays["distance_mask"][write_roi] = distance_mask[inside]
        # the marker goes last: a block killed before it is redone
        arrays["done"][index] = 1
        with open(self.progress_path, "ab") as counter:
            counter.write(b".")  # one byte per block, for the progress bar
        logger.debug("wrote block %s (read %s)", write_roi, context_roi)


class _DoneCheck:
    """daisy's check function (called on the server before a block is handed
    out): skip the block if an earlier run did it, or if bad data was found
    (the run is stopping)."""

    def __init__(self, done, origin, block_world, failure_path):
        self.done = done
        self.origin = Coordinate(origin)
        self.block_world = Coordinate(block_world)
        self.failure_path = failure_path

    def __call__(self, block):
        index = _block_index(block.write_roi.offset, self.origin, self.block_world)
        return bool(self.done[index]) or os.path.exists(self.failure_path)


def _block_index(offset, origin, block_world):
    return tuple(int((o - g) // b) for o, g, b in zip(offset, origin, block_world))


def _record_failure(path, message):
    """Keep the first failure's message; later ones are dropped."""
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    with os.fdopen(descriptor, "w") as file:
        file.write(message)


def _read_failure(path):
    try:
        with open(path) as file:
            return file.read()
    except FileNotFoundError:
        return None
