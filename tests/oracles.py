"""Independent oracles for the face distance, used by the tests and benchmarks.

None shares code with the package:

- :func:`brute_force_face_distance` measures from every voxel centre to every
  face centre between two voxels of different label (small volumes only);
- :func:`doubled_grid_face_distance` is the reference implementation's
  formulation: label changes marked on a grid doubled along every axis, a
  Euclidean distance transform with half the voxel size, then every second
  sample.
"""

import numpy as np
from scipy import ndimage


def label_changes(labels, axis):
    """Whether each voxel's label differs from the next one's along ``axis``:
    one face per ``True``, shape ``labels.shape`` with one less along
    ``axis``."""
    lower = [slice(None)] * labels.ndim
    upper = [slice(None)] * labels.ndim
    lower[axis] = slice(0, -1)
    upper[axis] = slice(1, None)
    return labels[tuple(lower)] != labels[tuple(upper)]


def face_centres(labels):
    """Index coordinates of the centres of all faces between two voxels of
    different label, shape ``(faces, ndim)``."""
    labels = np.asarray(labels)
    centres = []
    for axis in range(labels.ndim):
        found = np.argwhere(label_changes(labels, axis)).astype(np.float64)
        found[:, axis] += 0.5
        centres.append(found)
    return np.concatenate(centres)


def brute_force_face_distance(labels, voxel_size):
    """Distance from every voxel centre to the nearest face centre (float64);
    ``inf`` where there is no face."""
    labels = np.asarray(labels)
    spacing = np.asarray(voxel_size, dtype=np.float64)
    faces = face_centres(labels) * spacing
    if len(faces) == 0:
        return np.full(labels.shape, np.inf)
    voxels = np.indices(labels.shape).reshape(labels.ndim, -1).T * spacing
    distances = np.empty(len(voxels))
    for start in range(0, len(voxels), 4096):
        block = voxels[start : start + 4096]
        squared = ((block[:, None, :] - faces[None, :, :]) ** 2).sum(axis=-1)
        distances[start : start + 4096] = np.sqrt(squared.min(axis=1))
    return distances.reshape(labels.shape)


def doubled_grid_face_distance(labels, voxel_size):
    """The reference implementation's face distance (float32); ``inf`` where
    there is no face."""
    labels = np.asarray(labels)
    doubled_shape = tuple(2 * s - 1 for s in labels.shape)
    boundaries = np.zeros(doubled_shape, dtype=bool)
    for axis in range(labels.ndim):
        changes = label_changes(labels, axis)
        on_doubled = [slice(None, None, 2)] * labels.ndim
        on_doubled[axis] = slice(1, None, 2)
        boundaries[tuple(on_doubled)] = changes
    if not boundaries.any():
        return np.full(labels.shape, np.inf, dtype=np.float32)
    half_voxel = tuple(float(v) / 2 for v in voxel_size)
    distances = ndimage.distance_transform_edt(~boundaries, sampling=half_voxel)
    return distances[(slice(None, None, 2),) * labels.ndim].astype(np.float32)


def reference_hot_distance_target(gt, voxel_size, scale_factor):
    """The hot-distance target the reference way (doubled grid per channel),
    with channels that have no face saturated to +-1 as the package does."""
    gt = np.asarray(gt)
    distances = []
    for channel in gt:
        d = doubled_grid_face_distance(channel, voxel_size)
        d = np.where(channel != 0, d, -d)
        distances.append(np.tanh(d / scale_factor).astype(np.float32))
    return np.concatenate([gt.astype(np.float32), np.stack(distances)])
