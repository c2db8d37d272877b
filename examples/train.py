"""Train a small 3-D U-Net on hot-distance targets with gunpowder.

With no arguments, builds a synthetic EM-like volume (mito, er and vesicle
classes, a mask with an unannotated region) into a new folder in the working
directory and trains on it on the CPU (650 iterations: minutes on a few cores)::

    python examples/train.py
    python examples/predict.py          # the newest run in the working directory

With your own data (a zarr container with funlib.persistence metadata; gt
with one 0/1 channel per class, the mask 1 where the gt is known)::

    python examples/train.py --zarr data.zarr --raw raw --gt gt --mask mask \\
        --classes mito,er --iterations 20000 --out my_run

The pipeline: sources, normalization, gp.Pad (gt and mask are 0 beyond the
data, so the padding counts as unknown), gp.RandomLocation, (with --elastic:
gp.ElasticAugment, gp.NoiseAugment), gp.SimpleAugment, AddHotDistance,
BalanceHotDistance, gp.PreCache,
gp.Unsqueeze (a batch axis), gp.torch.Train with HotDistanceLoss, gp.Squeeze,
gp.Snapshot. The network's output is linear (no sigmoid or tanh, which can
saturate and stall a class): logits for the one-hot channels (weighted
cross-entropy) and distances for the distance channels (weighted squared
error).

The run folder gets ``data.zarr`` (synthetic data only), checkpoints
``model_checkpoint_<iteration>`` (model, optimizer, the BalanceHotDistance
moving class counts and the settings), ``snapshots/``, ``loss.csv``,
``loss.png`` and ``train.png``.
"""

import argparse
import math
import os
import random
import sys
import time

import numpy as np

import _common
from _common import fail
from synthetic import NOISE_STD

# the learning rate decays linearly to this share of --lr: the last
# iterations refine rather than jump between batches
FINAL_LR_SHARE = 0.05

# gp.ElasticAugment (--elastic) resamples the raw with linear interpolation,
# which blurs it and, at a random sub-voxel offset, keeps on average (2/3)^3 of
# white noise's variance: the network then trains on smoother raw than it
# predicts on. gp.NoiseAugment after it gives back the rest of the synthetic
# volume's noise (the blur stays; see docs/tutorial.md)
SYNTHETIC_NOISE_VAR = round((1 - (2 / 3) ** 3) * NOISE_STD**2, 5)

# the options whose values a run saves and --resume takes from the checkpoint
SAVED_SETTINGS = (
    "zarr",
    "raw",
    "gt",
    "mask",
    "classes",
    "shape",
    "voxel_size",
    "seed",
    "scale_factor",
    "no_mask_distances",
    "clipmin",
    "clipmax",
    "elastic",
    "noise_var",
    "output_shape",
    "num_fmaps",
    "levels",
    "num_convs",
    "lr",
)

