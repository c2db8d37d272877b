"""The numbers behind docs/differences_scores.md: gp_hotdistance's
``binary_scores`` beside dacapo's ``BinarySegmentationEvaluator`` on small
cases built to show each difference.

dacapo is not imported (its package pulls torch, daisy, mongo clients and
more): its two score classes, ``ArrayEvaluator`` and ``CremiEvaluator``, are
executed from the wheel's source file in a Python that has SimpleITK, numpy,
scipy and lazy-property, and called as ``BinarySegmentationEvaluator.evaluate``
calls them for one channel. One command::

    pip download --no-deps dacapo-ml -d /tmp/dacapo
    unzip -q /tmp/dacapo/dacapo_ml-*.whl -d /tmp/dacapo/src
    python -m venv /tmp/dvenv
    /tmp/dvenv/bin/pip install SimpleITK numpy scipy lazy-property
    python docs/compare_dacapo_scores.py --dacapo-python /tmp/dvenv/bin/python \\
        --dacapo-source /tmp/dacapo/src
"""

# a script: it prints its table by design
# ruff: noqa: T201

import argparse
import ast
import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np

EVALUATOR = "dacapo/experiments/tasks/evaluators/binary_segmentation_evaluator.py"
VOI = "dacapo/utils/voi.py"


def cases():
    """name -> (prediction, gt, voxel size z-y-x, tolerance)."""
    out = {}
    # a box predicted right, plus a far speck of false positives
    gt = np.zeros((20, 20, 22), np.uint8)
    gt[1:9, 1:9, 1:9] = 1  # 512 voxels
    prediction = gt.copy()
    prediction[12:18, 12:18, 12:20] = 1  # 288 false positives
    out["box and far speck"] = (prediction, gt, (1.0, 1.0, 1.0), 2.0)
    # a box and the box moved by (4, 7, 6) voxels, voxel size (40, 4, 4)
    gt = np.zeros((16, 24, 24), np.uint8)
    gt[2:8, 2:8, 2:8] = 1
    prediction = np.zeros_like(gt)
    prediction[6:12, 9:15, 8:14] = 1
    out["box moved (4, 7, 6), voxel (40, 4, 4)"] = (prediction, gt, (40.0, 4.0, 4.0), 40.0)
    # a ball with a cavity against the full ball (isotropic)
    z, y, x = np.ogrid[:21, :21, :21]
    r2 = (z - 10) ** 2 + (y - 10) ** 2 + (x - 10) ** 2
    gt = (r2 <= 81).astype(np.uint8)
    prediction = ((r2 <= 81) & (r2 > 4)).astype(np.uint8)
    out["ball with a cavity vs ball"] = (prediction, gt, (1.0, 1.0, 1.0), 1.0)
    # near misses within the tolerance and far false positives
    gt = np.zeros((16, 16, 24), np.uint8)
    gt[2:10, 2:10, 2:10] = 1  # 512
    prediction = gt.copy()
    prediction[7:10] = 0  # 192 missed, within 3 of the prediction
    prediction[2:6, 2:6, 16:20] = 1  # 64 far false positives
    out["near misses and far speck, tolerance 3"] = (prediction, gt, (1.0, 1.0, 1.0), 3.0)
    # empty sides
    box = np.zeros((6, 6, 6), np.uint8)
    box[1:4, 1:4, 1:4] = 1
    none = np.zeros_like(box)
    out["empty prediction"] = (none, box, (1.0, 1.0, 1.0), 1.0)
    out["empty gt"] = (box, none, (1.0, 1.0, 1.0), 1.0)
    out["both empty"] = (none, none.copy(), (1.0, 1.0, 1.0), 1.0)
    return out


