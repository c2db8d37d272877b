"""The outputs of a :mod:`gp_hotdistance.precompute` run: what to do with
what already exists at their names (:func:`claim_outputs`: refuse it, remove
it with ``overwrite`` if this package wrote it, or resume it), and creating
them (:func:`create_outputs`, and :func:`prepare_log_dir` for daisy's worker
logs), all before any block is scheduled. ``job`` is always
:mod:`gp_hotdistance.precompute`'s plan of the run. Private: see
:func:`gp_hotdistance.precompute.precompute_target`.
"""

import json
import logging
import os
import shutil

import numpy as np
import zarr
from funlib.persistence import prepare_ds

from .._arrays import CHANNEL_AXIS
from ._checks import is_array

logger = logging.getLogger(__name__)

# the attribute that marks a dataset as written by this package
OWNER_ATTRIBUTE = "gp_hotdistance"

# zarr 3 writes format 3 unless told otherwise; zarr 2 knows format 2 only
_ZARR_3 = int(zarr.__version__.split(".")[0]) >= 3


def claim_outputs(job, done, overwrite):
    """Refuse, remove (with ``overwrite``, only what this package wrote) or
    keep (to resume) what exists at the output names; whether to resume.

    ``job`` is :mod:`gp_hotdistance.precompute`'s plan of the run; ``done``
    the name of its done-marker dataset. Every check is done before anything
    is removed."""
    _check_parents(job)
    existing = [name for name in job.outputs if os.path.lexists(job.path(name))]
    if not existing:
        return False
    ours = {name: _owner_settings(job.path(name)) for name in existing}
    if overwrite:
        foreign = [name for name in existing if ours[name] is None]
        if foreign:
            raise FileExistsError(
                f"output {foreign[0]!r} exists at {job.path(foreign[0])!r} and was not "
                f"written by gp_hotdistance (no {OWNER_ATTRIBUTE!r} attribute); "
                f"overwrite only replaces this package's outputs: move it away or "
                f"choose another out"
            )
        for name in existing:
            logger.info("removing %s, written by an earlier run", job.path(name))
            shutil.rmtree(job.path(name))
        return False
    if done in ours and all(ours.values()):
        previous = ours[done]
        if previous == job.settings and len(existing) == len(job.outputs):
            return True
        differences = ", ".join(
            f"{key}: {previous.get(key)!r} then, {job.settings.get(key)!r} now"
            for key in list(job.settings) + [k for k in previous if k not in job.settings]
            if previous.get(key) != job.settings.get(key)
        )
        if not differences:  # same settings, but an output was removed since
            missing = [name for name in job.outputs if name not in ours]
            raise FileExistsError(
                f"output {job.out!r} exists in {job.container!r} from a run with these "
                f"settings, but {', '.join(map(repr, missing))} is missing, so it "
                f"cannot be resumed; pass overwrite=True (--overwrite) to replace it"
            )
        raise FileExistsError(
            f"output {job.out!r} exists in {job.container!r} from a run with other "
            f"settings ({differences}); pass overwrite=True (--overwrite) to "
            f"replace it"
        )
    raise FileExistsError(
        f"output {existing[0]!r} already exists at {job.path(existing[0])!r} and "
        f"is not an interrupted precompute run to resume; nothing was written. "
        f"Choose another out, or pass overwrite=True (--overwrite) to replace it "
        f"if gp_hotdistance wrote it"
    )


def _check_parents(job):
    """Raise unless each output's parent folders are folders that are not
    zarr arrays (or do not exist yet)."""
    for output in job.outputs:
        parts = output.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            path = job.path(parent)
            if not os.path.lexists(path):
                break
            if not os.path.isdir(path) or is_array(path):
                raise FileExistsError(
                    f"output {output!r} would lie inside {parent!r} "
                    f"({path!r}), which is not a group or folder; choose another out"
                )


