"""Gunpowder nodes that add the hot-distance target and its weights to a batch:
:class:`AddHotDistance` (the target) and :class:`BalanceHotDistance` (the
weights, with moving class counts).

The nodes are thin: they grow the upstream requests by the predictor's
context, bring their inputs to one layout (``(classes, ...)``, a mask shared
by all classes as a broadcast view), hand them to
:class:`~gp_hotdistance.HotDistancePredictor` (and, for the distance to the
unknown region, to :func:`gp_hotdistance.distance.unknown_distance`), and crop
the results to the requested ROI with gunpowder's ``Array.crop``.
:class:`BalanceHotDistance`'s moving class counts live in memory shared with
``gp.PreCache``'s worker processes (see :mod:`gp_hotdistance._shared_counts`).
"""

import contextlib
import logging
import warnings

import numpy as np
from gunpowder import Array, ArraySpec, Batch, BatchFilter, BatchRequest, Coordinate
from gunpowder.nodes.batch_filter import BatchFilterError

from . import _checks
from ._shared_counts import SharedCounts
from .distance import padding_voxels, unknown_distance
from .predictor import HotDistancePredictor
from .weights import trust_reach

logger = logging.getLogger(__name__)

__all__ = ["AddHotDistance", "BalanceHotDistance"]


class _HotDistanceFilter(BatchFilter):
    """What both nodes share: argument checks, the provided spec (the gt's ROI
    shrunk by the context), the grown upstream requests, and the inputs as
    ``(classes, ...)`` arrays."""

    def __init__(self, predictor, gt, mask, threads):
        if not isinstance(predictor, HotDistancePredictor):
            raise TypeError(
                f"predictor must be a HotDistancePredictor, got {type(predictor).__name__}"
            )
        self.predictor = predictor
        self.gt = gt
        self.mask = mask
        # None: the predictor's
        self.threads = None if threads is None else _checks.check_threads(threads)

    def _check_upstream(self, output_keys):
        """Check the inputs in ``self.spec``; return the spec of the outputs."""
        if self.gt not in self.spec:
            raise BatchFilterError(self, f"gt {self.gt} is not provided upstream")
        gt_spec = self.spec[self.gt]
        voxel_size = gt_spec.voxel_size
        if voxel_size is None:
            raise BatchFilterError(self, f"gt {self.gt} has no voxel size")
        self._check_on_grid("gt", self.gt)
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
            self._check_on_grid("mask", self.mask)
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
                    f"(gp.Pad), or raise the predictor's tolerance or lower its "
                    f"scale_factor to need less context",
                )
        return spec

    def _check_on_grid(self, kind, key):
        """Refuse an input whose ROI does not start on its voxel grid: gunpowder
        cannot serve such an array over any requested ROI."""
        spec = self.spec[key]
        if spec.roi is None or spec.voxel_size is None:
            return
        offset = spec.roi.offset
        if any(o is not None and o % v != 0 for o, v in zip(offset, spec.voxel_size)):
            raise BatchFilterError(
                self,
                f"{kind} {key} has ROI offset {offset}, which is not a multiple of "
                f"its voxel size {spec.voxel_size}; gunpowder serves arrays on their "
                f"voxel grid only: give the array an offset that is a multiple of "
                f"the voxel size",
            )

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

    def _classes_first(self, array, kind, key, per_class_only):
        """The data of ``array`` as ``(classes, ...)``, and whether it is one
        channel for all classes (then a broadcast view of it).

        One channel per class is always accepted; no channel axis is accepted
        for one class, or for all classes where ``per_class_only`` is false.
        """
        data = np.asarray(array.data)
        spatial_dims = self.spec[self.gt].voxel_size.dims
        classes = self.predictor.classes
        if data.ndim == spatial_dims + 1 and data.shape[0] == classes:
            return data, classes == 1
        if data.ndim == spatial_dims and (classes == 1 or not per_class_only):
            return np.broadcast_to(data, (classes,) + data.shape), True
        expected = f"({classes}, <{spatial_dims} spatial axes>)"
        if classes == 1 or not per_class_only:
            expected += f" or (<{spatial_dims} spatial axes>)"
        raise ValueError(
            f"{kind} {key} must have shape {expected}, one channel per class in "
            f"{self.predictor.channels}; got shape {data.shape}"
        )

    @staticmethod
    @contextlib.contextmanager
    def _naming(**keys):
        """Re-raise a ``ValueError`` or ``TypeError`` about an input named by
        its kind (``"gt channel 0 must ..."``) with its array key too (``"gt
        GT channel 0 must ..."``)."""
        try:
            yield
        except (ValueError, TypeError) as error:
            message = str(error)
            for kind, key in keys.items():
                if message.startswith(kind + " "):
                    named = f"{kind} {key} {message[len(kind) + 1:]}"
                    raise type(error)(named) from error
            raise


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

    At the edge of the data, ``gp.Pad`` fills the gt with background (0), so
    the data's edge becomes a face: a foreground voxel touching the edge gets
    a target of ``tanh(v / 2 / scale_factor)``, with ``v`` the voxel size
    across that edge (0.46 for 8 nm voxels and a scale factor of 8 nm),
    where the whole volume's target
    (:meth:`~gp_hotdistance.HotDistancePredictor.create_target`, which does
    not count the data's edge as a face) measures to the object's faces
    inside the data (near 1 for an object that reaches deep into it). The
    target cannot know what lies beyond the data. To keep a network from
    learning these values, pad the mask with 0 too (``gp.Pad(mask,
    context)``; 0 is ``gp.Pad``'s default value) and use a predictor with
    ``mask_distances``: :class:`BalanceHotDistance` then gives these
    distance voxels weight 0. Without ``mask_distances`` they are trained
    on.

    The gt's ROI must start on its voxel grid (an offset that is a multiple
    of the voxel size); the pipeline refuses to build otherwise. A gt that
    is not binary raises a ``ValueError`` naming its key when a batch is made
    (:class:`BalanceHotDistance` checks the mask likewise).

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
            only checked when the pipeline is built (provided upstream, same
            voxel size as the gt, on the voxel grid), so that both nodes can
            be made from the same keys.

        threads (``int``, optional, keyword only):

            Threads the kernels may use per batch; the predictor's
            ``threads`` (default 1) if not given. With ``gp.PreCache``, each
            worker uses this many.
    """

    def __init__(self, predictor, gt, target, mask=None, *, threads=None):
        super().__init__(predictor, gt, mask, threads)
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
        gt = batch[self.gt]
        labels, _ = self._classes_first(gt, "gt", self.gt, per_class_only=True)
        with self._naming(gt=self.gt, labels=self.gt):
            target = self.predictor.process(
                labels, gt.spec.voxel_size, self.predictor.norm, self.predictor.scale_factor,
                threads=self.threads,
            )
        spec = self.spec[self.target].copy()
        spec.roi = gt.spec.roi
        outputs = Batch()
        outputs[self.target] = Array(target, spec).crop(request[self.target].roi, copy=False)
        return outputs


class BalanceHotDistance(_HotDistanceFilter):
    """Add class-balancing weights for the hot-distance target to the batch.

    Each of the ``2 * classes`` target channels is balanced foreground against
    background with counts that move across batches (see
    :func:`~gp_hotdistance.weights.balance_weights`); weights are 0 where the
    mask is 0. With the predictor's ``mask_distances``, the distance channels'
    weights are also 0 where the unknown region (mask 0) is nearer than the
    measured boundary. The mask is then requested grown by the distance past
    which every distance is trusted (:func:`~gp_hotdistance.weights.trust_reach`,
    ``scale_factor * artanh(threshold)``, less than the target's context), so
    the edge of a crop does not count as unknown. Beyond the data only the
    mask tells what is unknown: pad the mask with 0 (``gp.Pad``'s default) to
    have the padding count as unknown, so that the distances next to the
    data's edge, which the padded gt makes wrong (see
    :class:`AddHotDistance`), get weight 0.

    The counts cover the requested ROI of each batch (not the context) and
    accumulate for the life of the node. They live in memory shared with
    every process that ``gp.PreCache`` starts, whatever multiprocessing's
    start method (``fork``, ``spawn`` or ``forkserver``), so the counts seen
    in the main process include every worker's batches (also those that wait
    in ``PreCache``'s cache, not yet requested). A batch is counted wholly or
    not at all, and a worker killed at any moment (``PreCache`` stops its
    workers with SIGTERM) blocks no other process. A node that reaches a
    process in any other way (unpickled from a file, or copied with
    ``copy.deepcopy``) holds a copy of the counts that is no longer shared
    with the original node; it warns once when its pipeline is built. Sharing
    needs a POSIX system (Linux, macOS). Save and restore the counts with
    :meth:`state_dict` and :meth:`load_state_dict`, e.g. with a training
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

        threads (``int``, optional, keyword only):

            Threads the kernels may use per batch (with ``mask_distances``);
            the predictor's ``threads`` (default 1) if not given.
    """

    def __init__(self, predictor, gt, target, weights, mask=None, *, threads=None):
        super().__init__(predictor, gt, mask, threads)
        self.target = target
        self.weights = weights
        self._counts = SharedCounts((predictor.embedding_dims, 2))
        self._warned_unshared = False

    @property
    def moving_class_counts(self):
        """A copy of the counts: ``int64``, ``(2 * classes, 2)``, background
        and foreground voxels seen per target channel."""
        return self._counts.snapshot()

    def state_dict(self):
        """The class names and the moving class counts, to save with a
        checkpoint.

        Returns:

            ``dict`` of plain Python values, ``{"channels": [str, ...],
            "moving_class_counts": [[int, int], ...]}``, which ``json`` and
            ``torch.save`` / ``torch.load`` (also with ``weights_only=True``,
            torch's default since 2.6) round-trip.
        """
        return {
            "channels": list(self.predictor.channels),
            "moving_class_counts": self._counts.snapshot().tolist(),
        }

    def load_state_dict(self, state):
        """Continue from the counts of :meth:`state_dict`.

        Args:

            state (``dict``):

                As returned by :meth:`state_dict`; ``"moving_class_counts"``
                may also be an integer numpy array, as earlier versions of
                :meth:`state_dict` gave it.

        Raises:

            ``TypeError`` if ``state`` is not such a dict or its counts are
            not integers, ``ValueError`` if it was saved for other classes or
            its counts are not ``(2 * classes, 2)`` or negative.
        """
        if not isinstance(state, dict) or "moving_class_counts" not in state:
            raise TypeError(
                "state must be a dict with 'moving_class_counts', as state_dict() "
                f"returns, got {type(state).__name__}"
            )
        channels = state.get("channels")
        if channels is not None and (
            isinstance(channels, (str, bytes))
            or not isinstance(channels, (list, tuple))
            or not all(isinstance(name, str) for name in channels)
        ):
            raise TypeError(
                f"state['channels'] must be a list of class names, as state_dict() "
                f"returns, got {channels!r}"
            )
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
        self.trust_reach = trust_reach(
            self.predictor.scale_factor, self.predictor.threshold
        )
        self.mask_padding = Coordinate(
            padding_voxels(self.trust_reach, tuple(voxel_size))
        ) * voxel_size
        self._warn_if_unshared()

    def _warn_if_unshared(self):
        """Warn once if the counts are not those of the node this one came
        from, or cannot be shared with worker processes."""
        if self._warned_unshared:
            return
        if self._counts.copied:
            problem = (
                "was copied or unpickled outside a multiprocessing start, so its "
                "moving class counts are a copy, no longer shared with the node it "
                "came from; they count on here (and in the PreCache workers of this "
                "process), but the original node's state_dict() does not see them"
            )
        elif not self._counts.shareable:
            problem = (
                "cannot share its moving class counts with worker processes on this "
                "system (no fcntl): batches made in PreCache workers are not counted "
                "in this process"
            )
        else:
            return
        self._warned_unshared = True
        warnings.warn(
            f"BalanceHotDistance({self.gt}, {self.weights}) {problem}",
            RuntimeWarning,
            stacklevel=2,
        )

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
        gt, _ = self._classes_first(
            batch[self.gt].crop(roi, copy=False), "gt", self.gt, per_class_only=True
        )
        target = batch[self.target].crop(roi, copy=False).data
        mask = unknown = None
        if self.mask is not None:
            mask, _ = self._classes_first(
                batch[self.mask].crop(roi, copy=False), "mask", self.mask,
                per_class_only=False,
            )
        with self._naming(gt=self.gt, labels=self.gt, mask=self.mask, target=self.target):
            if self.predictor.mask_distances:
                unknown = self._unknown_distance(batch, roi)
            counts_before = self._counts.snapshot()
            weights, counts = self.predictor.process_weight(
                gt, target, mask, voxel_size, counts_before, unknown, threads=self.threads
            )
        # what this batch saw; other workers may have counted meanwhile
        self._counts.add(counts - counts_before)

        spec = self.spec[self.weights].copy()
        spec.roi = roi
        outputs = Batch()
        outputs[self.weights] = Array(weights, spec)
        return outputs

    def _unknown_distance(self, batch, roi):
        """Distance to the unknown region over ``roi``, ``(classes, ...)``,
        measured by :func:`~gp_hotdistance.distance.unknown_distance` in the mask
        over the ROI grown by ``mask_padding`` (``inf``: nothing unknown
        within the trust reach)."""
        voxel_size = self.spec[self.gt].voxel_size
        classes = self.predictor.classes
        if self.mask is None:
            shape = (classes,) + tuple(roi.shape / voxel_size)
            return np.full(shape, np.inf, dtype=np.float32)
        mask = batch[self.mask]
        masks, shared = self._classes_first(mask, "mask", self.mask, per_class_only=False)
        threads = self.predictor.threads if self.threads is None else self.threads
        distances = [
            unknown_distance(
                m, tuple(voxel_size), max_distance=self.trust_reach, threads=threads
            )
            for m in (masks[:1] if shared else masks)
        ]
        distances = np.broadcast_to(distances, (classes,) + distances[0].shape)
        spec = ArraySpec(roi=mask.spec.roi, voxel_size=voxel_size)
        return Array(distances, spec).crop(roi, copy=False).data
