"""Predict with a network trained by ``train.py`` over a whole volume, blockwise.

::

    python examples/predict.py                       # the newest ./hotdistance_run_*
    python examples/predict.py my_run                # a run folder
    python examples/predict.py my_run --zarr other.zarr --raw raw   # other data

Runs the run's newest checkpoint over the raw's whole ROI with gp.Scan and
gp.torch.Predict (the raw is mirrored at its faces for the network's
context), and writes into ``<run>/prediction.zarr``:

* ``prediction``: ``float32``, ``2 * classes`` channels in the target's
  ranges (``HotDistancePredictor.to_target_range``: a sigmoid on the one-hot
  logits, the distances clipped to [-1, 1]), the raw's voxel size and offset;
* ``segmentation``: ``uint8``, one channel per class: distance channel > 0
  (``gp_hotdistance.threshold_segmentation``);
* ``instances``: ``uint64``, one channel per class: instance labels
  (``gp_hotdistance.instance_segmentation``, seeded watershed).

Where there is gt, prints each class's ``gp_hotdistance.binary_scores`` of
the segmentation (only where the mask is 1, if there is a mask; distances
in nm, tolerance one voxel) and its instance F1
(``gp_hotdistance.instance_f1`` against the gt's connected components, also
for plain connected components of the segmentation), and writes
``<run>/predict.png``: central slices of raw, gt, prediction, segmentation,
its errors and the instances. The scores and instances are computed in
memory over the whole volume.
"""

import argparse
import glob
import os
import sys
import time

import numpy as np
import zarr

import _common
from _common import fail

RUN_PATTERN = "hotdistance_run_*"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=_common.DefaultsHelpFormatter,
    )
    parser.add_argument(
        "run", nargs="?", help=f"run folder of train.py (default: the newest ./{RUN_PATTERN})"
    )
    parser.add_argument("--checkpoint", help="checkpoint file (default: the run's newest)")
    parser.add_argument("--zarr", help="zarr container to predict on (default: the run's data)")
    parser.add_argument("--raw", help="raw dataset (default: the run's)")
    parser.add_argument(
        "--gt", help="gt dataset to compare with (default: the run's, if --zarr is not given)"
    )
    parser.add_argument(
        "--mask",
        help="mask dataset for the comparison (default: the run's, if --zarr is not given)",
    )
    parser.add_argument(
        "--block-shape",
        default="64",
        help="output voxels per block, z,y,x (or one for all); rounded down "
        "to what the network can produce",
    )
    parser.add_argument(
        "--out", help="zarr container for the results (default: <run>/prediction.zarr)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace results that an earlier predict.py wrote there "
        "(anything else at those names is never replaced)",
    )
    args = parser.parse_args(argv)
    if args.zarr is not None and args.raw is None:
        parser.error("--zarr needs --raw (and --gt to compare with)")
    return args


# the datasets predict.py writes, and the attribute that marks them as its own
OUTPUTS = ("prediction", "segmentation", "instances")
WRITER_ATTRIBUTE = "written_by"
WRITER = "gp_hotdistance examples/predict.py"


def check_outputs(container, names, overwrite):
    """Refuse to write over anything at the outputs' names, except, with
    ``overwrite``, datasets that predict.py wrote itself."""
    for name in names:
        path = os.path.join(container, name)
        if not os.path.lexists(path):
            continue
        if not overwrite:
            fail(
                f"--out {container}: {name!r} exists; pick another --out, or pass "
                f"--overwrite to replace the results of an earlier predict.py"
            )
        try:
            written_by = zarr.open_array(path, mode="r").attrs.get(WRITER_ATTRIBUTE)
        except Exception:  # not a zarr array at all
            written_by = None
        if written_by != WRITER:
            fail(
                f"--out {container}: {name!r} exists and was not written by "
                f"predict.py; it is left as it is: pick another --out"
            )


def find_run(args):
    """The run folder and the checkpoint path."""
    run = args.run
    if run is None and args.checkpoint is None:
        runs = sorted(d for d in glob.glob(RUN_PATTERN) if os.path.isdir(d))
        if not runs:
            fail(
                f"no run folder given and no ./{RUN_PATTERN} here; run examples/train.py "
                f"first, or name the run folder"
            )
        run = runs[-1]
        print(f"run folder: {run} (the newest here)")
    if args.checkpoint is not None:
        if not os.path.isfile(args.checkpoint):
            fail(f"--checkpoint {args.checkpoint}: no such file")
        return run or os.path.dirname(os.path.abspath(args.checkpoint)), args.checkpoint
    if not os.path.isdir(run):
        fail(f"run folder {run}: no such directory")
    found = _common.checkpoints(run)
    if not found:
        fail(
            f"run folder {run} has no {_common.CHECKPOINT_BASENAME}_checkpoint_*; "
            f"did train.py finish?"
        )
    return run, found[-1][1]


