"""threshold_segmentation and instance_segmentation: touching spheres joined
by a neck come apart, isolated objects and tubes stay whole."""

import numpy as np
import pytest

from gp_hotdistance import hot_distance_target, instance_segmentation, threshold_segmentation


def balls(shape, voxel_size, centres, radius):
    """Union of balls (world units) on a voxel grid, and each voxel's nearest
    centre."""
    grid = np.indices(shape).astype(float) * np.asarray(voxel_size, float)[:, None, None, None]
    distances = np.stack(
        [np.sqrt(((grid - np.asarray(c, float)[:, None, None, None]) ** 2).sum(0)) for c in centres]
    )
    nearest = distances.argmin(0)
    if len(centres) > 1:  # -1 where two centres are nearly as near (within a voxel)
        ordered = np.sort(distances, axis=0)
        nearest[ordered[1] - ordered[0] < max(voxel_size)] = -1
    return (distances < radius).any(0), nearest


def predicted_distance(labels, voxel_size, scale_factor):
    """The target's distance channel: what a perfect network predicts."""
    return hot_distance_target(labels[None].astype(np.uint8), voxel_size, scale_factor)[1]


def test_threshold_segmentation_against_a_loop():
    rng = np.random.default_rng(0)
    distances = rng.choice([-1.0, -0.3, 0.0, 0.2, 0.25, 1.0], size=(2, 3, 4, 5))
    for threshold in (0.0, 0.2, -0.5):
        result = threshold_segmentation(distances, threshold)
        assert result.dtype == np.uint8 and result.shape == distances.shape
        for index in np.ndindex(distances.shape):
            assert result[index] == (1 if distances[index] > threshold else 0)


@pytest.mark.parametrize(
    "voxel_size, radius, gap, scale_factor",
    [
        ((1, 1, 1), 8.0, 14.0, 2.0),  # the case: radius 8 voxels, centres 14 apart
        ((1, 1, 1), 8.0, 14.0, 4.0),
        ((2, 1, 1), 16.0, 28.0, 4.0),  # anisotropic: 8 voxels in z, 16 in y and x
    ],
)
def test_two_spheres_with_a_neck_are_two_instances(voxel_size, radius, gap, scale_factor):
    extent = np.array([2 * radius + 8, 2 * radius + 8, 2 * radius + gap + 8])
    shape = tuple(int(e // v) for e, v in zip(extent, voxel_size))
    centre = np.array([extent[0] / 2, extent[1] / 2, extent[2] / 2 - gap / 2])
    other = centre + [0, 0, gap]
    labels, nearest = balls(shape, voxel_size, [centre, other], radius)
    distance = predicted_distance(labels, voxel_size, scale_factor)
    # a neck: the mid-plane between the centres is foreground
    assert labels[:, :, int(round(extent[2] / 2 / voxel_size[2]))].any()
    components = instance_segmentation(distance, voxel_size, method="components")
    assert components.max() == 1

    instances = instance_segmentation(distance, voxel_size, scale_factor=scale_factor)
    assert instances.dtype == np.uint64
    assert instances.max() == 2
    np.testing.assert_array_equal(instances > 0, labels)  # every foreground voxel, nothing else
    # each instance is one sphere: voxels nearer one centre than the other
    ids = [instances[tuple(np.round(c / voxel_size).astype(int))] for c in (centre, other)]
    assert set(ids) == {1, 2}
    clear = labels & (nearest >= 0)  # away from the neck's mid-plane
    expected = np.where(nearest == 0, ids[0], ids[1])[clear]
    np.testing.assert_array_equal(instances[clear], expected)


def test_an_isolated_sphere_and_a_tube_stay_whole():
    voxel_size = (2.0, 1.0, 1.0)
    shape = (20, 30, 60)
    sphere, _ = balls(shape, voxel_size, [(20, 15, 12)], 9.0)
    grid = np.indices(shape).astype(float) * np.asarray(voxel_size)[:, None, None, None]
    # a tube of radius 5 along x, with a gentle bend
    tube = (
        ((grid[0] - 20) ** 2 + (grid[1] - 15 - 3 * np.sin(grid[2] / 12)) ** 2 < 25)
        & (grid[2] > 26)
        & (grid[2] < 58)
    )
    labels = sphere | tube
    assert not (sphere & tube).any()
    distance = predicted_distance(labels, voxel_size, 2.0)
    instances = instance_segmentation(distance, voxel_size, scale_factor=2.0)
    assert instances.max() == 2
    assert len(np.unique(instances[sphere])) == 1
    assert len(np.unique(instances[tube])) == 1


def test_small_objects_are_kept_and_min_distance_merges_seeds():
    # two one-voxel objects lower than min_prominence still get an instance each
    distance = np.full((5, 5, 9), -0.5)
    distance[2, 2, 2] = distance[2, 2, 6] = 0.5
    instances = instance_segmentation(distance, (1, 1, 1), scale_factor=10.0)
    assert sorted(np.unique(instances).tolist()) == [0, 1, 2]
    # two spheres with a neck, seeds closer than min_distance: one instance
    labels, _ = balls((24, 24, 40), (1, 1, 1), [(12, 12, 13), (12, 12, 27)], 8.0)
    distance = predicted_distance(labels, (1, 1, 1), 2.0)
    assert (
        instance_segmentation(distance, (1, 1, 1), min_distance=15.0, min_prominence=1.0).max() == 1
    )
    assert (
        instance_segmentation(distance, (1, 1, 1), min_distance=13.0, min_prominence=1.0).max() == 2
    )
    # an empty foreground
    assert instance_segmentation(np.full((3, 3), -1.0), (1, 1), scale_factor=1.0).max() == 0


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda d: instance_segmentation(d, (1, 1, 1)), ValueError, "scale_factor must be given"),
        (lambda d: instance_segmentation(d, (1, 1, 1), method="blobs"), ValueError, "method"),
        (
            lambda d: instance_segmentation(d, (1, 1, 1), method="components", connectivity=4),
            ValueError,
            "connectivity",
        ),
        (lambda d: instance_segmentation(d, (1, 1), scale_factor=1.0), ValueError, "voxel_size"),
        (
            lambda d: instance_segmentation(d, (1, 1, 1), scale_factor=-1.0),
            ValueError,
            "scale_factor",
        ),
        (
            lambda d: instance_segmentation(d, (1, 1, 1), "0", scale_factor=1.0),
            TypeError,
            "threshold",
        ),
        (lambda d: threshold_segmentation(d[0], np.inf), ValueError, "threshold must be finite"),
        (lambda d: threshold_segmentation(np.where(d > 0, np.nan, d)), ValueError, "NaN"),
        (lambda d: threshold_segmentation(d.astype(str)), TypeError, "distances must be a float"),
    ],
)
def test_bad_input(call, error, message):
    distance = np.linspace(-1, 1, 4 * 5 * 6).reshape(4, 5, 6)
    with pytest.raises(error, match=message):
        call(distance)
