"""What ``train.py`` and ``predict.py`` share: opening and checking the data,
the network and its loss, checkpoints, and the figures.

Not a public API: a helper module of the example scripts.
"""

import argparse
import glob
import os
import re

import numpy as np
import torch

from unet import UNet

CHECKPOINT_BASENAME = "model"  # gp.torch.Train's naming: model_checkpoint_<iteration>


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """argparse's help with each option's default, where it has one that its
    help does not already give."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, argparse.SUPPRESS, False) or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


def fail(message):
    """Stop the script with one line on stderr and exit status 1."""
    raise SystemExit(f"error: {message}")


# -- parsing ---------------------------------------------------------------------


def parse_classes(text):
    """``"mito,er"`` -> ``["mito", "er"]``; distinct, non-empty names."""
    names = [name.strip() for name in text.split(",")]
    if not text.strip() or any(not name for name in names):
        fail(f"--classes must be comma-separated class names, e.g. mito,er; got {text!r}")
    if len(set(names)) != len(names):
        fail(f"--classes must be distinct, got {text!r}")
    return names


def parse_shape(text, option, dims=3):
    """``"16,8,8"`` -> ``(16, 8, 8)``: ``dims`` positive integers (one may be
    given for all axes)."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) == 1:
        values = values * dims
    if len(values) != dims or any(v <= 0 for v in values):
        fail(f"{option} must be {dims} positive integers z,y,x (or one for all), got {text!r}")
    return values


# -- data --------------------------------------------------------------------------


def open_dataset(container, name, option):
    """Open ``container/name`` with funlib.persistence, or fail with one line."""
    from funlib.persistence import open_ds

    path = os.path.join(container, name)
    if not os.path.isdir(path):
        fail(f"{option} {name!r}: no dataset {name!r} in {container}")
    try:
        return open_ds(path)
    except Exception as exc:  # any reader error: report it on one line
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        fail(f"{option} {name!r}: cannot open {path} as a zarr array ({reason})")


def _channels(array):
    """The channel count of a funlib array: 0 without a channel axis."""
    if array.channel_dims == 0:
        return 0
    if array.channel_dims > 1:
        return -1
    return array.shape[0]


def open_data(container, raw_name, gt_name, mask_name, classes):
    """The raw, gt and mask (or ``None``) arrays of a zarr container, checked:
    three spatial axes, equal voxel sizes, one gt (and mask) channel per
    class (or none, for one class / a mask shared by all classes), binary
    gt. Fails with one line on anything else."""
    if not os.path.isdir(container):
        fail(f"--zarr {container}: no such directory")
    raw = open_dataset(container, raw_name, "--raw")
    gt = open_dataset(container, gt_name, "--gt")
    mask = open_dataset(container, mask_name, "--mask") if mask_name else None

    for option, name, array in (
        ("--raw", raw_name, raw),
        ("--gt", gt_name, gt),
        ("--mask", mask_name, mask),
    ):
        if array is not None and array.voxel_size.dims != 3:
            fail(
                f"{option} {name!r} must have 3 spatial axes (z, y, x), has "
                f"{array.voxel_size.dims} (shape {array.shape})"
            )
    if _channels(raw) not in (0, 1):
        fail(f"--raw {raw_name!r} must have one channel, has shape {raw.shape}")
    wanted = f"{len(classes)} channels, one per class in --classes {','.join(classes)}"
    gt_channels = _channels(gt)
    if gt_channels != len(classes) and not (gt_channels == 0 and len(classes) == 1):
        has = "no channel axis" if gt_channels == 0 else f"shape {gt.shape}"
        fail(f"--gt {gt_name!r} must have {wanted}; it has {has}")
    if mask is not None and _channels(mask) not in (0, len(classes)):
        fail(
            f"--mask {mask_name!r} must have {wanted} or no channel axis; it has shape {mask.shape}"
        )
    for option, name, array in (("--gt", gt_name, gt), ("--mask", mask_name, mask)):
        if array is not None and array.voxel_size != raw.voxel_size:
            fail(
                f"{option} {name!r} has voxel size {tuple(array.voxel_size)}, --raw "
                f"{raw_name!r} has {tuple(raw.voxel_size)}; they must be equal"
            )
    for option, name, array in (("--gt", gt_name, gt), ("--mask", mask_name, mask)):
        if array is None:
            continue
        if array.roi.intersect(raw.roi).empty:
            fail(
                f"{option} {name!r} ROI {array.roi} does not overlap --raw "
                f"{raw_name!r} ROI {raw.roi}"
            )
        if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
            fail(f"{option} {name!r} must be binary (0/1 integers), has dtype {array.dtype}")
        sample = _central_sample(array)
        values = np.unique(sample)
        if not np.isin(values, (0, 1)).all():
            fail(
                f"{option} {name!r} must be binary (0/1); found values "
                f"{values[:5].tolist()} (a label image? make one 0/1 channel per class)"
            )
    return raw, gt, mask