def largest_output(unet, limit):
    """Per axis, the largest output size the network can produce that is at
    most ``limit``; returns ``(input_shape, output_shape)`` or ``None``."""
    inputs, outputs = [], []
    for axis, want in enumerate(limit):
        best = None
        for size in range(1, 4 * want + 64):
            out = unet._axis_output(size, axis)
            if out is not None and out <= want:
                best = (size, out)
        if best is None:
            return None
        inputs.append(best[0])
        outputs.append(best[1])
    return tuple(inputs), tuple(outputs)


def write_blocks_node(prediction_key, prediction_array, segmentation_array, predictor):
    """A gunpowder node that writes each block's prediction (in the target's
    ranges) and segmentation (distance channels > 0) into the funlib arrays."""
    import gunpowder as gp

    from gp_hotdistance import threshold_segmentation

    classes = predictor.classes

    class _WriteBlocks(gp.BatchFilter):
        def process(self, batch, request):
            block = batch[prediction_key]
            roi = block.spec.roi
            prediction = predictor.to_target_range(block.data)
            prediction_array[roi] = prediction
            segmentation_array[roi] = threshold_segmentation(prediction[classes:])

    return _WriteBlocks()


def evaluation_roi(prediction, gt, mask):
    """The ROI that prediction, gt and mask share (may be empty)."""
    roi = prediction.roi.intersect(gt.roi)
    if mask is not None:
        roi = roi.intersect(mask.roi)
    return roi


def score(segmentation, instances, gt, mask, roi, classes):
    """binary_scores and instance F1 per class over ``roi``."""
    from scipy import ndimage

    from gp_hotdistance import binary_scores, instance_f1

    n = len(classes)
    voxel_size = tuple(segmentation.voxel_size)
    seg = np.asarray(segmentation[roi])
    truth = np.asarray(gt[roi]).reshape(seg.shape)
    known = None
    if mask is not None:
        known = np.broadcast_to(np.asarray(mask[roi]).reshape((-1,) + seg.shape[1:]), seg.shape)
    scores = binary_scores(seg, truth, voxel_size, mask=known, tolerance=max(voxel_size))
    labels = np.asarray(instances[roi])
    for c in range(n):
        gt_instances, _ = ndimage.label(truth[c])
        channel_mask = None if known is None else known[c]
        scores[c]["instance_f1"] = instance_f1(labels[c], gt_instances, mask=channel_mask)
        components, _ = ndimage.label(seg[c])
        scores[c]["instance_f1_components"] = instance_f1(
            components, gt_instances, mask=channel_mask
        )
        scores[c]["instances"] = (len(np.unique(labels[c][labels[c] > 0])), int(gt_instances.max()))
    return scores


def print_scores(scores, classes, roi, masked):
    where = " where the mask is 1" if masked else ""
    print(
        f"scores of the segmentation (distance > 0) against the gt over {roi}{where} "
        f"(distances in nm; nan: undefined, e.g. nothing to measure):"
    )
    print(
        f"  {'class':>10s} {'IoU':>6s} {'dice':>6s} {'prec':>6s} {'recall':>6s} "
        f"{'HD95':>6s} {'HD':>6s} {'FPdist':>6s} {'FNdist':>6s} {'prec@1':>6s} "
        f"{'rec@1':>6s} {'instF1':>6s} {'ccF1':>6s}  instances (pred/gt)"
    )
    for name, s in zip(classes, scores):
        values = [
            s[k]
            for k in (
                "jaccard",
                "dice",
                "precision",
                "recall",
                "hausdorff_95",
                "hausdorff",
                "mean_false_positive_distance",
                "mean_false_negative_distance",
                "precision_with_tolerance",
                "recall_with_tolerance",
                "instance_f1",
                "instance_f1_components",
            )
        ]
        print(
            f"  {name:>10s} "
            + " ".join(f"{v:6.3f}" if v < 100 else f"{v:6.0f}" for v in values)
            + f"  {s['instances'][0]}/{s['instances'][1]}"
        )
    ious = [s["jaccard"] for s in scores]
    f1 = [s["instance_f1"] for s in scores]
    print(
        "  (prec@1, rec@1: precision and recall within one voxel; instF1: instance F1 of "
        "the watershed instances, ccF1: of connected components)"
    )
    print(f"  mean IoU: {np.nanmean(ious):.3f}; mean instance F1: {np.nanmean(f1):.3f}")
    return float(np.nanmean(ious)), float(np.nanmean(f1))


