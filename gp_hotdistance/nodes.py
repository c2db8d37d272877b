"""Gunpowder nodes that add the hot-distance target and its weights to a batch.

The nodes are thin: they grow the upstream requests by the predictor's
context, hand numpy arrays to :class:`~gp_hotdistance.HotDistancePredictor`
(and through it to :mod:`gp_hotdistance.core`), and crop the result to the
requested ROI.
"""

import logging
import multiprocessing

import numpy as np
from gunpowder import Array, ArraySpec, Batch, BatchFilter, BatchRequest, Coordinate
from gunpowder.nodes.batch_filter import BatchFilterError

from . import _checks, core
from .predictor import HotDistancePredictor

logger = logging.getLogger(__name__)

__all__ = ["AddHotDistance", "BalanceHotDistance"]


class _HotDistanceFilter(BatchFilter):
    """What both nodes share: argument checks, the provided spec (the gt's ROI
    shrunk by the context) and the grown upstream requests."""

    def __init__(self, predictor, gt, mask):
        if not isinstance(predictor, HotDistancePredictor):
            raise TypeError(
                f"predictor must be a HotDistancePredictor, got {type(predictor).__name__}"
            )
        self.predictor = predictor
        self.gt = gt
        self.mask = mask

    def _check_upstream(self, output_keys):
        """Check the inputs in ``self.spec``; return the spec of the outputs."""
        if self.gt not in self.spec:
            raise BatchFilterError(self, f"gt {self.gt} is not provided upstream")
        gt_spec = self.spec[self.gt]
        voxel_size = gt_spec.voxel_size
        if voxel_size is None:
            raise BatchFilterError(self, f"gt {self.gt} has no voxel size")
        if self.mask is not None:
            if self.mask not in self.spec:
                raise BatchFilterError(self, f"mask {self.mask} is not provided upstream")
            mask_voxel_size = self.spec[self.mask].voxel_size
            if mask_voxel_size != voxel_size:
                raise BatchFilterError(
                    self,
                    f"mask {self.mask} has voxel size {mask_voxel_size}, but gt "
                    f"{self.gt} has {voxel_size}; they must be equal",
                )
        for key in output_keys:
            if key in (self.gt, self.mask):
                raise BatchFilterError(
                    self, f"output key {key} must differ from the gt and mask keys"
                )

        self.padding = self.predictor.padding(voxel_size)
        spec = ArraySpec(voxel_size=voxel_size, interpolatable=True, dtype=np.float32)
        if gt_spec.roi is not None:
            spec.roi = gt_spec.roi.grow(-self.padding, -self.padding)
            if spec.roi.empty:
                raise BatchFilterError(
                    self,
                    f"gt {self.gt} ROI {gt_spec.roi} is too small for the context of "
                    f"{self.padding} on each side that the target needs; pad it "
                    f"(gp.Pad) or raise the predictor's tolerance, which shrinks the context",
                )
        return spec

    def _output_roi(self, request, key):
        """The requested ROI of ``key``, checked against the voxel grid."""
        roi = request[key].roi
        voxel_size = self.spec[self.gt].voxel_size
        if roi != roi.snap_to_grid(voxel_size, mode="grow"):
            raise BatchFilterError(
                self,
                f"requested ROI {roi} of {key} is not on the voxel grid {voxel_size} "
                f"of gt {self.gt}",
            )
        return roi

    def _input_request(self, request, key, roi):
        """A request for input ``key`` over ``roi``, or over the union with
        what downstream asks of ``key`` itself, so that both are served."""
        if key in request:
            roi = roi.union(request[key].roi)
        return ArraySpec(roi=roi)

    def _input_data(self, batch, key, kind, per_class_only):
        """The data of input ``key`` as numpy, with its channel axis checked:
        one channel per class, or none where ``per_class_only`` is false or
        there is one class."""
        data = np.asarray(batch[key].data)
        spatial_dims = self.spec[self.gt].voxel_size.dims
        classes = self.predictor.classes
        with_channels = data.ndim == spatial_dims + 1 and data.shape[0] == classes
        without = data.ndim == spatial_dims and (classes == 1 or not per_class_only)
        if not (with_channels or without):
            expected = f"({classes}, <{spatial_dims} spatial axes>)"
            if classes == 1 or not per_class_only:
                expected += f" or (<{spatial_dims} spatial axes>)"
            raise ValueError(
                f"{kind} {key} must have shape {expected}, one channel per class in "
                f"{self.predictor.channels}; got shape {data.shape}"
            )
        return data

    def _crop(self, data, data_roi, roi):
        """The part of ``data`` (channels first, over ``data_roi``) inside ``roi``."""
        voxel_size = self.spec[self.gt].voxel_size
        start = (roi.begin - data_roi.begin) / voxel_size
        shape = roi.shape / voxel_size
        spatial = tuple(slice(b, b + s) for b, s in zip(start, shape))
        return data[(Ellipsis,) + spatial]


