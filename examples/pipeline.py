"""A flat gunpowder training script with hot-distance targets, to copy and edit.

Run from any folder: ``python examples/pipeline.py``. It writes a small
synthetic volume into a new ``hotdistance_pipeline_<time>`` folder there and
trains a 3-D U-Net on it with HotDistanceLoss, printing the loss. Set
``GP_HOTDISTANCE_ITERATIONS`` to change the number of iterations. ``train.py``
is the full version (your own data, checkpoints, figures, options).

Edges of the data: ``gp.Pad`` fills gt and mask with 0 beyond the data, and
zero gt there makes false faces; with the mask padded with 0 and
``mask_distances=True``, the distances next to the edge that the padding
decided get weight 0 (docs/mask_and_edge.md says exactly which voxels).
"""

import math
import os
import time

import dask
import gunpowder as gp
import numpy as np
import torch
from funlib.geometry import Coordinate, Roi
from funlib.persistence import open_ds

import synthetic  # examples/synthetic.py
from gp_hotdistance import AddHotDistance, BalanceHotDistance, HotDistanceLoss, HotDistancePredictor
from unet import UNet  # examples/unet.py

ITERATIONS = int(os.environ.get("GP_HOTDISTANCE_ITERATIONS", "300"))
VOXEL_SIZE = Coordinate(8, 8, 8)

# forked gp.PreCache workers hang on dask's threaded scheduler
dask.config.set(scheduler="synchronous")
torch.manual_seed(0)

# -- data: a synthetic EM-like volume (raw, gt with one 0/1 channel per class, mask)
run = time.strftime("hotdistance_pipeline_%Y%m%d-%H%M%S")
os.makedirs(run)
synthetic.write_volume(f"{run}/data.zarr", (48, 96, 96), VOXEL_SIZE, seed=0)
raw_array = open_ds(f"{run}/data.zarr/raw")
gt_array = open_ds(f"{run}/data.zarr/gt")
mask_array = open_ds(f"{run}/data.zarr/mask")

# -- the predictor and the network: a U-Net with the predictor's head (linear output)
predictor = HotDistancePredictor(
    list(synthetic.CLASSES), scale_factor=16.0, mask_distances=True, clipmin=0.25, clipmax=0.75
)
unet = UNet(
    in_channels=1, num_fmaps=12, fmap_inc_factor=2, downsample_factors=[(2, 2, 2)], num_convs=2
)
model = predictor.create_model(unet)
loss = HotDistanceLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
input_shape, output_shape = (Coordinate(s) for s in unet.valid_input_shape((20, 20, 20)))
context = (input_shape - output_shape) / 2 * VOXEL_SIZE

# -- keys and request
raw, gt, mask = gp.ArrayKey("RAW"), gp.ArrayKey("GT"), gp.ArrayKey("MASK")
target, weights = gp.ArrayKey("TARGET"), gp.ArrayKey("WEIGHTS")
prediction = gp.ArrayKey("PREDICTION")

output_roi = Roi((0, 0, 0), output_shape * VOXEL_SIZE)
request = gp.BatchRequest()
request[raw] = gp.ArraySpec(roi=output_roi.grow(context, context))
for key in (gt, mask, target, weights, prediction):
    request[key] = gp.ArraySpec(roi=output_roi)

# -- pipeline
pipeline = (
    gp.ArraySource(raw, raw_array, interpolatable=True),
    gp.ArraySource(gt, gt_array, interpolatable=False),
    gp.ArraySource(mask, mask_array, interpolatable=False),
) + gp.MergeProvider()
pipeline += gp.Normalize(raw)  # uint8 raw to [0, 1]
# the raw mirrored for the network's context at the data's edge; beyond the
# data the gt and the mask are 0: the mask's 0 marks the padding unknown
# (the safe edge form, with mask_distances=True)
pipeline += gp.Pad(raw, context, mode="reflect")
pipeline += gp.Pad(gt, None)
pipeline += gp.Pad(mask, None)
pipeline += gp.RandomLocation()
pipeline += gp.ElasticAugment(
    control_point_spacing=(10, 10, 10),
    jitter_sigma=(0.5, 0.5, 0.5),
    rotation_interval=(0, math.pi / 2),
    subsample=4,
)
pipeline += gp.SimpleAugment()
# ElasticAugment's interpolation blurs the raw and takes ~70% of its noise's
# variance: give the noise back (train.py leaves ElasticAugment out by default)
pipeline += gp.NoiseAugment(raw, var=0.7 * synthetic.NOISE_STD**2)
pipeline += gp.IntensityScaleShift(raw, 2, -1)
pipeline += AddHotDistance(predictor, gt, target, mask)
pipeline += BalanceHotDistance(predictor, gt, target, weights, mask)
pipeline += gp.PreCache(cache_size=8, num_workers=2)
# torch wants (batch, channel, z, y, x)
pipeline += gp.Unsqueeze([raw]) + gp.Unsqueeze([raw, target, weights])
pipeline += gp.torch.Train(
    model,
    loss,
    optimizer,
    inputs={0: raw},
    outputs={0: prediction},
    loss_inputs={0: prediction, 1: target, 2: weights},
    array_specs={prediction: gp.ArraySpec(voxel_size=VOXEL_SIZE, dtype=np.float32)},
    checkpoint_basename=f"{run}/model",
    save_every=ITERATIONS,
)

# -- train
with gp.build(pipeline):
    for i in range(ITERATIONS):
        batch = pipeline.request_batch(request)
        if i % 20 == 0 or i == ITERATIONS - 1:
            print(f"iteration {batch.iteration}: loss {batch.loss:.4f}", flush=True)

probabilities = predictor.to_target_range(batch[prediction].data, channel_axis=1)
print(
    f"last batch: prediction {batch[prediction].data.shape}, one-hot in "
    f"[{probabilities[:, : predictor.classes].min():.2f}, {probabilities[:, : predictor.classes].max():.2f}]; run folder {run}"
)