def instance_colors(labels):
    """An RGB image of instance labels: a colour per label, black background."""
    rng = np.random.default_rng(0)
    palette = rng.uniform(0.25, 1.0, size=(int(labels.max()) + 1, 3))
    palette[0] = 0.0
    return palette[labels.astype(np.int64)]


def predict_figure(raw, gt, mask, prediction, segmentation, instances, classes, roi, path, title):
    """Central z-slices of the comparison ROI, one row per class."""
    n = len(classes)
    z = roi.begin[0] + (roi.shape[0] // raw.voxel_size[0]) // 2 * raw.voxel_size[0]
    from funlib.geometry import Roi

    plane = Roi((z,) + tuple(roi.begin[1:]), (raw.voxel_size[0],) + tuple(roi.shape[1:]))
    raw_slice = np.asarray(raw[plane])
    raw_slice = raw_slice.reshape(raw_slice.shape[-2:])
    pred = np.asarray(prediction[plane])[:, 0]
    seg = np.asarray(segmentation[plane])[:, 0] > 0
    labels = np.asarray(instances[plane])[:, 0]
    columns = [("raw", [raw_slice] * n, {"cmap": "gray"}, False)]
    if gt is not None:
        truth = np.asarray(gt[plane]).reshape((n,) + raw_slice.shape) > 0
        known = np.ones_like(truth)
        if mask is not None:
            known = np.broadcast_to(
                np.asarray(mask[plane]).reshape((-1,) + raw_slice.shape) > 0, truth.shape
            )
        columns.append(
            (
                "gt (grey: unknown)",
                list(np.where(known, truth.astype(np.float32), 0.5)),
                _common.BINARY_STYLE,
                False,
            )
        )
    columns += [
        ("prediction: hot", list(pred[:n]), _common.HOT_STYLE, True),
        ("prediction: distance", list(pred[n:]), _common.DISTANCE_STYLE, True),
        ("segmentation: distance > 0", list(seg.astype(np.float32)), _common.BINARY_STYLE, False),
    ]
    if gt is not None:
        # green: right, red: false positive, blue: missed; dim where unknown
        errors = np.zeros(truth.shape + (3,), np.float32)
        errors[seg & truth] = (0.2, 0.8, 0.2)
        errors[seg & ~truth] = (0.9, 0.15, 0.15)
        errors[~seg & truth] = (0.2, 0.4, 1.0)
        errors[~known] = 0.3 + 0.3 * errors[~known]
        columns.append(("green ok, red FP, blue FN", list(errors), {}, False))
    columns.append(("instances", [instance_colors(c) for c in labels], {}, False))
    return _common.panel_figure(columns, classes, title, path)


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    run, checkpoint_file = find_run(args)
    checkpoint = _common.load_checkpoint(checkpoint_file)
    config = checkpoint["config"]
    classes = config["classes"]
    data = dict(config["data"])
    if args.zarr is not None:
        data = {
            "zarr": os.path.abspath(args.zarr),
            "raw": args.raw,
            "gt": args.gt,
            "mask": args.mask,
        }
    else:
        for name in ("raw", "gt", "mask"):
            if getattr(args, name) is not None:
                data[name] = getattr(args, name)
    if data["gt"] is None:
        if not os.path.isdir(data["zarr"]):
            fail(f"--zarr {data['zarr']}: no such directory")
        raw_array = _common.open_dataset(data["zarr"], data["raw"], "--raw")
        gt_array = mask_array = None
    else:
        raw_array, gt_array, mask_array = _common.open_data(
            data["zarr"], data["raw"], data["gt"], data["mask"], classes
        )
    if list(raw_array.voxel_size) != list(config["voxel_size"]):
        fail(
            f"--raw has voxel size {tuple(raw_array.voxel_size)}, the network was trained "
            f"on {tuple(config['voxel_size'])}"
        )
    block = _common.parse_shape(args.block_shape, "--block-shape")

    import dask
    import gunpowder as gp
    from funlib.geometry import Coordinate, Roi
    from funlib.persistence import prepare_ds

    from gp_hotdistance import instance_segmentation

    dask.config.set(scheduler="synchronous")
    predictor = _common.make_predictor(config)
    model = _common.HotDistanceNet(predictor, config["unet"])
    model.load_state_dict(checkpoint["model_state_dict"])
    model.eval()

    voxel_size = raw_array.voxel_size
    out_roi = raw_array.roi
    volume = out_roi.shape / voxel_size
    shapes = largest_output(model.unet, [min(b, v) for b, v in zip(block, volume)])
    if shapes is None:
        fail(
            f"the raw ({tuple(volume)} voxels) is smaller than the smallest block the "
            f"network can predict"
        )
    input_shape, output_shape = (Coordinate(s) for s in shapes)
    context = (input_shape - output_shape) / 2 * voxel_size

    container = args.out or os.path.join(run, "prediction.zarr")
    check_outputs(container, OUTPUTS, args.overwrite)
    n = len(classes)
    spatial = {
        "offset": out_roi.offset,
        "voxel_size": voxel_size,
        "units": list(raw_array.units) or ["nm"] * 3,
        "axis_names": ["c^", "z", "y", "x"],
        "types": ["channel", "space", "space", "space"],
        "mode": "w",
    }
    chunks = tuple(int(min(s, 64)) for s in volume)
    prediction_array = prepare_ds(
        f"{container}/prediction",
        (2 * n,) + tuple(volume),
        dtype=np.float32,
        chunk_shape=(2 * n,) + chunks,
        **spatial,
    )
    segmentation_array = prepare_ds(
        f"{container}/segmentation",
        (n,) + tuple(volume),
        dtype=np.uint8,
        chunk_shape=(n,) + chunks,
        **spatial,
    )
    instances_array = prepare_ds(
        f"{container}/instances",
        (n,) + tuple(volume),
        dtype=np.uint64,
        chunk_shape=(n,) + chunks,
        **spatial,
    )
    for name in OUTPUTS:
        zarr.open_array(f"{container}/{name}", mode="r+").attrs[WRITER_ATTRIBUTE] = WRITER

    raw, prediction = gp.ArrayKey("RAW"), gp.ArrayKey("PREDICTION")
    pipeline = gp.ArraySource(raw, raw_array, interpolatable=True)
    _common.check_raw_dtype(raw_array)
    pipeline += gp.Normalize(raw)  # the factor by the raw's dtype
    pipeline += gp.Pad(raw, context, mode="reflect")
    pipeline += gp.IntensityScaleShift(raw, 2, -1)
    pipeline += gp.torch.Predict(
        model,
        inputs={0: raw},
        outputs={0: prediction},
        array_specs={
            prediction: gp.ArraySpec(roi=out_roi, voxel_size=voxel_size, dtype=np.float32)
        },
    )
    pipeline += write_blocks_node(prediction, prediction_array, segmentation_array, predictor)
    reference = gp.BatchRequest()
    block_roi = Roi((0, 0, 0), output_shape * voxel_size)
    reference[raw] = gp.ArraySpec(roi=block_roi.grow(context, context))
    reference[prediction] = gp.ArraySpec(roi=block_roi)
    pipeline += gp.Scan(reference)
    print(
        f"predicting {tuple(volume)} voxels in blocks of {tuple(output_shape)} "
        f"(input {tuple(input_shape)}) with {checkpoint_file}"
    )
    with gp.build(pipeline):
        pipeline.request_batch(gp.BatchRequest())
    # instances of each class, over the whole volume in memory
    distances = np.asarray(prediction_array[out_roi])[n:]
    instances_array[out_roi] = np.stack(
        [
            instance_segmentation(d, tuple(voxel_size), scale_factor=predictor.scale_factor)
            for d in distances
        ]
    )
    print(
        f"prediction: {container}/prediction {prediction_array.shape}, "
        f"segmentation: {container}/segmentation, instances: {container}/instances; "
        f"voxel size {tuple(voxel_size)}, offset {tuple(out_roi.offset)}"
    )

    title = f"prediction of {os.path.basename(checkpoint_file)} (central z-slice)"
    figure_roi = out_roi
    if gt_array is not None:
        eval_roi = evaluation_roi(segmentation_array, gt_array, mask_array)
        if eval_roi.empty:
            print("the gt does not overlap the prediction: no scores")
        else:
            scores = score(
                segmentation_array, instances_array, gt_array, mask_array, eval_roi, classes
            )
            print_scores(scores, classes, eval_roi, mask_array is not None)
            title += "; IoU " + ", ".join(
                f"{c} {s['jaccard']:.2f}" for c, s in zip(classes, scores)
            )
            figure_roi = eval_roi
    figure = predict_figure(
        raw_array,
        gt_array,
        mask_array,
        prediction_array,
        segmentation_array,
        instances_array,
        classes,
        figure_roi,
        os.path.join(run, "predict.png"),
        title,
    )
    print(f"figure: {figure}")
    print(f"done in {time.time() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
