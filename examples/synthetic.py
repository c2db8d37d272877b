"""A synthetic EM-like volume with organelle-like classes, for the examples.

Three classes, one binary channel each, mutually exclusive:

* ``mito``: large blobby ellipsoids (dark),
* ``er``: thin winding tubes (a lighter grey),
* ``vesicle``: small balls (bright),

on a mid-grey, slowly varying cytoplasm. The raw channel is made from the
labels (an intensity per class, a gaussian blur, gaussian noise) and stored as
``uint8``. A per-class mask marks what is annotated: a box is unknown for all
classes (its gt is 0 there although the raw shows organelles, as in a partly
annotated crop), and ``er`` is also unknown in a slab at the top in z.

Sizes are in world units (nm), so anisotropic voxel sizes give the same
shapes.
"""

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

CLASSES = ("mito", "er", "vesicle")

# The same classes as one label image of part ids, as annotation tools and
# CellMap's crops store them: a mitochondrion is its membrane and its lumen,
# and the box that nobody annotated has an id of its own.
PART_IDS = {"mito_membrane": 1, "mito_lumen": 2, "er": 3, "vesicle": 4}
UNANNOTATED_ID = 255
#: Class name -> the part ids that make it up (``HotDistancePredictor(groups=...)``)
GROUPS = {"mito": [1, 2], "er": [3], "vesicle": [4]}
# thickness of the mitochondrial membrane, world units
MEMBRANE = 16.0

# intensity of each class and of the cytoplasm, in [0, 1]
INTENSITIES = {"mito": 0.25, "er": 0.40, "vesicle": 0.90}
BACKGROUND = 0.62
# standard deviation of the raw's gaussian noise, on the [0, 1] intensity scale
NOISE_STD = 0.06


def _world_grid(shape, voxel_size):
    """Voxel centre coordinates in world units, one array per axis (open grid)."""
    return [(np.arange(n, dtype=np.float32) + 0.5) * v for n, v in zip(shape, voxel_size)]