def dacapo_side(source):
    """Run in the Python with SimpleITK: dacapo's scores of every case."""
    import lazy_property
    import scipy
    import scipy.ndimage
    import SimpleITK as sitk

    spec = importlib.util.spec_from_file_location("dacapo_voi", os.path.join(source, VOI))
    voi_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(voi_module)
    path = os.path.join(source, EVALUATOR)
    with open(path) as f:
        tree = ast.parse(f.read())
    wanted = ("ArrayEvaluator", "CremiEvaluator")
    keep = [
        n
        for n in tree.body
        if isinstance(n, ast.ClassDef)
        and n.name in wanted
        or isinstance(n, ast.Assign)
        and getattr(n.targets[0], "id", None) == "BG"
    ]
    namespace = {
        "np": np,
        "sitk": sitk,
        "lazy_property": lazy_property,
        "scipy": scipy,
        "voi": voi_module.voi,
    }
    exec(compile(ast.Module(keep, []), path, "exec"), namespace)
    array_evaluator = namespace["ArrayEvaluator"]
    names = (
        "dice",
        "jaccard",
        "precision",
        "recall",
        "hausdorff",
        "mean_false_positive_distance",
        "mean_false_negative_distance",
        "precision_with_tolerance",
        "recall_with_tolerance",
        "false_discovery_rate",
    )
    results = {}
    for name, (prediction, gt, voxel_size, tolerance) in cases().items():
        # as BinarySegmentationEvaluator.evaluate builds it for one channel
        evaluator = array_evaluator(
            gt,
            prediction,
            not gt.any(),
            not prediction.any(),
            metric_params={"clip_distance": 200, "tol_distance": tolerance},
            resolution=voxel_size,
        )
        row = {}
        for key in names:
            try:
                row[key] = float(getattr(evaluator, key)())
            except Exception as error:  # shown, not hidden
                row[key] = f"{type(error).__name__}"
        results[name] = row
    print(json.dumps(results))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dacapo-python",
        required=True,
        help="a Python with SimpleITK, numpy, scipy, lazy-property",
    )
    parser.add_argument(
        "--dacapo-source", required=True, help="the folder the dacapo-ml wheel was unzipped into"
    )
    parser.add_argument("--side", choices=["dacapo"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "dacapo":
        dacapo_side(args.dacapo_source)
        return
    run = subprocess.run(
        [
            args.dacapo_python,
            os.path.abspath(__file__),
            "--side",
            "dacapo",
            "--dacapo-python",
            args.dacapo_python,
            "--dacapo-source",
            args.dacapo_source,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    theirs = json.loads(run.stdout)

    from gp_hotdistance import binary_scores

    for name, (prediction, gt, voxel_size, tolerance) in cases().items():
        ours = binary_scores(prediction, gt, voxel_size, tolerance=tolerance)
        print(
            f"{name} (|P| {int(prediction.sum())}, |G| {int(gt.sum())}, "
            f"voxel {voxel_size}, tolerance {tolerance})"
        )
        print(f"  {'score':32s} {'dacapo':>10s} {'here':>10s}")
        for key in (
            "dice",
            "jaccard",
            "precision",
            "recall",
            "hausdorff",
            "mean_false_positive_distance",
            "mean_false_negative_distance",
            "precision_with_tolerance",
            "recall_with_tolerance",
        ):
            value = theirs[name][key]
            shown = f"{value:10.4g}" if isinstance(value, float) else f"{value:>10s}"
            here = ours[key]
            print(f"  {key:32s} {shown} {here:10.4g}")
        print(f"  {'hausdorff_95':32s} {'-':>10s} {ours['hausdorff_95']:10.4g}")
        fp, not_gt = int((prediction & ~gt).sum()), int((gt == 0).sum())
        if not_gt and ours["false_positives"]:
            print(
                f"  (SimpleITK FalsePositiveError {theirs[name]['false_discovery_rate']:.6g}; "
                f"FP / |not G| = {fp / not_gt:.6g}, FP / |P| = "
                f"{fp / max(1, int(prediction.sum())):.6g})"
            )
        if not math.isnan(ours["hausdorff"]) and voxel_size != (1.0, 1.0, 1.0):
            print(
                f"  (hausdorff with the voxel size reversed, as SimpleITK x-y-z: "
                f"{binary_scores(prediction, gt, voxel_size[::-1])['hausdorff']:.4g})"
            )
        print()


if __name__ == "__main__":
    sys.exit(main())