def _owner_settings(path):
    """The settings a run of this package stored at the zarr array
    ``path``; ``None`` if ``path`` is anything else."""
    if not os.path.isdir(path) or os.path.islink(path):
        return None
    try:
        node = zarr.open(path, mode="r")
    except Exception:  # noqa: BLE001 - zarr 2 and 3 raise different errors
        return None
    if not isinstance(node, zarr.Array):
        return None
    settings = node.attrs.asdict().get(OWNER_ATTRIBUTE)
    if isinstance(settings, dict) and "layout" in settings:
        return settings
    return None


def create_outputs(job, done, distance_mask):
    """Create the target, the distance mask (named ``distance_mask``, ``None``
    for none) and (last, so that a run killed while creating them does not
    resume) the done markers (named ``done``)."""
    gt_array = job.gt_array
    voxel_size = gt_array.voxel_size
    spatial = voxel_size.dims
    shape = tuple(gt_array.roi.shape / voxel_size)
    spatial_names = list(gt_array.axis_names[-spatial:])
    fmt = {"zarr_format": job.zarr_format} if _ZARR_3 else {}
    predictor = job.predictor
    datasets = [
        (
            job.out,
            predictor.embedding_dims,
            np.float32,
            list(predictor.output_array_type.channel_names),
        ),
    ]
    if distance_mask is not None:
        datasets.append(
            (
                distance_mask,
                predictor.classes,
                np.uint8,
                [f"{name}_distance_mask" for name in predictor.channels],
            )
        )
    for name, channels, dtype, channel_names in datasets:
        prepare_ds(
            job.path(name),
            shape=(channels,) + shape,
            offset=gt_array.roi.offset,
            voxel_size=voxel_size,
            axis_names=[CHANNEL_AXIS] + spatial_names,
            units=list(gt_array.units),
            types=["channel"] + ["space"] * spatial,
            chunk_shape=(channels,) + tuple(job.block_voxels),
            dtype=dtype,
            mode="w-",
            custom_metadata={
                "channel_names": channel_names,
                OWNER_ATTRIBUTE: job.settings,
            },
            **fmt,
        )
    # one chunk per block, so that workers never write the same chunk
    markers = zarr.open_array(
        job.path(done),
        mode="w-",
        shape=job.grid,
        chunks=(1,) * spatial,
        dtype=np.uint8,
        fill_value=0,
        **fmt,
    )
    markers.attrs[OWNER_ATTRIBUTE] = job.settings
    refresh_consolidated(job.container, job.outputs)


def refresh_consolidated(container, outputs):
    """Consolidate the metadata of ``container`` again if its root has
    consolidated metadata (zarr 2 ``.zmetadata``, zarr 3
    ``consolidated_metadata`` in ``zarr.json``), so that readers who use it
    see the new ``outputs``; a container without any is left so. The
    folders above the outputs become groups first: consolidation (and zarr
    3) only sees arrays whose parents are groups."""
    if os.path.isfile(os.path.join(container, ".zmetadata")):
        fmt = 2
    else:
        try:
            with open(os.path.join(container, "zarr.json")) as file:
                root = json.load(file)
        except (OSError, ValueError):
            return
        if not isinstance(root, dict) or root.get("consolidated_metadata") is None:
            return
        fmt = 3
    options = {"zarr_format": fmt} if _ZARR_3 else {}
    group_file = ".zgroup" if fmt == 2 else "zarr.json"
    for output in outputs:
        parts = output.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            path = os.path.join(container, *parts[:depth])
            if not os.path.exists(os.path.join(path, group_file)):
                zarr.open_group(path, mode="a", **options)
    logger.info("consolidating the metadata of %s again", container)
    zarr.consolidate_metadata(container, **options)


def prepare_log_dir(log_dir):
    """Make ``log_dir`` (daisy's worker logs) before any output is written:
    a path that cannot be a directory failed in every worker, after the
    outputs were made."""
    if log_dir is None:
        return
    if not isinstance(log_dir, (str, os.PathLike)):
        raise TypeError(f"log_dir must be a path (str), got {log_dir!r}")
    try:
        os.makedirs(log_dir, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"log_dir {os.fspath(log_dir)!r} cannot be made a directory for the "
            f"workers' logs: {error}"
        ) from None
