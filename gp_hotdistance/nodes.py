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
import math
import warnings
from typing import Optional

import numpy as np
from gunpowder import Array, ArrayKey, ArraySpec, Batch, BatchFilter, BatchRequest, Coordinate
from gunpowder.nodes.batch_filter import BatchFilterError
from gunpowder.nodes.batch_provider import BatchRequestError

from . import _checks, _gt, _kernels
from ._shared_counts import SharedCounts
from .distance import _unknown_channel, padding_voxels
from .predictor import HotDistancePredictor
from .weights import trust_reach

logger = logging.getLogger(__name__)

__all__ = ["AddHotDistance", "BalanceHotDistance"]

# what gunpowder says when a request is larger than the data: RandomLocation
# finds no place for it, or a node's provided ROI does not contain it
_TOO_LARGE = ("Can not satisfy request", "outside of my ROI")


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

    def check_request_consistency(self, request):
        # a request for the output beyond the provided ROI: say that the
        # context shrinks that ROI
        try:
            super().check_request_consistency(request)
        except AssertionError as error:
            outputs = (self.target, getattr(self, "weights", None))  # shrunk ROIs
            if not (
                _TOO_LARGE[1] in str(error)
                and any(f"{key}'s ROI" in str(error) for key in outputs if key is not None)
            ):
                raise
            raise BatchFilterError(self, f"{error}; {self._too_large_hint()}") from error

    def provide(self, request):
        # an upstream node that cannot serve the grown requests (RandomLocation
        # sees no bounds downstream of it, so setup could not tell)
        try:
            return super().provide(request)
        except BatchRequestError as error:
            text = str(error)
            ours = [f"{key}'s ROI" for key in (self.gt, self.mask) if key is not None]
            if _TOO_LARGE[0] not in text and not (
                _TOO_LARGE[1] in text and any(name in text for name in ours)
            ):
                raise
            raise BatchFilterError(
                self,
                f"upstream could not serve the requests this node made (the error "
                f"above); {self._too_large_hint()}",
            ) from error

    def _too_large_hint(self):
        """Why a request may be larger than the data, and the remedy."""
        voxel_size = self.spec[self.gt].voxel_size
        grown = f"gt {self.gt} by {self.padding}"
        mask_padding = getattr(self, "mask_padding", None)
        if self.mask is not None and mask_padding is not None and self.predictor.mask_distances:
            grown += f" and mask {self.mask} by {mask_padding}"
        return (
            f"the target's context (the predictor's padding for voxel size "
            f"{voxel_size}) grows the requests for {grown} on each side of the "
            f"requested ROI, so the data must reach that far; where it does not, "
            f"pad them with gp.Pad upstream (before RandomLocation), e.g. "
            f"gp.Pad({self.gt}, {self.padding}), or request a smaller ROI, or raise "
            f"the predictor's tolerance or lower its scale_factor to need less "
            f"context"
        )

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

    def _class_gt(self, gt, mask=None):
        """The data of the gt (and mask) ``Array`` through the package's one
        entry (:func:`gp_hotdistance._gt.class_gt`), named by their keys."""
        return self.predictor._class_gt(
            gt.data,
            None if mask is None else mask.data,
            self.spec[self.gt].voxel_size.dims,
            f"gt {self.gt}",
            f"mask {self.mask}",
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
                    named = f"{kind} {key} {message[len(kind) + 1 :]}"
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
    distance voxels weight 0 (every voxel next to the edge whose target the
    padding decided, for every voxel size and scale factor; see
    docs/mask_and_edge.md for the voxels farther in). Without
    ``mask_distances`` they are trained on.

    The gt's ROI must start on its voxel grid (an offset that is a multiple
    of the voxel size); the pipeline refuses to build otherwise. A gt that
    is not binary raises a ``ValueError`` naming its key when a batch is made
    (:class:`BalanceHotDistance` checks the mask likewise).

    Args:

        predictor (:class:`~gp_hotdistance.HotDistancePredictor`):

            Defines the classes, the scale factor and the context.

        gt (:class:`ArrayKey`):

            The binary gt, ``(classes, [z,] y, x)``, or without a channel axis
            for a single class; with the predictor's ``groups``, an integer
            label image ``([z,] y, x)``.

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

    Examples:

        >>> import gunpowder as gp
        >>> import numpy as np
        >>> from funlib.persistence import Array
        >>> from gp_hotdistance import HotDistancePredictor
        >>> predictor = HotDistancePredictor(["cell"], scale_factor=8.0, mask_distances=False)
        >>> gt_key, target_key = gp.ArrayKey("GT"), gp.ArrayKey("TARGET")
        >>> gt = Array(np.ones((32, 32), np.uint8), offset=(0, 0), voxel_size=(4, 4))
        >>> pipeline = (
        ...     gp.ArraySource(gt_key, gt, interpolatable=False)
        ...     + gp.Pad(gt_key, None)
        ...     + AddHotDistance(predictor, gt_key, target_key)
        ... )
        >>> request = gp.BatchRequest()
        >>> request[target_key] = gp.ArraySpec(roi=gp.Roi((0, 0), (8, 128)))
        >>> with gp.build(pipeline):
        ...     batch = pipeline.request_batch(request)
        >>> target = batch[target_key].data
        >>> target.shape, target.dtype
        ((2, 2, 32), dtype('float32'))
        >>> # gp.Pad's zeros make the data's edge a face, half a voxel away
        >>> round(float(target[1, 0, 0]), 4) == round(float(np.tanh(2 / 8)), 4)
        True
    """

    def __init__(
        self,
        predictor: HotDistancePredictor,
        gt: ArrayKey,
        target: ArrayKey,
        mask: Optional[ArrayKey] = None,
        *,
        threads: Optional[int] = None,
    ) -> None:
        super().__init__(predictor, gt, mask, threads)
        self.target = target

    def setup(self) -> None:
        self.provides(self.target, self._check_upstream([self.target]))
        self.enable_autoskip()

    def prepare(self, request: BatchRequest) -> BatchRequest:
        roi = self._output_roi(request, self.target)
        target_spec = ArraySpec(roi=roi, voxel_size=self.spec[self.gt].voxel_size)
        gt_roi = self.predictor.gt_region_for_roi(target_spec).roi
        deps = BatchRequest()
        deps[self.gt] = self._input_request(request, self.gt, gt_roi)
        return deps

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        gt = batch[self.gt]
        voxel_size = _checks.as_spatial_voxel_size(gt.spec.voxel_size)
        target = self.predictor._target(
            self._class_gt(gt), voxel_size, 1.0 / self.predictor.scale_factor, self.threads
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
    weights are also 0 where the unknown region (mask 0) is not clearly
    farther than the measured boundary, or, within the trust reach, not
    farther at all (see
    :func:`~gp_hotdistance.weights.distance_mask`). The mask is then requested
    grown by the distance past which every distance is trusted
    (:func:`~gp_hotdistance.weights.trust_reach`: ``scale_factor *
    artanh(threshold)``, or half the largest voxel size where that is more;
    the predictor's :meth:`~gp_hotdistance.HotDistancePredictor.padding`
    covers it, so the mask is never requested beyond the gt), so the edge of
    a crop does not count as unknown. Beyond the data only the mask tells
    what is unknown: pad the mask with 0 (``gp.Pad``'s default) to have the
    padding count as unknown. Then every voxel next to the data's edge (one
    that shares a face with the padding) whose target the padded gt decided
    (see :class:`AddHotDistance`) gets distance weight 0, whatever the voxel
    size and scale factor; farther in, a made-up target is trusted once the
    padding lies beyond the trust reach (the target is then above the
    predictor's ``threshold`` in magnitude, which the reference
    implementation counts as saturated enough; docs/mask_and_edge.md).

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
            for a single class; with the predictor's ``groups``, an integer
            label image ``([z,] y, x)`` (its ``unannotated`` ids get weight 0,
            and count as unknown for ``mask_distances``).

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

    Examples:

        >>> import gunpowder as gp
        >>> import numpy as np
        >>> from funlib.persistence import Array
        >>> from gp_hotdistance import AddHotDistance, HotDistancePredictor
        >>> predictor = HotDistancePredictor(["cell"], scale_factor=8.0, mask_distances=False)
        >>> keys = [gp.ArrayKey(name) for name in ("GT", "TARGET", "WEIGHTS")]
        >>> gt_key, target_key, weights_key = keys
        >>> labels = np.zeros((32, 32), np.uint8)
        >>> labels[:, :8] = 1
        >>> gt = Array(labels, offset=(0, 0), voxel_size=(4, 4))
        >>> balance = BalanceHotDistance(predictor, gt_key, target_key, weights_key)
        >>> pipeline = (
        ...     gp.ArraySource(gt_key, gt, interpolatable=False)
        ...     + gp.Pad(gt_key, None)
        ...     + AddHotDistance(predictor, gt_key, target_key)
        ...     + balance
        ... )
        >>> request = gp.BatchRequest()
        >>> request[weights_key] = gp.ArraySpec(roi=gp.Roi((0, 0), (128, 128)))
        >>> with gp.build(pipeline):
        ...     batch = pipeline.request_batch(request)
        >>> batch[weights_key].data.shape
        (2, 32, 32)
        >>> balance.moving_class_counts.tolist()  # background, foreground per channel
        [[768, 256], [768, 256]]
    """

    def __init__(
        self,
        predictor: HotDistancePredictor,
        gt: ArrayKey,
        target: ArrayKey,
        weights: ArrayKey,
        mask: Optional[ArrayKey] = None,
        *,
        threads: Optional[int] = None,
    ) -> None:
        super().__init__(predictor, gt, mask, threads)
        self.target = target
        self.weights = weights
        self._counts = SharedCounts((predictor.embedding_dims, 2))
        self._warned_unshared = False

    @property
    def moving_class_counts(self) -> np.ndarray:
        """A copy of the counts: ``int64``, ``(2 * classes, 2)``, background
        and foreground voxels seen per target channel."""
        return self._counts.snapshot()

    def state_dict(self) -> dict:
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

    def load_state_dict(self, state: dict) -> None:
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
            state["moving_class_counts"],
            self.predictor.embedding_dims,
            "state['moving_class_counts']",
        )
        self._counts.assign(counts)

    def setup(self) -> None:
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
            self.predictor.scale_factor,
            self.predictor.threshold,
            voxel_size=tuple(voxel_size),
        )
        self.mask_padding = (
            Coordinate(padding_voxels(self.trust_reach, tuple(voxel_size))) * voxel_size
        )
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

    def prepare(self, request: BatchRequest) -> BatchRequest:
        roi = self._output_roi(request, self.weights)
        deps = BatchRequest()
        deps[self.gt] = self._input_request(request, self.gt, roi)
        deps[self.target] = self._input_request(request, self.target, roi)
        grown = roi
        if self.predictor.mask_distances:
            grown = roi.grow(self.mask_padding, self.mask_padding)
        if self.mask is not None:
            deps[self.mask] = self._input_request(request, self.mask, grown)
        if self._unannotated():
            # the unannotated ids are unknown too, as far as the mask is needed
            deps[self.gt] = self._input_request(request, self.gt, grown)
        return deps

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        roi = request[self.weights].roi
        voxel_size = _checks.as_spatial_voxel_size(self.spec[self.gt].voxel_size)
        mask = None if self.mask is None else batch[self.mask].crop(roi, copy=False)
        class_gt = self._class_gt(batch[self.gt].crop(roi, copy=False), mask)
        target = batch[self.target].crop(roi, copy=False).data
        unknown = None
        with self._naming(target=self.target):
            if self.predictor.mask_distances:
                unknown = self._unknown_distance(batch, roi, voxel_size)
            counts_before = self._counts.snapshot()
            weights, counts = self.predictor._weights(
                class_gt, target, voxel_size, counts_before, unknown, self.threads
            )
        # what this batch saw; other workers may have counted meanwhile
        self._counts.add(counts - counts_before)

        spec = self.spec[self.weights].copy()
        spec.roi = roi
        outputs = Batch()
        outputs[self.weights] = Array(weights, spec)
        return outputs

    def _unknown_distance(self, batch, roi, voxel_size):
        """Distance to the unknown region over ``roi``, ``(classes, ...)``,
        measured in the mask (and the gt's unannotated ids) over the ROI grown
        by ``mask_padding`` (``inf``: nothing unknown within the trust
        reach)."""
        classes = self.predictor.classes
        unannotated = self._unannotated()
        if self.mask is None and not unannotated:
            shape = (classes,) + tuple(roi.shape / self.spec[self.gt].voxel_size)
            return np.full(shape, np.inf, dtype=np.float32)
        grown = roi.grow(self.mask_padding, self.mask_padding)
        spatial_dims = len(voxel_size)
        annotated = None
        if unannotated:
            labels = _gt.label_image(
                batch[self.gt].crop(grown, copy=False).data,
                f"gt {self.gt}",
                spatial_dims,
                self.predictor.channels,
            )
            annotated = ~_gt.members(labels, unannotated)
            shape = (classes,) + labels.shape
        mask = None
        if self.mask is not None:
            mask = _checks.as_array(
                batch[self.mask].crop(grown, copy=False).data, f"mask {self.mask}"
            )
            shape = (classes,) + mask.shape[-spatial_dims:]
        masks = _gt.class_mask(mask, shape, f"mask {self.mask}", annotated)
        shared = classes == 1 or _checks.is_shared(masks)
        distances = np.empty((1 if shared else classes,) + shape[1:], dtype=np.float32)
        threads = self.predictor.threads if self.threads is None else self.threads

        def channel(c, threads, slot):
            _unknown_channel(masks[c], voxel_size, distances[c], self.trust_reach, threads)

        _kernels.run_channels(distances.shape[0], math.prod(shape[1:]), channel, threads)
        distances = np.broadcast_to(distances, shape)
        spec = ArraySpec(roi=grown, voxel_size=self.spec[self.gt].voxel_size)
        return Array(distances, spec).crop(roi, copy=False).data

    def _unannotated(self):
        groups = self.predictor.groups
        return () if groups is None else groups.unannotated
