"""The watershed's seeds: the same as the per-component algorithm they
replace, with a number of passes over the volume that does not grow with the
number of components (the timings are in benchmarks/bench_watershed.py)."""

import numpy as np
import pytest
from scipy import ndimage
from skimage import morphology, segmentation

from gp_hotdistance import postprocess
from gp_hotdistance.postprocess import instance_segmentation


def old_seeds(depth, components, count, voxel_size, min_distance, min_prominence):
    """The seeds as the package computed them before: one
    ``ndimage.maximum_position`` per component without a seed (the oracle)."""
    full = ndimage.generate_binary_structure(depth.ndim, depth.ndim)
    if min_prominence > 0:
        landscape = morphology.reconstruction(
            np.maximum(depth - min_prominence, 0), depth, method="dilation", footprint=full
        )
    else:
        landscape = depth
    peaks = morphology.local_maxima(landscape, connectivity=depth.ndim, allow_borders=True)
    peaks &= depth > 0
    regions, n = ndimage.label(peaks, structure=full)
    if n:
        index = np.arange(1, n + 1)
        heights = np.asarray(ndimage.maximum(depth, regions, index))
        positions = np.asarray(ndimage.maximum_position(depth, regions, index), dtype=float)
        keep = postprocess._thin(positions * np.asarray(voxel_size), heights, min_distance)
        lookup = np.zeros(n + 1, np.int64)
        lookup[1:][keep] = np.arange(1, int(keep.sum()) + 1)
        regions = lookup[regions]
        n = int(keep.sum())
    seeded = np.zeros(count + 1, bool)
    seeded[np.unique(components[regions > 0])] = True
    for label in np.flatnonzero(~seeded[1:]) + 1:
        position = ndimage.maximum_position(depth, components, label)
        n += 1
        regions[position] = n
    return regions


def old_instances(distance, voxel_size, scale_factor, threshold=0.0, connectivity=1):
    foreground = distance > threshold
    structure = ndimage.generate_binary_structure(distance.ndim, connectivity)
    components, count = ndimage.label(foreground, structure=structure)
    if count == 0:
        return components.astype(np.uint64)
    depth = ndimage.distance_transform_edt(foreground, sampling=voxel_size)
    seeds = old_seeds(depth, components, count, voxel_size, 2.0 * scale_factor, 0.5 * scale_factor)
    labels = segmentation.watershed(
        -depth, markers=seeds, mask=foreground, connectivity=connectivity
    )
    return labels.astype(np.uint64)


def specks(edge, pitch=3):
    """One-voxel specks on a grid of ``pitch``: the distance of a prediction
    that is noise."""
    distance = np.full((edge,) * 3, -0.5)
    distance[::pitch, ::pitch, ::pitch] = 0.5
    return distance


def noise(shape, seed, sigma, share):
    """Smoothed noise, its top ``share`` positive: blobs of many sizes and
    shapes, some joined by necks (their depths have many equal maxima)."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return np.where(field > np.quantile(field, 1 - share), 0.5, -0.5)


CASES = [
    ("specks", lambda: specks(10), (8, 8, 8), 16.0),
    ("specks pitch 2", lambda: specks(9, pitch=2), (8, 8, 8), 16.0),
    ("noise", lambda: noise((14, 15, 16), 0, 1.5, 0.3), (1, 1, 1), 2.0),
    ("noise anisotropic", lambda: noise((8, 20, 20), 1, 1.0, 0.25), (40, 4, 4), 16.0),
    ("noise 2-D", lambda: noise((40, 41), 2, 1.2, 0.4), (4, 4), 4.0),
    ("noise large scale", lambda: noise((12, 12, 12), 3, 1.0, 0.35), (1, 1, 1), 6.0),
]


@pytest.mark.parametrize("name, make, voxel_size, scale_factor", CASES, ids=[c[0] for c in CASES])
def test_seeds_and_instances_equal_the_per_component_algorithm(
    name, make, voxel_size, scale_factor
):
    distance = make()
    foreground = distance > 0
    components, count = ndimage.label(foreground)
    depth = ndimage.distance_transform_edt(foreground, sampling=voxel_size)
    for min_distance, min_prominence in [
        (2.0 * scale_factor, 0.5 * scale_factor),  # the defaults
        (0.0, 0.0),
        (5.0 * scale_factor, 3.0 * scale_factor),  # most components unseeded
    ]:
        expected = old_seeds(depth, components, count, voxel_size, min_distance, min_prominence)
        got = postprocess._seeds(depth, components, count, voxel_size, min_distance, min_prominence)
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(
        instance_segmentation(distance, voxel_size, scale_factor=scale_factor),
        old_instances(distance, voxel_size, scale_factor),
    )


def test_unseeded_components_take_the_first_of_equal_maxima():
    # a flat slab: every voxel at the same depth along x; the first in C order
    depth = np.zeros((1, 3, 6))
    depth[0, 1, 1:5] = 1.0
    components, count = ndimage.label(depth > 0)
    seeds = postprocess._seeds(depth, components, count, (1, 1, 1), 0.0, 5.0)
    assert list(zip(*np.nonzero(seeds))) == [(0, 1, 1)]


class _CountingNdimage:
    """scipy.ndimage, counting the calls made through it."""

    def __init__(self):
        self.calls = 0

    def __getattr__(self, name):
        function = getattr(ndimage, name)

        def counted(*args, **kwargs):
            self.calls += 1
            return function(*args, **kwargs)

        return counted


def test_passes_over_the_volume_do_not_grow_with_the_components(monkeypatch):
    """The watershed calls scipy.ndimage the same number of times for 8 specks
    and for 343: each call is a pass over the volume, so a call per component
    makes the time quadratic."""
    calls = []
    for edge in (6, 21):  # 2^3 and 7^3 specks
        counting = _CountingNdimage()
        monkeypatch.setattr(postprocess, "ndimage", counting)
        labels = instance_segmentation(specks(edge), (8, 8, 8), scale_factor=16.0)
        monkeypatch.undo()
        assert int(labels.max()) == np.count_nonzero(specks(edge) > 0)
        calls.append(counting.calls)
    assert calls[0] == calls[1], calls
