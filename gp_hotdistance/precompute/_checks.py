"""Checks and dataset helpers for :mod:`gp_hotdistance.precompute`: dataset
names, clashes between outputs and inputs, the inputs' metadata and a sample
of their values, and the settings a resumed run must share. (What exists at
the output names is dealt with in :mod:`gp_hotdistance.precompute._output`.)
Private: see :func:`gp_hotdistance.precompute.precompute_target`.
"""

import json
import numbers
import os

import dask
import numpy as np
import zarr
from funlib.geometry import Coordinate, Roi
from funlib.persistence import open_ds

#: Edge of a write block in voxels, along every axis, when none is given.
DEFAULT_BLOCK_SIZE = 64

# version of the layout of the done markers and settings; a run only resumes
# a run of the same layout
LAYOUT = 1


class InvalidDataError(ValueError):
    """A value in the gt or mask dataset is not 0 or 1; retrying cannot fix
    it. The message names the dataset, the values and the block."""


def dataset_name(value, role):
    """``value`` as a dataset name relative to the container: ``a/b``."""
    if not isinstance(value, str):
        raise TypeError(f"{role} must be a dataset name (str), got {value!r}")
    parts = value.strip("/").split("/")
    if not all(parts) or any(part in (".", "..") for part in parts):
        raise ValueError(
            f"{role} must be a dataset name inside the container, such as "
            f"'volumes/gt', got {value!r}"
        )
    return "/".join(parts)


def check_clashes(container, out, outputs, inputs):
    """Raise unless every output lies apart from every input: not the same
    path, not a folder above it, not inside it (symbolic links resolved)."""
    for output in outputs:
        output_path = os.path.realpath(os.path.join(container, output))
        for role, name in inputs.items():
            input_path = os.path.realpath(os.path.join(container, name))
            if output_path == input_path:
                relation = "is"
            elif os.path.commonpath([output_path, input_path]) == output_path:
                relation = "contains"
            elif os.path.commonpath([output_path, input_path]) == input_path:
                relation = "lies inside"
            else:
                continue
            raise ValueError(
                f"out {out!r} would write over the input {name!r} ({role}): the "
                f"output {output!r} {relation} it. The outputs are "
                f"{', '.join(map(repr, outputs))}; choose another out"
            )


def is_array(path):
    """Whether ``path`` holds a zarr array (of either format)."""
    try:
        return isinstance(zarr.open(path, mode="r"), zarr.Array)
    except Exception:  # noqa: BLE001 - zarr 2 and 3 raise different errors
        return False


def zarr_format(path):
    """The zarr format (2 or 3) of the array at ``path``."""
    array = zarr.open_array(path, mode="r")
    return int(getattr(getattr(array, "metadata", None), "zarr_format", 2))


_ZARR_3 = int(zarr.__version__.split(".")[0]) >= 3


def open_dataset(container, dataset, role):
    path = os.path.join(container, dataset)
    if not is_array(path):
        if not _ZARR_3 and os.path.isfile(os.path.join(path, "zarr.json")):
            raise ValueError(
                f"{role} dataset {dataset!r} in {container!r} is zarr format 3 "
                f"(zarr.json), which zarr {zarr.__version__} cannot read: use it with "
                f"zarr 3 (zarr>=3 and funlib.persistence>=0.7), or write it as zarr "
                f"format 2"
            )
        raise FileNotFoundError(f"{role} dataset {dataset!r} does not exist in {container!r}")
    array = open_ds(path)
    if not 1 <= array.voxel_size.dims <= 3:
        raise ValueError(
            f"{role} dataset {dataset!r} must have 1 to 3 spatial axes, "
            f"got voxel size {array.voxel_size}"
        )
    if array.dtype != bool and not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(
            f"{role} dataset {dataset!r} must be a bool, integer or float array "
            f"(binary), got dtype {array.dtype}"
        )
    return array


def _channel_count(array, role, dataset):
    """Channels of a dataset (funlib's ``channel_dims``): ``None`` without a
    channel axis."""
    if array.channel_dims == 0:
        return None
    if array.channel_dims != 1:
        raise ValueError(
            f"{role} dataset {dataset!r}: expected at most one channel axis before "
            f"the spatial axes, got shape {array.shape} with voxel size "
            f"{array.voxel_size}"
        )
    return array.shape[0]


def check_channels(gt_array, predictor, dataset):
    channels = _channel_count(gt_array, "gt", dataset)
    if predictor.groups is not None:
        if channels is not None:
            raise ValueError(
                f"gt dataset {dataset!r} has {channels} channels (shape "
                f"{gt_array.shape}), but the predictor's classes are groups of label "
                f"ids: it needs one label image without a channel axis"
            )
        if not np.issubdtype(gt_array.dtype, np.integer):
            raise TypeError(
                f"gt dataset {dataset!r} must be an integer label image when the "
                f"classes are groups of label ids, got dtype {gt_array.dtype}"
            )
        return
    if channels is None and predictor.classes == 1:
        return
    if channels != predictor.classes:
        found = "no channel axis" if channels is None else f"{channels} channels"
        raise ValueError(
            f"gt dataset {dataset!r} has {found} (shape {gt_array.shape}), but "
            f"{predictor.classes} classes were given ({','.join(predictor.channels)}); "
            f"it needs one channel per class"
        )


