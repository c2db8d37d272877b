"""funlib.persistence arrays in and out of the predictor (private)."""

import numpy as np
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
    return np.asarray(array[array.roi])


def like(data, template):
    """``data`` (channels first) as an ``Array`` with ``template``'s offset,
    voxel size, units and spatial axis names."""
    spatial = template.voxel_size.dims
    return Array(
        data,
        offset=template.roi.offset,
        voxel_size=template.voxel_size,
        axis_names=[CHANNEL_AXIS] + list(template.axis_names[-spatial:]),
        units=template.units,
        types=["channel"] + ["space"] * spatial,
    )
