"""The compiled backend of the face distance and the weights (private).

Everything the public layer (:mod:`gp_hotdistance.distance`,
:mod:`gp_hotdistance.weights`) needs from a backend is re-exported here; the
numba implementation is in :mod:`.face` (the 3-D kernel and the per-voxel
loops of the weights) and :mod:`.passes` (sweeps and lower envelopes).

The backend contract
--------------------
Nothing here checks its arguments: the public functions validate once and call
these on native-endian, C-contiguous, writeable arrays of a few dtypes only
(labels uint8 or uint64, masks and binary channels uint8, distances float32;
see ``gp_hotdistance._checks.kernel_labels``), so that no caller's dtype,
byte order or layout compiles a kernel anew. A
second backend (a GPU one, say) implements the same names with the same
meaning and is tested against the brute-force oracles in
``tests/oracles.py``:

- ``face_distance_3d(labels, voxel_size, out, scratch, outside=None,
  sign_mode=UNSIGNED, inverse_scale=0.0, max_distance=inf, threads=1,
  codes=None, one_hot=False)``:
  on up to ``threads`` threads of its own, none left running after the
  call and no process-wide setting changed; the Euclidean
  distance from each voxel centre to the nearest face midpoint between two
  voxels of different label, written into float32 ``out``; signed
  (``SIGNED``: negative where the label is 0) or zeroed outside
  (``ZERO_OUTSIDE``) by ``sign_mode``, and mapped through ``tanh(d *
  inverse_scale)`` if ``inverse_scale > 0``. Distances above ``max_distance``
  may be ``inf``. Results must not depend on the number of threads.
  ``codes`` is optional uint8 work space shaped like ``labels`` (a caller
  with many channels passes one for all); with ``one_hot``, ``scratch`` ends
  up holding 1.0 where the label is not 0 and 0.0 where it is.
- ``unknown_box(known)``: the bounding box of the zero voxels of a 3-D
  uint8 array.
- ``distrust(distances, unknown, inverse_scale, epsilon, threshold, reach,
  known)``: the distance mask's two tests on the voxels within ``reach`` of
  the unknown region (see :func:`gp_hotdistance.weights.distance_mask`),
  clearing ``known`` in place (flat).
- ``count_classes(foreground, known)`` and ``fill_weights(foreground, known,
  background_weight, foreground_weight, out)``: the class-balancing weights'
  per-voxel loops (flat uint8 0/1 arrays).
- ``run_channels(count, voxels, run_channel, threads)``: calls
  ``run_channel(c, threads_of_c, slot)`` for every channel ``c``, on up to
  ``threads`` threads (whole channels side by side, or one channel split
  across them); ``slot`` names the caller's work space for that channel.
- ``to_3d(array)``: a 1-3-D array viewed as 3-D.

Every function may be called from several threads at once, and in processes
forked, spawned or started by a forkserver at any moment.
"""

from .face import (
    SIGNED,
    UNSIGNED,
    ZERO_OUTSIDE,
    count_classes,
    distrust,
    face_distance_3d,
    fill_weights,
    run_channels,
    to_3d,
    unknown_box,
)

__all__ = [
    "SIGNED",
    "UNSIGNED",
    "ZERO_OUTSIDE",
    "count_classes",
    "distrust",
    "face_distance_3d",
    "fill_weights",
    "run_channels",
    "to_3d",
    "unknown_box",
]
