"""The gt as one label image of part ids, grouped into classes.

The synthetic volume stores mitochondria as two part ids (membrane 1, lumen
2), er as 3, vesicles as 4, and the box nobody annotated as 255. The
predictor's ``groups`` make the classes from the ids, ``unannotated`` zeroes
the mask there; the nodes then take the label image as the gt.

Run: python examples/label_groups.py
"""

import gunpowder as gp
import numpy as np
from funlib.persistence import Array

import synthetic
from gp_hotdistance import AddHotDistance, BalanceHotDistance, HotDistancePredictor


def main():
    voxel_size = (8, 8, 8)
    data = synthetic.make_volume(shape=(32, 64, 64), voxel_size=voxel_size, seed=1)
    predictor = HotDistancePredictor(
        list(synthetic.CLASSES),
        scale_factor=40.0,
        mask_distances=True,
        groups=synthetic.GROUPS,
        unannotated=[synthetic.UNANNOTATED_ID],
    )
    labels = Array(
        data["labels"],
        offset=(0, 0, 0),
        voxel_size=voxel_size,
        axis_names=["z", "y", "x"],
        types=["space"] * 3,
    )
    target = predictor.create_target(labels)[labels.roi]
    print(
        f"label image {data['labels'].shape} {data['labels'].dtype}, ids "
        f"{np.unique(data['labels']).tolist()}: target {target.shape} {target.dtype}"
    )
    mito = data["gt"][synthetic.CLASSES.index("mito")]
    print(f"mito one-hot equals the binary mito channel: {np.array_equal(target[0], mito)}")

    gt, target_key, weights = gp.ArrayKey("GT"), gp.ArrayKey("TARGET"), gp.ArrayKey("WEIGHTS")
    pipeline = (
        gp.ArraySource(gt, labels, interpolatable=False)
        + gp.Pad(gt, None)
        + AddHotDistance(predictor, gt, target_key)
        + BalanceHotDistance(predictor, gt, target_key, weights)
    )
    request = gp.BatchRequest()
    roi = gp.Roi((64, 128, 128), (128, 256, 256))
    request[target_key] = gp.ArraySpec(roi=roi)
    request[weights] = gp.ArraySpec(roi=roi)
    request[gt] = gp.ArraySpec(roi=roi)
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    unannotated = batch[weights].data[:, (batch[gt].data == synthetic.UNANNOTATED_ID)]
    print(
        f"batch weights {batch[weights].data.shape}; weight in the unannotated box: "
        f"{float(np.abs(unannotated).max()) if unannotated.size else 0.0}"
    )


if __name__ == "__main__":
    main()