def check_raw_dtype(raw):
    """Fail unless gp.Normalize can pick the raw's factor by its dtype (it maps
    uint8 and uint16 to [0, 1] and takes float32 as already there): a float32
    raw must already lie in [0, 1], checked on a central sample."""
    if raw.dtype not in (np.uint8, np.uint16, np.float32):
        fail(f"--raw has dtype {raw.dtype}; use uint8, uint16 or float32 in [0, 1]")
    if raw.dtype == np.float32:
        sample = _central_sample(raw)
        if sample.size and not (sample.min() >= 0 and sample.max() <= 1):
            fail(
                f"--raw is float32 but not in [0, 1] (found {sample.min():g} to "
                f"{sample.max():g} near its centre); scale it to [0, 1]"
            )


def ones_like_gt(gt):
    """An all-known mask (no channel axis) over the gt's ROI, lazily."""
    import dask.array
    from funlib.persistence import Array

    shape = tuple(gt.roi.shape / gt.voxel_size)
    return Array(
        dask.array.ones(shape, dtype=np.uint8, chunks=64),
        offset=gt.roi.offset,
        voxel_size=gt.voxel_size,
        axis_names=["z", "y", "x"],
        types=["space"] * 3,
    )


def _central_sample(array, size=64):
    """Up to ``size`` voxels per axis around the centre of ``array`` (numpy),
    a cheap check of the values of a possibly large array."""
    from funlib.geometry import Coordinate, Roi

    voxel_size = array.voxel_size
    shape = Coordinate(min(s, size) for s in array.roi.shape / voxel_size)
    centre = array.roi.center
    begin = (centre - shape * voxel_size / 2).round_division(voxel_size) * voxel_size
    roi = Roi(begin, shape * voxel_size).intersect(array.roi)
    return np.asarray(array[roi])


# -- network -------------------------------------------------------------------------


def downsample_factors(voxel_size, levels):
    """Pooling factors per level that make anisotropic voxels more isotropic:
    2 along the axes whose (current) voxel size is less than twice the
    smallest, 1 elsewhere. ``(16, 8, 8)`` -> ``[(1, 2, 2), (2, 2, 2)]``."""
    current = list(voxel_size)
    factors = []
    for _ in range(levels):
        smallest = min(current)
        level = tuple(2 if v < 2 * smallest else 1 for v in current)
        current = [v * f for v, f in zip(current, level)]
        factors.append(level)
    return factors


