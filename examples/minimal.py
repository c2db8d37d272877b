"""The smallest use of the predictor: a target and weights for a synthetic gt.

Run: python examples/minimal.py
"""

import numpy as np
from funlib.persistence import Array

from gp_hotdistance import HotDistancePredictor


def main():
    grid = np.indices((32, 64, 64)).astype(np.float32)
    centre = np.array([16, 32, 32], np.float32)[:, None, None, None]
    # a sphere of radius 120 nm in (40, 4, 4) nm voxels
    radius = np.sqrt((((grid - centre) * np.array([40, 4, 4])[:, None, None, None]) ** 2).sum(0))
    gt = (radius < 120).astype(np.uint8)[np.newaxis]
    gt = Array(
        gt,
        offset=(0, 0, 0),
        voxel_size=(40, 4, 4),
        axis_names=["c^", "z", "y", "x"],
        types=["channel", "space", "space", "space"],
    )

    predictor = HotDistancePredictor(["ball"], scale_factor=40.0, mask_distances=False)
    target = predictor.create_target(gt)
    weights, counts = predictor.create_weight(gt, target, mask=None)
    data = target[target.roi]
    print(
        f"target {data.shape} {data.dtype}, distance channel in [{data[1].min():.3f}, {data[1].max():.3f}]"
    )
    print(
        f"centre value {data[1, 16, 32, 32]:.4f} (tanh(120/40) = {np.tanh(3.0):.4f} minus half a voxel)"
    )
    print(f"moving counts (background, foreground) per channel:\n{counts}")


if __name__ == "__main__":
    main()