DEFAULTS = {
    "iterations": 650,
    "scale_factor": 16.0,
    "shape": "64,128,128",
    "voxel_size": "8,8,8",
    "output_shape": "28",
    "num_fmaps": 12,
    "levels": 1,
    "num_convs": 2,
    "lr": 3e-3,
    "clipmin": 0.25,
    "clipmax": 0.75,
    "noise_var": SYNTHETIC_NOISE_VAR,
    "snapshot_every": 100,
}


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=_common.DefaultsHelpFormatter,
    )
    parser.add_argument("--out", help="run folder (default: a new ./hotdistance_run_<time>)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its newest checkpoint, with its "
        "settings, up to --iterations in total",
    )
    data = parser.add_argument_group("your data (default: a synthetic volume)")
    data.add_argument("--zarr", help="zarr container with the datasets below")
    data.add_argument("--raw", help="raw dataset (z, y, x), uint8, uint16 or float in [0, 1]")
    data.add_argument("--gt", help="gt dataset (class, z, y, x), one 0/1 channel per class")
    data.add_argument(
        "--mask",
        help="mask dataset, 1 where the gt is known; one channel per class or none (optional)",
    )
    data.add_argument("--classes", help="class names, comma-separated, one per gt channel")
    synthetic = parser.add_argument_group("the synthetic volume")
    synthetic.add_argument("--shape", default=DEFAULTS["shape"], help="voxels z,y,x")
    synthetic.add_argument(
        "--voxel-size", default=DEFAULTS["voxel_size"], help="nm per voxel z,y,x, e.g. 16,8,8"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and training")
    training = parser.add_argument_group("training")
    training.add_argument(
        "--iterations", type=int, default=DEFAULTS["iterations"], help="iterations in total"
    )
    training.add_argument(
        "--scale-factor",
        type=float,
        default=DEFAULTS["scale_factor"],
        help="world distance (nm) at which the target reaches tanh(1)",
    )
    training.add_argument(
        "--no-mask-distances",
        action="store_true",
        help="do not zero distance weights near unknown regions",
    )
    training.add_argument(
        "--clipmin",
        type=float,
        default=DEFAULTS["clipmin"],
        help="class balancing: a class's voxel fraction is clipped to "
        "[clipmin, clipmax] before weighting it by 0.5 / fraction; "
        "0.05 (the library's default) weights a rare class up to 19x "
        "its background, which pushes predicted boundaries outwards",
    )
    training.add_argument(
        "--clipmax", type=float, default=DEFAULTS["clipmax"], help="see --clipmin"
    )
    training.add_argument(
        "--elastic",
        action="store_true",
        help="add gp.ElasticAugment (rotations and elastic deformation), then "
        "gp.NoiseAugment (see --noise-var); its interpolation blurs the "
        "raw, which in "
        "the default short training moved the predicted boundaries "
        "outwards",
    )
    training.add_argument(
        "--noise-var",
        type=float,
        default=argparse.SUPPRESS,
        help="with --elastic: variance of the gaussian noise gp.NoiseAugment "
        "adds to the raw (intensities in [0, 1]); the default for the "
        f"synthetic volume, {DEFAULTS['noise_var']}, gives back the noise "
        "the interpolation takes from it; with --zarr the default is 0",
    )
    training.add_argument(
        "--output-shape",
        default=DEFAULTS["output_shape"],
        help="network output per batch in voxels, z,y,x (or one for all); "
        "the input is as large as the network needs",
    )
    training.add_argument(
        "--num-fmaps",
        type=int,
        default=DEFAULTS["num_fmaps"],
        help="U-Net feature maps at the top level",
    )
    training.add_argument(
        "--levels", type=int, default=DEFAULTS["levels"], help="U-Net downsampling levels"
    )
    training.add_argument(
        "--num-convs",
        type=int,
        default=DEFAULTS["num_convs"],
        help="U-Net convolutions per level and side",
    )
    training.add_argument(
        "--lr",
        type=float,
        default=DEFAULTS["lr"],
        help="Adam learning rate at the start; it decays linearly to "
        f"{FINAL_LR_SHARE:.0%}% of that at the last iteration",
    )
    training.add_argument(
        "--snapshot-every",
        type=int,
        default=DEFAULTS["snapshot_every"],
        help="write a gp.Snapshot every N iterations",
    )
    training.add_argument(
        "--checkpoint-every",
        type=int,
        help="save a checkpoint every N iterations (default: at the end)",
    )
    training.add_argument("--workers", type=int, default=2, help="gp.PreCache workers")
    args = parser.parse_args(argv)
    if args.resume:
        given = [
            f"--{dest.replace('_', '-')}"
            for dest in SAVED_SETTINGS
            if dest in vars(args) and getattr(args, dest) != parser.get_default(dest)
        ]
        if given:
            parser.error(
                f"--resume continues with the run's saved settings; drop {', '.join(given)}"
            )

    if args.iterations < 1:
        parser.error(f"--iterations must be at least 1, got {args.iterations}")
    if not args.scale_factor > 0 or not math.isfinite(args.scale_factor):
        parser.error(f"--scale-factor must be a positive number, got {args.scale_factor}")
    for option in ("num_fmaps", "num_convs", "snapshot_every", "workers"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1")
    if hasattr(args, "noise_var"):
        if not args.elastic:
            parser.error("--noise-var needs --elastic (the noise makes up for its interpolation)")
        if not 0 <= args.noise_var < 1:
            parser.error(f"--noise-var must lie in [0, 1), got {args.noise_var}")
    elif args.elastic and args.zarr is None:
        args.noise_var = DEFAULTS["noise_var"]
    else:
        args.noise_var = 0.0  # your data's noise is yours to give: --noise-var
    if not 0 < args.clipmin <= args.clipmax <= 1:
        parser.error(
            f"--clipmin and --clipmax must satisfy 0 < clipmin <= clipmax <= 1, "
            f"got {args.clipmin} and {args.clipmax}"
        )
    if args.levels < 0:
        parser.error("--levels must be at least 0")
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        parser.error("--checkpoint-every must be at least 1")
    user_data = [args.raw, args.gt, args.mask, args.classes]
    if args.zarr is None and any(value is not None for value in user_data):
        parser.error("--raw, --gt, --mask and --classes need --zarr")
    if args.zarr is not None:
        missing = [f"--{name}" for name in ("raw", "gt", "classes") if getattr(args, name) is None]
        if missing:
            parser.error(f"--zarr needs {', '.join(missing)}")
    if args.resume and args.out is None:
        parser.error("--resume needs --out (the run folder to continue)")
    return args


def prepare_run(args):
    """The run folder, the settings, and the checkpoint to resume from (or
    ``None``)."""
    if args.resume:
        if not os.path.isdir(args.out):
            fail(f"--out {args.out}: no such run folder to resume")
        found = _common.checkpoints(args.out)
        if not found:
            fail(f"--out {args.out} has no {_common.CHECKPOINT_BASENAME}_checkpoint_* to resume")
        checkpoint = _common.load_checkpoint(found[-1][1])
        print(f"resuming {args.out} from iteration {checkpoint['iteration']}, with its settings")
        return args.out, checkpoint["config"], checkpoint

    out = args.out or time.strftime("hotdistance_run_%Y%m%d-%H%M%S")
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        fail(f"--out {out} exists and is not an empty folder; pick another or add --resume")
    os.makedirs(out, exist_ok=True)
    print(f"run folder: {out}")

    voxel_size = None
    if args.zarr is None:
        data = {
            "zarr": os.path.abspath(os.path.join(out, "data.zarr")),
            "raw": "raw",
            "gt": "gt",
            "mask": "mask",
            "synthetic": True,
        }
        classes = None
        voxel_size = _common.parse_shape(args.voxel_size, "--voxel-size")
        shape = _common.parse_shape(args.shape, "--shape")
        data["shape"] = list(shape)
    else:
        data = {
            "zarr": os.path.abspath(args.zarr),
            "raw": args.raw,
            "gt": args.gt,
            "mask": args.mask,
            "synthetic": False,
        }
        classes = _common.parse_classes(args.classes)
    config = {
        "data": data,
        "classes": classes,
        "voxel_size": None if voxel_size is None else list(voxel_size),
        "scale_factor": args.scale_factor,
        "mask_distances": not args.no_mask_distances,
        "clipmin": args.clipmin,
        "clipmax": args.clipmax,
        "elastic": args.elastic,
        "noise_var": args.noise_var,
        "output_shape": list(_common.parse_shape(args.output_shape, "--output-shape")),
        "num_fmaps": args.num_fmaps,
        "levels": args.levels,
        "num_convs": args.num_convs,
        "lr": args.lr,
        "seed": args.seed,
    }
    return out, config, None


def load_data(config):
    """Open (first making, for the synthetic volume) the arrays; fill in the
    classes and voxel size in ``config``."""
    data = config["data"]
    if data["synthetic"] and not os.path.isdir(data["zarr"]):
        import synthetic

        started = time.time()
        synthetic.write_volume(data["zarr"], data["shape"], config["voxel_size"], config["seed"])
        print(
            f"synthetic volume {tuple(data['shape'])} voxels of {tuple(config['voxel_size'])} "
            f"nm, classes {', '.join(synthetic.CLASSES)}: {data['zarr']} "
            f"({time.time() - started:.1f} s)"
        )
        config["classes"] = list(synthetic.CLASSES)
    raw, gt, mask = _common.open_data(
        data["zarr"], data["raw"], data["gt"], data["mask"], config["classes"]
    )
    config["voxel_size"] = list(raw.voxel_size)
    return raw, gt, mask


def build_pipeline(config, predictor, raw_array, gt_array, mask_array, model, optimizer, run_dir):
    import gunpowder as gp
    from funlib.geometry import Coordinate, Roi

    from gp_hotdistance import AddHotDistance, BalanceHotDistance, HotDistanceLoss

    voxel_size = Coordinate(config["voxel_size"])
    input_shape = Coordinate(config["input_shape"])
    output_shape = Coordinate(config["output_shape"])
    context = (input_shape - output_shape) / 2 * voxel_size

    raw, gt, mask = gp.ArrayKey("RAW"), gp.ArrayKey("GT"), gp.ArrayKey("MASK")
    target, weights = gp.ArrayKey("TARGET"), gp.ArrayKey("WEIGHTS")
    prediction = gp.ArrayKey("PREDICTION")

    # train only where there is gt: raw cropped to the gt's ROI plus the
    # network's context
    raw_roi = gt_array.roi.grow(context, context).intersect(raw_array.roi)
    if (raw_roi.shape / voxel_size) < input_shape:
        fail(
            f"the raw around the gt ({raw_roi.shape / voxel_size} voxels) is smaller than "
            f"the network input {tuple(input_shape)}; lower --output-shape"
        )
    pipeline = (
        gp.ArraySource(raw, raw_array, interpolatable=True),
        gp.ArraySource(gt, gt_array, interpolatable=False),
        gp.ArraySource(mask, mask_array, interpolatable=False),
    ) + gp.MergeProvider()
    pipeline += gp.Crop(raw, raw_roi)
    _common.check_raw_dtype(raw_array)
    pipeline += gp.Normalize(raw)  # the factor by the raw's dtype
    # gt and mask are 0 beyond the data: the mask marks the padding unknown.
    # The zero gt makes false faces at the data's edge; with the mask padded
    # with 0 and mask_distances (the default), the distances there get weight
    # 0, so they are not learned (--no-mask-distances trains on them)
    pipeline += gp.Pad(gt, None)
    pipeline += gp.Pad(mask, None)
    pipeline += gp.RandomLocation()
    # runs saved before --elastic existed trained with gp.ElasticAugment and no noise
    if config.get("elastic", True):
        spacing = Coordinate(max(1, round(80 / v)) for v in voxel_size)
        jitter = tuple(max(0.5, 4.0 / v) for v in voxel_size)
        pipeline += gp.ElasticAugment(
            control_point_spacing=spacing,
            jitter_sigma=jitter,
            rotation_interval=(0, math.pi / 2),
            subsample=4,
        )
        if config.get("noise_var", 0.0) > 0:
            pipeline += gp.NoiseAugment(raw, var=config["noise_var"])  # see SYNTHETIC_NOISE_VAR
    isotropic = len(set(voxel_size)) == 1
    pipeline += gp.SimpleAugment(transpose_only=None if isotropic else [1, 2])
    pipeline += gp.IntensityScaleShift(raw, 2, -1)  # raw in [-1, 1]
    pipeline += AddHotDistance(predictor, gt, target, mask)
    balance = BalanceHotDistance(predictor, gt, target, weights, mask)
    pipeline += balance
    pipeline += gp.PreCache(cache_size=4 * config["workers"], num_workers=config["workers"])
    # torch's layout: raw (batch, channel, z, y, x), the rest (batch, channel, ...)
    pipeline += gp.Unsqueeze([raw]) + gp.Unsqueeze([raw, target, weights])
    pipeline += gp.torch.Train(
        model,
        HotDistanceLoss(),
        optimizer,
        inputs={0: raw},
        outputs={0: prediction},
        loss_inputs={0: prediction, 1: target, 2: weights},
        array_specs={prediction: gp.ArraySpec(voxel_size=voxel_size, dtype=np.float32)},
        checkpoint_basename=os.path.join(run_dir, _common.CHECKPOINT_BASENAME),
        # checkpoints are written by this script, with the moving class counts
        save_every=2**62,
    )
    pipeline += gp.Squeeze([raw, target, weights, prediction]) + gp.Squeeze([raw])
    pipeline += gp.Snapshot(
        {
            raw: "raw",
            gt: "gt",
            mask: "mask",
            target: "target",
            weights: "weights",
            prediction: "prediction",
        },
        output_dir=os.path.join(run_dir, "snapshots"),
        output_filename="batch_{iteration}.zarr",
        every=config["snapshot_every"],
    )

    request = gp.BatchRequest()
    output_roi = Roi((0, 0, 0), output_shape * voxel_size)
    request[raw] = gp.ArraySpec(roi=output_roi.grow(context, context))
    for key in (gt, mask, target, weights, prediction):
        request[key] = gp.ArraySpec(roi=output_roi)
    keys = {
        "raw": raw,
        "gt": gt,
        "mask": mask,
        "target": target,
        "weights": weights,
        "prediction": prediction,
    }
    return pipeline, request, balance, keys


def set_learning_rate(optimizer, initial, iteration, iterations):
    """The learning rate for the step after ``iteration``: linear from
    ``initial`` to ``FINAL_LR_SHARE * initial`` at ``iterations``."""
    share = max(FINAL_LR_SHARE, 1.0 - iteration / iterations)
    for group in optimizer.param_groups:
        group["lr"] = initial * share


def save_checkpoint(run_dir, iteration, model, optimizer, balance, config):
    import torch

    state = balance.state_dict()
    path = _common.checkpoint_path(run_dir, iteration)
    torch.save(
        {
            "model_state_dict": model.state_dict(),
            "optimizer_state_dict": optimizer.state_dict(),
            "iteration": iteration,
            # plain lists, so that the checkpoint loads with weights_only=True
            "balance": {
                "channels": list(state["channels"]),
                "moving_class_counts": np.asarray(state["moving_class_counts"]).tolist(),
            },
            "config": config,
        },
        path,
    )
    return path


def batch_figure(batch, keys, predictor, path, iteration):
    """Central slices of the last batch: raw, gt (and mask), targets, weights,
    prediction (in the target's ranges); one row per class."""
    classes = predictor.channels
    output_roi = batch[keys["target"]].spec.roi
    raw = _common.central_slice(batch[keys["raw"]].crop(output_roi).data)
    gt = _common.central_slice(batch[keys["gt"]].data)
    mask = _common.central_slice(batch[keys["mask"]].data)
    target = _common.central_slice(batch[keys["target"]].data)
    weights = _common.central_slice(batch[keys["weights"]].data)
    prediction = _common.central_slice(predictor.to_target_range(batch[keys["prediction"]].data))
    n = len(classes)
    if mask.ndim == 2:
        mask = np.broadcast_to(mask, gt.shape)
    # unknown voxels in grey, so an unannotated organelle does not pass for background
    gt_shown = np.where(mask > 0, gt.astype(np.float32), 0.5)
    weight_max = max(float(weights.max()), 1e-6)
    weight_style = {"cmap": "viridis", "vmin": 0.0, "vmax": weight_max}
    columns = [
        ("raw", [raw] * n, {"cmap": "gray"}, False),
        ("gt (grey: unknown)", list(gt_shown), _common.BINARY_STYLE, False),
        ("target: hot", list(target[:n]), _common.HOT_STYLE, True),
        ("target: distance", list(target[n:]), _common.DISTANCE_STYLE, True),
        ("weights: hot", list(weights[:n]), weight_style, True),
        ("weights: distance", list(weights[n:]), weight_style, True),
        ("prediction: hot", list(prediction[:n]), _common.HOT_STYLE, True),
        ("prediction: distance", list(prediction[n:]), _common.DISTANCE_STYLE, True),
    ]
    return _common.panel_figure(
        columns, classes, f"training batch at iteration {iteration} (central z-slice)", path
    )


def loss_figure(losses, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    iterations = np.arange(1, len(losses) + 1)
    fig, ax = plt.subplots(figsize=(5, 3), constrained_layout=True)
    ax.plot(iterations, losses, lw=0.6, alpha=0.4, label="per batch")
    window = max(1, len(losses) // 20)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    ax.plot(iterations[window - 1 :], smooth, lw=1.5, label=f"mean of {window}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("HotDistanceLoss")
    ax.set_yscale("log")
    ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    run_dir, config, checkpoint = prepare_run(args)
    config["workers"] = args.workers
    config["snapshot_every"] = args.snapshot_every
    raw_array, gt_array, mask_array = load_data(config)

    # heavy imports after the argument and data checks, so errors come fast
    import dask
    import gunpowder as gp
    import torch
    from tqdm import tqdm

    # forked gp.PreCache workers hang on dask's threaded scheduler
    dask.config.set(scheduler="synchronous")
    seed = config["seed"]
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

    if mask_array is None:
        mask_array = _common.ones_like_gt(gt_array)
    predictor = _common.make_predictor(config)
    config["unet"] = _common.unet_config(
        config["voxel_size"], config["num_fmaps"], config["levels"], config["num_convs"]
    )
    model = _common.HotDistanceNet(predictor, config["unet"])
    input_shape, output_shape = model.unet.valid_input_shape(config["output_shape"])
    config["input_shape"], config["output_shape"] = list(input_shape), list(output_shape)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])

    pipeline, request, balance, keys = build_pipeline(
        config, predictor, raw_array, gt_array, mask_array, model, optimizer, run_dir
    )
    start_iteration = 0
    if checkpoint is not None:
        # gp.torch.Train loads the model and optimizer from the same file
        balance.load_state_dict(checkpoint["balance"])
        start_iteration = checkpoint["iteration"]
    if start_iteration >= args.iterations:
        fail(f"the run is at iteration {start_iteration} already; raise --iterations")
    print(
        f"classes {', '.join(config['classes'])}; voxel size {tuple(config['voxel_size'])}; "
        f"network input {tuple(input_shape)} -> output {tuple(output_shape)} voxels; "
        f"context for the target {tuple(predictor.padding(config['voxel_size']))} nm"
    )

    losses = []
    checkpoint_every = args.checkpoint_every or args.iterations
    running = None
    batch = None
    with gp.build(pipeline):
        progress = tqdm(
            range(start_iteration, args.iterations),
            initial=start_iteration,
            total=args.iterations,
            desc="train",
            unit="it",
            dynamic_ncols=True,
        )
        for _ in progress:
            batch = pipeline.request_batch(request)
            set_learning_rate(optimizer, config["lr"], batch.iteration, args.iterations)
            loss = float(batch.loss)
            losses.append(loss)
            running = loss if running is None else 0.95 * running + 0.05 * loss
            progress.set_postfix(loss=f"{running:.4f}")
            if batch.iteration % checkpoint_every == 0 or batch.iteration == args.iterations:
                path = save_checkpoint(run_dir, batch.iteration, model, optimizer, balance, config)
        progress.close()

    window = max(1, min(20, len(losses) // 5))
    print(
        f"loss: {np.mean(losses[:window]):.4f} (first {window} iterations) -> "
        f"{np.mean(losses[-window:]):.4f} (last {window})"
    )
    counts = balance.moving_class_counts
    names = predictor.output_array_type.channel_names
    fractions = ", ".join(f"{name} {c[1] / max(1, c.sum()):.3f}" for name, c in zip(names, counts))
    print(f"foreground fraction seen per channel: {fractions}")
    print(f"checkpoint: {path}")
    with open(os.path.join(run_dir, "loss.csv"), "a") as f:
        for i, loss in enumerate(losses, start=start_iteration + 1):
            f.write(f"{i},{loss}\n")
    figure = batch_figure(
        batch, keys, predictor, os.path.join(run_dir, "train.png"), batch.iteration
    )
    print(f"figure: {figure}")
    all_losses = np.loadtxt(os.path.join(run_dir, "loss.csv"), delimiter=",", ndmin=2)[:, 1]
    print(f"loss curve: {loss_figure(all_losses, os.path.join(run_dir, 'loss.png'))}")
    print(f"done in {time.time() - started:.0f} s; next: python examples/predict.py {run_dir}")


if __name__ == "__main__":
    sys.exit(main())
