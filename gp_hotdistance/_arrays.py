"""funlib.persistence arrays and gunpowder array specs in and out of the
predictor (private)."""

import dask.array as da
import numpy as np
from funlib.geometry import Coordinate
from funlib.persistence import Array

#: Name of the channel axis of the arrays the package writes: funlib.persistence
#: names channel axes with a trailing "^".
CHANNEL_AXIS = "c^"


def array_data(array, name):
    """The data of a funlib.persistence ``array`` over its ROI, as numpy."""
    if not isinstance(array, Array):
        raise TypeError(
            f"{name} must be a funlib.persistence Array, got {type(array).__name__}"
        )
    spatial_dims = array.voxel_size.dims
    if not 1 <= spatial_dims <= 3:
        raise ValueError(
            f"{name} must have 1 to 3 spatial axes (z-y-x), got {spatial_dims} "
            f"(voxel size {array.voxel_size})"
        )
    data = array.data  # the whole ROI, lazy operations applied
    if isinstance(data, np.ndarray):
        return data
    # one synchronous compute: dask's threaded scheduler would cost a round
    # trip through its thread pool for what is, for in-memory data, one slice
    return np.asarray(data.compute(scheduler="synchronous"))


def like(data, template):
    """``data`` (channels first) as an ``Array`` with ``template``'s offset,
    voxel size, units and spatial axis names."""
    spatial = template.voxel_size.dims
    # named at random (name=False): dask would otherwise hash all the data to
    # name the array
    return Array(
        da.from_array(data, chunks=data.shape, name=False),
        offset=template.roi.offset,
        voxel_size=template.voxel_size,
        axis_names=[CHANNEL_AXIS] + list(template.axis_names[-spatial:]),
        units=template.units,
        types=["channel"] + ["space"] * spatial,
    )


def check_aligned(gt, **others):
    """Raise unless each of ``others`` (name: ``Array`` or ``None``) has the
    voxel size and ROI of ``gt``: the same shape but shifted would pair the
    wrong voxels without an error."""
    for name, other in others.items():
        if other is not None and Coordinate(other.voxel_size) != Coordinate(gt.voxel_size):
            raise ValueError(
                f"{name} voxel size {other.voxel_size} must equal gt voxel size "
                f"{gt.voxel_size}"
            )
    for name, other in others.items():
        if other is not None and other.roi != gt.roi:
            raise ValueError(f"{name} ROI {other.roi} must equal gt ROI {gt.roi}")


def spec_roi(spec, name):
    """The ROI (``None`` if unset) and voxel size (a ``Coordinate``) of a
    gunpowder ``ArraySpec``; raise unless the ROI, when set, lies on the voxel
    grid. Read by attribute, so the predictor needs no gunpowder."""
    if not hasattr(spec, "roi") or not hasattr(spec, "copy"):
        raise TypeError(
            f"{name} must be an ArraySpec with roi and voxel_size, "
            f"got {type(spec).__name__}"
        )
    if spec.voxel_size is None:
        raise ValueError(f"{name}.voxel_size must be set to grow its ROI")
    roi, voxel_size = spec.roi, Coordinate(spec.voxel_size)
    if roi is not None:
        if roi.dims != voxel_size.dims:
            raise ValueError(
                f"{name}.roi has {roi.dims} dimensions but voxel_size "
                f"{voxel_size} has {voxel_size.dims}"
            )
        if not roi.unbounded and roi != roi.snap_to_grid(voxel_size, mode="grow"):
            raise ValueError(f"{name}.roi {roi} is not on the voxel grid {voxel_size}")
    return roi, voxel_size