class AddHotDistance(_HotDistanceFilter):
    """Add the hot-distance target of a binary gt to the batch.

    For each class the target holds the one-hot channel, and after all one-hot
    channels the distance channels ``tanh(d / scale_factor)`` (see
    :class:`~gp_hotdistance.HotDistancePredictor`). The gt is requested with
    :meth:`~gp_hotdistance.HotDistancePredictor.gt_region_for_roi`, the
    requested ROI grown by the predictor's padding, so that the target of a
    crop equals the whole volume's (within the predictor's ``tolerance``).
    The target is provided over the gt's ROI shrunk by that padding; place a
    ``gp.Pad`` upstream to request it near the edges of the data.

    Args:

        predictor (:class:`~gp_hotdistance.HotDistancePredictor`):

            Defines the classes, the scale factor and the context.

        gt (:class:`ArrayKey`):

            The binary gt, ``(classes, [z,] y, x)``, or without a channel axis
            for a single class.

        target (:class:`ArrayKey`):

            The array to create: ``float32``, ``2 * classes`` channels.

        mask (:class:`ArrayKey`, optional):

            The mask of the gt. The target does not depend on it (unknown
            regions are handled by :class:`BalanceHotDistance`); if given it is
            only checked when the pipeline is built, so that both nodes can be
            made from the same keys.
    """

    def __init__(self, predictor, gt, target, mask=None):
        super().__init__(predictor, gt, mask)
        self.target = target

    def setup(self):
        self.provides(self.target, self._check_upstream([self.target]))
        self.enable_autoskip()

    def prepare(self, request):
        roi = self._output_roi(request, self.target)
        target_spec = ArraySpec(roi=roi, voxel_size=self.spec[self.gt].voxel_size)
        gt_roi = self.predictor.gt_region_for_roi(target_spec).roi
        deps = BatchRequest()
        deps[self.gt] = self._input_request(request, self.gt, gt_roi)
        return deps

    def process(self, batch, request):
        gt = self._input_data(batch, self.gt, "gt", per_class_only=True)
        voxel_size = self.spec[self.gt].voxel_size
        target = self.predictor.process(
            gt, voxel_size, self.predictor.norm, self.predictor.scale_factor
        )
        roi = request[self.target].roi
        spec = self.spec[self.target].copy()
        spec.roi = roi
        outputs = Batch()
        outputs[self.target] = Array(self._crop(target, batch[self.gt].spec.roi, roi), spec)
        return outputs


class _SharedCounts:
    """An ``int64`` array in shared memory, guarded by a lock.

    The memory is mapped when the object is made and stays mapped in processes
    forked afterwards, so the copies of a node in ``gp.PreCache``'s forked
    workers all count into the same array.
    """

    def __init__(self, shape):
        self.shape = tuple(shape)
        self._buffer = multiprocessing.RawArray("q", int(np.prod(self.shape)))
        self._lock = multiprocessing.Lock()

    def __getstate__(self):
        # Pickled (into an exception that names the node, or for a spawned
        # process) the memory cannot be shared: a copy of the counts travels.
        return {"shape": self.shape, "counts": self.snapshot()}

    def __setstate__(self, state):
        self.__init__(state["shape"])
        self.assign(state["counts"])

    def _view(self):
        return np.frombuffer(self._buffer, dtype=np.int64).reshape(self.shape)

    def snapshot(self):
        with self._lock:
            return self._view().copy()

    def add(self, increment):
        with self._lock:
            self._view()[...] += increment

    def assign(self, values):
        with self._lock:
            self._view()[...] = values


