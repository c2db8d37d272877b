"""funlib.persistence arrays and gunpowder array specs in and out of the
predictor (private)."""

import uuid

import dask.array as da
import numpy as np
from dask.local import get_sync
from funlib.geometry import Coordinate
from funlib.persistence import Array

#: Name of the channel axis of the arrays the package writes: funlib.persistence
#: names channel axes with a trailing "^".
CHANNEL_AXIS = "c^"


def array_data(array, name):
    """The data of a funlib.persistence ``array`` over its ROI, as numpy."""
    if not isinstance(array, Array):
        raise TypeError(f"{name} must be a funlib.persistence Array, got {type(array).__name__}")
    spatial_dims = array.voxel_size.dims
    if not 1 <= spatial_dims <= 3:
        raise ValueError(
            f"{name} must have 1 to 3 spatial axes (z-y-x), got {spatial_dims} "
            f"(voxel size {array.voxel_size})"
        )
    names = list(getattr(array, "axis_names", None) or [])
    types = list(getattr(array, "types", None) or [])
    if any(kind not in ("space", "time") for kind in types[len(types) - spatial_dims :]):
        # the package reads channels first, then z-y-x; read otherwise, the
        # array's axes would be silently mixed up
        raise ValueError(
            f"{name} must have its channel axes before its spatial axes, got "
            f"axis_names {names} (types {types}); move the channel axis first (e.g. numpy's "
            f"moveaxis) when making the Array"
        )
    data = array.data  # the whole ROI, lazy operations applied
    if isinstance(data, np.ndarray):
        return data
    return _dask_to_numpy(data)


def _dask_to_numpy(data):
    """A dask array's data, computed in this thread.

    ``compute()`` would go through dask's threaded scheduler (a round trip
    through its thread pool for what is, for in-memory data, one slice) and
    copy a single chunk; the package only reads its inputs, so the chunks
    are taken as the synchronous scheduler returns them.
    """
    chunks = get_sync(data.__dask_graph__(), data.__dask_keys__())
    # nested like the chunk grid (lists or tuples), one level per axis
    while isinstance(chunks, (list, tuple)) and len(chunks) == 1:
        chunks = chunks[0]
    if isinstance(chunks, (list, tuple)):
        chunks = np.block(_as_lists(chunks))
    return np.asarray(chunks)


def _as_lists(nested):
    if isinstance(nested, (list, tuple)):
        return [_as_lists(item) for item in nested]
    return nested


def like(data, template):
    """``data`` (channels first) as an ``Array`` with ``template``'s offset,
    voxel size, units and spatial axis names."""
    spatial = template.voxel_size.dims
    return Array(
        _numpy_to_dask(data),
        offset=template.roi.offset,
        voxel_size=template.voxel_size,
        axis_names=[CHANNEL_AXIS] + list(template.axis_names[-spatial:]),
        units=template.units,
        types=["channel"] + ["space"] * spatial,
    )


def _numpy_to_dask(data):
    """``data`` as a one-chunk dask array, without copying or hashing it
    (``dask.array.from_array`` does both: a copy, and a hash of all the data
    to name the array, unless it is given a name)."""
    name = f"gp_hotdistance-{uuid.uuid4().hex}"
    key = (name,) + (0,) * data.ndim
    return da.Array({key: data}, name, chunks=tuple((n,) for n in data.shape), dtype=data.dtype)


def check_aligned(gt, **others):
    """Raise unless each of ``others`` (name: ``Array`` or ``None``) has the
    voxel size and ROI of ``gt``: the same shape but shifted would pair the
    wrong voxels without an error."""
    for name, other in others.items():
        if other is not None and Coordinate(other.voxel_size) != Coordinate(gt.voxel_size):
            raise ValueError(
                f"{name} voxel size {other.voxel_size} must equal gt voxel size {gt.voxel_size}"
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
            f"{name} must be an ArraySpec with roi and voxel_size, got {type(spec).__name__}"
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