def check_mask(mask_array, gt_array, predictor, dataset):
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
    channels = _channel_count(mask_array, "mask", dataset)
    if channels is not None and channels != predictor.classes:
        raise ValueError(
            f"mask dataset {dataset!r} has {channels} channels (shape "
            f"{mask_array.shape}); it needs one per class ({predictor.classes}) or none"
        )


def check_values(job, sample_blocks):
    """Raise :class:`InvalidDataError` if one of ``sample_blocks`` blocks of
    the gt or the mask, spread evenly over the block grid, holds a value
    other than 0 and 1. ``job`` is :mod:`gp_hotdistance.precompute`'s plan
    of the run."""
    grid = job.grid
    count = int(np.prod(grid))
    picks = np.unique(np.linspace(0, count - 1, min(sample_blocks, count)).astype(int))
    # a label image (the predictor's groups) may hold any id
    datasets = [] if job.predictor.groups is not None else [("gt", job.gt, job.gt_array)]
    if job.mask is not None:
        datasets.append(("mask", job.mask, job.mask_array))
    for flat in picks:
        index = tuple(int(i) for i in np.unravel_index(flat, grid))
        roi = Roi(
            job.gt_array.roi.offset + Coordinate(index) * job.block_world,
            job.block_world,
        ).intersect(job.gt_array.roi)
        for role, name, array in datasets:
            try:
                with dask.config.set(scheduler="synchronous"):
                    values = np.unique(np.asarray(array[roi]))
            except Exception:  # noqa: BLE001, S112 - an unreadable chunk fails its blocks in the run, with a message
                continue
            odd = values[(values != 0) & (values != 1)]
            if odd.size:
                raise InvalidDataError(
                    f"{role} dataset {name!r} holds {odd[:5].tolist()} in block "
                    f"{index} (ROI {roi}), found before the run; it must hold only "
                    f"0 and 1 (binary, one channel per class): nothing was written"
                )


def check_count(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_worker_command(template):
    """``template`` (a shell command with ``{command}``), or ``None``."""
    if template is None:
        return None
    if not isinstance(template, str):
        raise TypeError(
            f"worker_command must be a shell command (str) with {{command}}, got {template!r}"
        )
    if "{command}" not in template:
        raise ValueError(
            f"worker_command must contain {{command}} where the worker's command "
            f"line goes, e.g. 'srun -n1 {{command}}', got {template!r}"
        )
    return template


def as_roi(roi, gt_roi, block_world):
    """The world ROI of the blocks that cover ``roi`` (a ``Roi`` or an
    ``(offset, shape)`` pair in world units), snapped outward to the block
    grid and cut to ``gt_roi``; ``gt_roi`` for ``None``."""
    if roi is None:
        return gt_roi
    dims = gt_roi.dims
    if not isinstance(roi, Roi):
        try:
            offset, shape = roi
            roi = Roi(Coordinate(offset), Coordinate(shape))
        except (TypeError, ValueError):
            raise TypeError(
                f"roi must be a funlib Roi or (offset, shape) in world units, "
                f"{dims} numbers each (z-y-x), got {roi!r}"
            ) from None
    if roi.dims != dims or roi.unbounded or None in roi.shape:
        raise ValueError(f"roi must have {dims} spatial axes (z-y-x, world units), got {roi}")
    if any(size <= 0 for size in roi.shape):
        raise ValueError(f"roi must not be empty, got {roi} (shape {roi.shape})")
    if not gt_roi.contains(roi):
        raise ValueError(f"roi {roi} must lie inside the gt's ROI {gt_roi}")
    origin = gt_roi.offset
    begin = origin + ((roi.begin - origin) / block_world) * block_world
    end = origin + ((roi.end - origin + block_world - 1) / block_world) * block_world
    return Roi(begin, end - begin).intersect(gt_roi)


def as_block_size(block_size, spatial_dims):
    if block_size is None:
        return (DEFAULT_BLOCK_SIZE,) * spatial_dims
    if isinstance(block_size, numbers.Integral) and not isinstance(block_size, bool):
        block_size = (block_size,) * spatial_dims
    try:
        block_size = tuple(block_size)
    except TypeError:
        raise ValueError(
            f"block_size must be an int or {spatial_dims} ints (voxels, z-y-x), got {block_size!r}"
        ) from None
    if len(block_size) != spatial_dims or not all(
        isinstance(b, numbers.Integral) and not isinstance(b, bool) and b > 0 for b in block_size
    ):
        raise ValueError(
            f"block_size must be {spatial_dims} positive ints (voxels, z-y-x), got {block_size!r}"
        )
    return tuple(int(b) for b in block_size)


def run_settings(gt, mask, predictor, gt_array, block_voxels):
    """Everything a resumed run must share with the run it resumes, as JSON."""
    settings = {
        "layout": LAYOUT,
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
    if predictor.groups is not None:
        # only with groups, so that the settings of binary gts stay as they were
        settings["groups"] = predictor.groups.settings(predictor.channels)
    return json.loads(json.dumps(settings))