class BalanceHotDistance(_HotDistanceFilter):
    """Add class-balancing weights for the hot-distance target to the batch.

    Each of the ``2 * classes`` target channels is balanced foreground against
    background with counts that move across batches (see
    :func:`~gp_hotdistance.core.balance_weights`); weights are 0 where the
    mask is 0. With the predictor's ``mask_distances``, the distance channels'
    weights are also 0 where the unknown region (mask 0) is nearer than the
    measured boundary. The mask is then requested grown by the distance past
    which every distance is trusted (:func:`~gp_hotdistance.core.trust_reach`,
    ``scale_factor * artanh(threshold)``, less than the target's context), so
    the edge of a crop does not count as unknown. Beyond the data only the
    mask tells what is unknown: pad the mask with 0 (``gp.Pad``'s default) to
    have the padding count as unknown.

    The counts cover the requested ROI of each batch (not the context) and
    accumulate for the life of the node. They live in shared memory made when
    the node is made, so that the copies of the node in ``gp.PreCache``'s
    workers, which are forked processes, all count into them, and the counts
    seen in the main process include every worker's batches (also those that
    wait in ``PreCache``'s cache, not yet requested). A worker started
    with the ``spawn`` or ``forkserver`` method instead gets the counts as
    they were when it started and counts on its own. Save and restore them
    with :meth:`state_dict` and :meth:`load_state_dict`, e.g. with a training
    checkpoint.

    Args:

        predictor (:class:`~gp_hotdistance.HotDistancePredictor`):

            Defines the classes, ``mask_distances`` and the balancing bounds.

        gt (:class:`ArrayKey`):

            The binary gt, ``(classes, [z,] y, x)``, or without a channel axis
            for a single class.

        target (:class:`ArrayKey`):

            The target made by :class:`AddHotDistance` upstream. It is
            requested from upstream, so a request for the weights alone works.

        weights (:class:`ArrayKey`):

            The array to create: ``float32``, ``2 * classes`` channels.

        mask (:class:`ArrayKey`, optional):

            Binary mask of the gt (1 known, 0 unknown), one channel per class
            or none (for all classes). All known if not given.
    """

    def __init__(self, predictor, gt, target, weights, mask=None):
        super().__init__(predictor, gt, mask)
        self.target = target
        self.weights = weights
        self._counts = _SharedCounts((predictor.embedding_dims, 2))

    @property
    def moving_class_counts(self):
        """A copy of the counts: ``int64``, ``(2 * classes, 2)``, background
        and foreground voxels seen per target channel."""
        return self._counts.snapshot()

    def state_dict(self):
        """The moving class counts and the class names, to save with a
        checkpoint."""
        return {
            "channels": list(self.predictor.channels),
            "moving_class_counts": self._counts.snapshot(),
        }

    def load_state_dict(self, state):
        """Continue from the counts of :meth:`state_dict`.

        Args:

            state (``dict``):

                As returned by :meth:`state_dict`.
        """
        if not isinstance(state, dict) or "moving_class_counts" not in state:
            raise TypeError(
                "state must be a dict with 'moving_class_counts', as state_dict() "
                f"returns, got {type(state).__name__}"
            )
        channels = state.get("channels")
        if channels is not None and list(channels) != list(self.predictor.channels):
            raise ValueError(
                f"state was saved for the classes {list(channels)}, but this node's "
                f"predictor has {self.predictor.channels}"
            )
        counts = _checks.as_counts(
            state["moving_class_counts"], self.predictor.embedding_dims,
            "state['moving_class_counts']",
        )
        self._counts.assign(counts)

    def setup(self):
        spec = self._check_upstream([self.target, self.weights])
        if self.target not in self.spec:
            raise BatchFilterError(
                self,
                f"target {self.target} is not provided upstream; add "
                f"AddHotDistance(predictor, {self.gt}, {self.target}) before this node",
            )
        spec.interpolatable = False
        self.provides(self.weights, spec)
        self.enable_autoskip()
        # with mask_distances, the unknown region matters up to the trust
        # reach only: the mask is needed that far around the requested ROI
        voxel_size = self.spec[self.gt].voxel_size
        self.trust_reach = core.trust_reach(
            self.predictor.scale_factor, self.predictor.threshold
        )
        self.mask_padding = Coordinate(
            core.padding_voxels(self.trust_reach, tuple(voxel_size))
        ) * voxel_size

    def prepare(self, request):
        roi = self._output_roi(request, self.weights)
        deps = BatchRequest()
        deps[self.gt] = self._input_request(request, self.gt, roi)
        deps[self.target] = self._input_request(request, self.target, roi)
        if self.mask is not None:
            mask_roi = roi
            if self.predictor.mask_distances:
                mask_roi = roi.grow(self.mask_padding, self.mask_padding)
            deps[self.mask] = self._input_request(request, self.mask, mask_roi)
        return deps

    def process(self, batch, request):
        roi = request[self.weights].roi
        voxel_size = self.spec[self.gt].voxel_size
        gt = self._crop_input(batch, self.gt, roi, "gt", per_class_only=True)
        target = self._crop(batch[self.target].data, batch[self.target].spec.roi, roi)
        mask = unknown = None
        if self.mask is not None:
            mask = self._crop_input(batch, self.mask, roi, "mask", per_class_only=False)
        if self.predictor.mask_distances:
            unknown = self._unknown_distance(batch, roi)

        counts_before = self._counts.snapshot()
        weights, counts = self.predictor.process_weight(
            gt, target, mask, voxel_size, counts_before, unknown
        )
        # what this batch saw; other workers may have counted meanwhile
        self._counts.add(counts - counts_before)

        spec = self.spec[self.weights].copy()
        spec.roi = roi
        outputs = Batch()
        outputs[self.weights] = Array(weights, spec)
        return outputs

    def _crop_input(self, batch, key, roi, kind, per_class_only):
        data = self._input_data(batch, key, kind, per_class_only)
        return self._crop(data, batch[key].spec.roi, roi)

    def _unknown_distance(self, batch, roi):
        """Distance to the unknown region over ``roi``, measured in the mask
        over the ROI grown by ``mask_padding`` (``inf``: nothing unknown
        within the trust reach)."""
        spatial_shape = roi.shape / self.spec[self.gt].voxel_size
        if self.mask is None:
            return np.full(spatial_shape, np.inf, dtype=np.float32)
        data = self._input_data(batch, self.mask, "mask", per_class_only=False)
        voxel_size = tuple(self.spec[self.gt].voxel_size)
        channels = [data] if data.ndim == len(voxel_size) else data
        unknown = np.stack([
            core.unknown_distance(m, voxel_size, max_distance=self.trust_reach)
            for m in channels
        ])
        if data.ndim == len(voxel_size):
            unknown = unknown[0]
        return self._crop(unknown, batch[self.mask].spec.roi, roi)