def _add_ellipsoids(labels, occupied, rng, voxel_size, count, semi_axes_range, spacing):
    """Paint up to ``count`` randomly rotated ellipsoids that do not come
    within ``spacing`` (world units) of anything in ``occupied``."""
    shape = labels.shape
    extent = np.array(shape) * np.array(voxel_size)
    grid = _world_grid(shape, voxel_size)
    keep_out = ndimage.distance_transform_edt(~occupied, sampling=voxel_size) <= spacing
    painted = 0
    for _ in range(count * 20):
        if painted == count:
            break
        semi_axes = rng.uniform(*semi_axes_range, size=3)
        centre = rng.uniform(0, extent)
        rotation = Rotation.random(random_state=rng).as_matrix()
        reach = semi_axes.max()
        lo = np.maximum(((centre - reach) / voxel_size).astype(int), 0)
        hi = np.minimum(np.ceil((centre + reach) / voxel_size).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        offsets = (
            np.stack(np.meshgrid(*[g[s] for g, s in zip(grid, box)], indexing="ij"), axis=-1)
            - centre
        )
        local = offsets @ rotation
        inside = ((local / semi_axes) ** 2).sum(-1) <= 1.0
        if not inside.any() or (inside & keep_out[box]).any():
            continue
        labels[box] |= inside
        grown = ndimage.distance_transform_edt(~inside, sampling=voxel_size) <= spacing
        keep_out[box] |= grown
        painted += 1
    return labels


def _add_tubes(labels, occupied, rng, voxel_size, count, length, radius, spacing):
    """Paint ``count`` smooth random tubes of ``length`` and ``radius`` (world
    units), kept ``spacing`` away from ``occupied``."""
    shape = np.array(labels.shape)
    extent = shape * np.array(voxel_size)
    centreline = np.zeros(labels.shape, dtype=bool)
    step = 0.5 * min(voxel_size)
    for _ in range(count):
        # a random walk with momentum (smooth, winding curves), reflected at
        # the volume's faces so every tube has the same length
        position = rng.uniform(0, extent)
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        for _ in range(int(length / step)):
            direction += rng.normal(scale=0.08, size=3)
            direction /= np.linalg.norm(direction)
            position = position + step * direction
            outside = (position < 0) | (position >= extent)
            direction[outside] *= -1
            position = np.clip(position, 0, np.nextafter(extent, 0))
            centreline[tuple((position / voxel_size).astype(int))] = True
    tube = ndimage.distance_transform_edt(~centreline, sampling=voxel_size) <= radius
    keep_out = ndimage.distance_transform_edt(~occupied, sampling=voxel_size) <= spacing
    labels |= tube & ~keep_out
    return labels


def make_volume(shape=(64, 128, 128), voxel_size=(8, 8, 8), seed=0):
    """The synthetic labels, raw and mask.

    Args:

        shape (3-tuple of ``int``):

            Voxels, z-y-x.

        voxel_size (3-tuple of ``int``):

            World units (nm) per voxel, z-y-x.

        seed (``int``):

            Seed of the random generator; the same seed gives the same volume.

    Returns:

        ``dict`` with ``raw`` (``uint8``, z-y-x), ``gt`` and ``mask``
        (``uint8``, one channel per class), ``classes`` (the class names),
        and ``labels``: the same classes as one ``uint64`` label image of
        part ids (:data:`PART_IDS`, grouped into classes by :data:`GROUPS`).
    """
    rng = np.random.default_rng(seed)
    voxel_size = np.asarray(voxel_size, dtype=np.float64)
    shape = tuple(int(s) for s in shape)
    volume = np.prod(np.array(shape) * voxel_size)
    # object counts scale with the volume; the default volume is 512x1024x1024 nm
    per_volume = volume / (512.0 * 1024 * 1024)

    mito = np.zeros(shape, dtype=bool)
    _add_ellipsoids(
        mito,
        np.zeros(shape, bool),
        rng,
        voxel_size,
        count=max(1, round(14 * per_volume)),
        semi_axes_range=(60.0, 150.0),
        spacing=24.0,
    )
    er = np.zeros(shape, dtype=bool)
    _add_tubes(
        er,
        mito,
        rng,
        voxel_size,
        count=max(1, round(6 * per_volume)),
        length=1500.0,
        radius=40.0,
        spacing=16.0,
    )
    vesicle = np.zeros(shape, dtype=bool)
    _add_ellipsoids(
        vesicle,
        mito | er,
        rng,
        voxel_size,
        count=max(1, round(50 * per_volume)),
        semi_axes_range=(32.0, 48.0),
        spacing=16.0,
    )
    labels = {"mito": mito, "er": er, "vesicle": vesicle}

    # raw: cytoplasm with slow texture, an intensity per class, blur and noise
    texture = ndimage.gaussian_filter(rng.normal(size=shape), sigma=80.0 / voxel_size)
    texture *= 0.05 / max(texture.std(), 1e-6)
    raw = BACKGROUND + texture
    for name in CLASSES:
        raw[labels[name]] = INTENSITIES[name]
    raw = ndimage.gaussian_filter(raw, sigma=8.0 / voxel_size)
    raw += rng.normal(scale=NOISE_STD, size=shape)
    raw = np.clip(raw * 255.0, 0, 255).astype(np.uint8)

    # the mask: a box unannotated for all classes, a slab for er
    mask = np.ones((len(CLASSES),) + shape, dtype=np.uint8)
    z, y, x = shape
    mask[:, z // 2 :, : y // 3, 2 * x // 3 :] = 0
    mask[CLASSES.index("er"), : z // 6] = 0
    gt = np.stack([labels[name] for name in CLASSES]).astype(np.uint8)
    gt[mask == 0] = 0  # unannotated: nobody drew the organelles there
    return {
        "raw": raw,
        "gt": gt,
        "mask": mask,
        "classes": list(CLASSES),
        "labels": _part_labels(labels, mask, voxel_size),
    }


def _part_labels(labels, mask, voxel_size):
    """The classes as one ``uint64`` label image of :data:`PART_IDS`, the box
    unknown for every class as :data:`UNANNOTATED_ID`. (The slab where only
    ``er`` is unknown has no place in one label image: there it holds what was
    drawn, as a per-class mask would not say.)"""
    depth = ndimage.distance_transform_edt(labels["mito"], sampling=voxel_size)
    parts = np.zeros(labels["mito"].shape, dtype=np.uint64)
    parts[labels["mito"]] = PART_IDS["mito_lumen"]
    parts[labels["mito"] & (depth <= MEMBRANE)] = PART_IDS["mito_membrane"]
    parts[labels["er"]] = PART_IDS["er"]
    parts[labels["vesicle"]] = PART_IDS["vesicle"]
    parts[(mask == 0).all(axis=0)] = UNANNOTATED_ID
    return parts


def write_volume(
    container, shape=(64, 128, 128), voxel_size=(8, 8, 8), seed=0, offset_voxels=(4, 8, 8)
):
    """Write :func:`make_volume`'s arrays into the zarr ``container`` as
    ``raw``, ``gt``, ``mask`` and ``labels`` with funlib.persistence; returns
    the dict.

    The data start at ``offset_voxels`` (a non-zero world offset, as a crop
    of a larger volume would have).
    """
    from funlib.persistence import prepare_ds

    data = make_volume(shape, voxel_size, seed)
    offset = tuple(int(o) * int(v) for o, v in zip(offset_voxels, voxel_size))
    spatial = {
        "offset": offset,
        "voxel_size": tuple(int(v) for v in voxel_size),
        "units": ["nm"] * 3,
    }
    chunks = tuple(min(s, 64) for s in shape)
    raw = prepare_ds(
        f"{container}/raw",
        data["raw"].shape,
        axis_names=["z", "y", "x"],
        types=["space"] * 3,
        dtype=np.uint8,
        chunk_shape=chunks,
        **spatial,
    )
    raw[raw.roi] = data["raw"]
    for name in ("gt", "mask"):
        array = prepare_ds(
            f"{container}/{name}",
            data[name].shape,
            axis_names=["c^", "z", "y", "x"],
            types=["channel", "space", "space", "space"],
            dtype=np.uint8,
            chunk_shape=(1,) + chunks,
            **spatial,
        )
        array[array.roi] = data[name]
    labels = prepare_ds(
        f"{container}/labels",
        data["labels"].shape,
        axis_names=["z", "y", "x"],
        types=["space"] * 3,
        dtype=np.uint64,
        chunk_shape=chunks,
        **spatial,
    )
    labels[labels.roi] = data["labels"]
    return data