class HotDistanceNet(torch.nn.Module):
    """The U-Net and the predictor's head.

    Takes raw as ``(z, y, x)`` (as a gunpowder batch holds it) or
    ``(batch, 1, z, y, x)``; returns ``(2 * classes, z', y', x')`` or
    ``(batch, 2 * classes, z', y', x')`` accordingly.

    The output is linear, with no sigmoid or tanh: a saturating activation
    lets a channel get stuck at -1 (most voxels are far outside a rare
    class, and a saturated tanh passes no gradient back), which on a short
    CPU run lost whole classes. The one-hot channels are logits (trained
    with :class:`gp_hotdistance.HotDistanceLoss`'s cross-entropy);
    :meth:`HotDistancePredictor.to_target_range` brings a prediction into the
    target's ranges afterwards.
    """

    def __init__(self, predictor, unet_config):
        super().__init__()
        self.unet_config = dict(unet_config)
        self.unet = UNet(**self.unet_config)
        self.model = predictor.create_model(self.unet)

    def forward(self, raw):
        unbatched = raw.dim() == 3
        if unbatched:
            raw = raw[None, None]
        out = self.model(raw)
        return out[0] if unbatched else out


def make_predictor(config):
    """The :class:`gp_hotdistance.HotDistancePredictor` of a run's settings."""
    from gp_hotdistance import HotDistancePredictor

    return HotDistancePredictor(
        config["classes"],
        scale_factor=config["scale_factor"],
        mask_distances=config["mask_distances"],
        clipmin=config["clipmin"],
        clipmax=config["clipmax"],
    )


def unet_config(voxel_size, num_fmaps, levels, num_convs):
    """The keyword arguments of :class:`unet.UNet`, saved with checkpoints."""
    return {
        "in_channels": 1,
        "num_fmaps": num_fmaps,
        "fmap_inc_factor": 2,
        "downsample_factors": downsample_factors(voxel_size, levels),
        "num_convs": num_convs,
    }


# -- checkpoints ---------------------------------------------------------------------


def checkpoints(run_dir):
    """``(iteration, path)`` of the checkpoints in ``run_dir``, oldest first."""
    found = []
    for path in glob.glob(os.path.join(run_dir, f"{CHECKPOINT_BASENAME}_checkpoint_*")):
        match = re.fullmatch(r".*_checkpoint_(\d+)", path)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def checkpoint_path(run_dir, iteration):
    return os.path.join(run_dir, f"{CHECKPOINT_BASENAME}_checkpoint_{iteration}")


def load_checkpoint(path):
    """A checkpoint written by ``train.py`` (plain types only, so
    ``weights_only`` loading works), or fail with one line."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        fail(f"cannot read checkpoint {path} ({str(exc).splitlines()[0]})")
    if not isinstance(checkpoint, dict) or "config" not in checkpoint:
        fail(f"{path} is not a checkpoint written by examples/train.py (no 'config')")
    return checkpoint


# -- figures -----------------------------------------------------------------------

HOT_STYLE = {"cmap": "magma", "vmin": 0.0, "vmax": 1.0}
DISTANCE_STYLE = {"cmap": "RdBu_r", "vmin": -1.0, "vmax": 1.0}
BINARY_STYLE = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}


def central_slice(data):
    """The central z-slice of ``(..., z, y, x)`` data."""
    return data[..., data.shape[-3] // 2, :, :]


def panel_figure(columns, rows, title, path):
    """Save a grid of images and return ``path``.

    ``columns`` is a list of ``(heading, images, style, colorbar)``: one
    image per row, the ``imshow`` keywords, and whether to add a colorbar;
    ``rows`` names the rows.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), len(columns)
    first = columns[0][1][0]
    aspect = first.shape[0] / first.shape[1]
    fig, axes = plt.subplots(
        n_rows,
        n_cols,
        figsize=(1.9 * n_cols, 1.9 * n_rows * aspect + 1.0),
        squeeze=False,
        constrained_layout=True,
    )
    for col, (heading, images, style, colorbar) in enumerate(columns):
        for row in range(n_rows):
            ax = axes[row, col]
            image = ax.imshow(images[row], interpolation="nearest", **style)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(heading, fontsize=9)
            if col == 0:
                ax.set_ylabel(rows[row], fontsize=10)
        if colorbar:
            bar = fig.colorbar(
                image, ax=axes[:, col], location="bottom", shrink=0.8, aspect=12, pad=0.01
            )
            bar.ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
