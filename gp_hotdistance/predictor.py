"""The :class:`HotDistancePredictor`: the spec's API over
:mod:`gp_hotdistance.distance` and :mod:`gp_hotdistance.weights`."""

import logging

import numpy as np
from funlib.geometry import Coordinate

from . import _arrays, _checks, _prediction
from ._prediction import HotDistanceArrayType
from .distance import context_distance, hot_distance_target, padding_voxels, signed_face_distance
from .weights import distance_mask, hot_distance_weights

logger = logging.getLogger(__name__)


class HotDistancePredictor:
    """Predict a one-hot embedding and signed boundary distances for binary
    classes.

    For each class, the target holds the one-hot channel followed (after all
    one-hot channels) by ``tanh(d / scale_factor)``, where ``d`` is the signed
    Euclidean distance in world units from each voxel centre to the nearest
    face midpoint between two voxels of different label: positive inside the
    class, negative outside. (The terms are defined in
    :mod:`gp_hotdistance.distance`.)

    Attributes named by the spec: ``dt_scale_factor`` (the scale factor, also
    :attr:`scale_factor`), ``max_distance`` (the context distance, see
    :func:`~gp_hotdistance.distance.context_distance`: the only meaning of
    that name in this package), ``norm`` (``"tanh"``), ``epsilon`` and
    ``threshold``.

    Where the reference implementation this API comes from is wrong, this one
    does the right thing; the README's table "How it differs from the
    reference implementation" lists each difference.

    Args:

        channels (``list`` of ``str``):

            The name of each class, one gt channel each.

        scale_factor (``float``):

            World distance at which the target reaches ``tanh(1)``.

        mask_distances (``bool``):

            Whether to zero the distance weights where an unknown region (mask
            0) or the edge of the data is nearer than the measured boundary.

        kernel_size (``int``, optional):

            Kernel size of the head that :meth:`create_model` adds. Default 1.

        tolerance (``float``, optional):

            Largest error allowed on a target value due to cropping; sets the
            context (see :func:`~gp_hotdistance.context_distance`).
            Default 1e-3.

        epsilon (``float``, optional):

            Margin in tanh units for ``mask_distances``. Default 0.05.

        threshold (``float``, optional):

            Cap in tanh units for ``mask_distances``, in (0, 1). Default 0.8.

        clipmin, clipmax (``float``, optional):

            Bounds on the class fractions when balancing. Default 0.05, 0.95.

        threads (``int``, optional, keyword only):

            Threads each call of the kernels may use (the target, the weights
            with ``mask_distances``, the distance mask). Default 1, so that
            N ``gp.PreCache`` workers on N cores do not oversubscribe them;
            see docs/threads.md.
    """

    norm = "tanh"

    def __init__(
        self,
        channels,
        scale_factor,
        mask_distances,
        kernel_size=1,
        tolerance=1e-3,
        epsilon=0.05,
        threshold=0.8,
        clipmin=0.05,
        clipmax=0.95,
        *,
        threads=1,
    ):
        channels = _checks.class_names(channels)
        if not isinstance(mask_distances, (bool, np.bool_)):
            raise TypeError(f"mask_distances must be a bool, got {mask_distances!r}")
        kernel_size = _checks.check_positive_int(kernel_size, "kernel_size")

        self.channels = channels
        self.dt_scale_factor = _checks.check_positive(scale_factor, "scale_factor")
        self.mask_distances = bool(mask_distances)
        self.kernel_size = kernel_size
        self.tolerance = _checks.check_fraction(tolerance, "tolerance")
        self.epsilon = _checks.check_nonnegative(epsilon, "epsilon")
        self.threshold = _checks.check_fraction(threshold, "threshold")
        self.clipmin, self.clipmax = _checks.check_clip(clipmin, clipmax)
        self.threads = _checks.check_threads(threads)
        self.max_distance = context_distance(
            self.dt_scale_factor, self.tolerance, self.threshold
        )

    @property
    def scale_factor(self):
        """The scale factor of the distance transform (world units)."""
        return self.dt_scale_factor

    @property
    def classes(self):
        """The number of classes."""
        return len(self.channels)

    @property
    def embedding_dims(self):
        """The number of output channels: one-hot plus distance per class."""
        return 2 * self.classes

    @property
    def output_array_type(self):
        """A :class:`HotDistanceArrayType` with ``embedding_dims`` named,
        interpolatable channels."""
        names = [f"{name}_hot" for name in self.channels]
        names += [f"{name}_distance" for name in self.channels]
        return HotDistanceArrayType(tuple(names))

    def __repr__(self):
        return (
            f"HotDistancePredictor(channels={self.channels!r}, "
            f"scale_factor={self.dt_scale_factor!r}, "
            f"mask_distances={self.mask_distances!r})"
        )

    # -- model ---------------------------------------------------------------

    def create_model(self, architecture):
        """The architecture followed by a convolution to ``embedding_dims``
        channels.

        Args:

            architecture (``torch.nn.Module``):

                A network with attributes ``dims`` (2 or 3; without it, the
                length of ``input_shape``) and ``num_out_channels``.

        Returns:

            A ``torch.nn.Sequential`` of the architecture and the head.

        Raises:

            ImportError: torch is not installed (it comes with the ``torch``
            extra).

            TypeError: ``architecture`` is not a ``torch.nn.Module``, or its
            ``num_out_channels`` is missing or not a positive int.

            ValueError: neither ``dims`` nor ``input_shape`` gives 2 or 3
            spatial axes.
        """
        return _prediction.model_head(architecture, self.embedding_dims, self.kernel_size)

    # -- target ----------------------------------------------------------------

    def process(self, labels, voxel_size, normalize=None, normalize_args=None, *, threads=None):
        """The target of a binary ground truth as a numpy array.

        Args:

            labels (``ndarray``):

                Binary gt, ``(classes, [z,] [y,] x)``; without a channel axis
                when there is one class.

            voxel_size (``Coordinate`` or sequence):

                Voxel size in world units, z-y-x.

            normalize (``str``, optional):

                ``None`` for raw signed distances (world units, ``+-inf``
                where a channel has no face), or ``"tanh"``. (The nodes and
                :meth:`create_target` pass ``"tanh"``; see also
                :meth:`create_distance_mask`, where ``None`` means ``"tanh"``.)

            normalize_args (``float``, optional):

                The scale of ``"tanh"``; the predictor's ``scale_factor`` by
                default.

            threads (``int``, optional):

                Threads for this call; the predictor's ``threads`` by default.

        Returns:

            ``float32`` array ``(2 * classes, ...)``: one-hot channels, then
            distance channels.

        Raises:

            ValueError: ``labels`` of another shape than ``(classes, ...)``
            with one spatial axis per ``voxel_size`` entry, values other than
            0 and 1, or a ``normalize`` other than ``None`` and ``"tanh"``.
        """
        voxel_size = _checks.as_spatial_voxel_size(voxel_size)
        labels = self._with_channel_axis(labels, "labels", len(voxel_size))
        threads = self._threads(threads)
        if normalize is None:
            target = np.empty((2 * self.classes,) + labels.shape[1:], dtype=np.float32)
            for c in range(self.classes):
                target[self.classes + c] = signed_face_distance(
                    labels[c], voxel_size, threads=threads
                )
                target[c] = labels[c]
            return target
        scale = self._normalization(normalize, normalize_args)
        return hot_distance_target(labels, voxel_size, scale, threads=threads)

    def create_target(self, gt):
        """The target of a gt ``Array``, as an ``Array`` with the same offset
        and voxel size.

        Args:

            gt (``funlib.persistence.Array``):

                Binary gt with one channel per class (or none, for one class).

        Returns:

            A ``float32`` ``funlib.persistence.Array`` ``(2 * classes, ...)``.

        Raises:

            TypeError: ``gt`` is not a ``funlib.persistence.Array``.

            ValueError: ``gt`` does not hold one channel per class, or holds
            values other than 0 and 1.
        """
        data = _arrays.array_data(gt, "gt")
        # checked here so that a wrong gt is reported as "gt", not "labels"
        data = self._with_channel_axis(data, "gt", gt.voxel_size.dims)
        target = self.process(data, gt.voxel_size, self.norm, self.dt_scale_factor)
        return _arrays.like(target, gt)

    # -- weights ---------------------------------------------------------------

    def create_weight(self, gt, target, mask, moving_class_counts=None):
        """Class-balanced weights for ``target``, and the updated counts.

        Args:

            gt (``funlib.persistence.Array``):

                The binary gt the target was made from.

            target (``funlib.persistence.Array``):

                The target from :meth:`create_target`.

            mask (``funlib.persistence.Array`` or ``None``):

                Binary mask, one channel per class or none; ``None`` for all
                known.

            moving_class_counts (``ndarray``, optional):

                ``(embedding_dims, 2)`` background and foreground voxels seen
                so far, from an earlier call; not modified.

        Returns:

            ``(weights, counts)``: a ``float32`` ``Array`` like the target,
            and the updated ``(embedding_dims, 2)`` counts.
        """
        gt_data = self._with_channel_axis(
            _arrays.array_data(gt, "gt"), "gt", gt.voxel_size.dims
        )
        target_data = _arrays.array_data(target, "target")
        mask_data = None if mask is None else _arrays.array_data(mask, "mask")
        _arrays.check_aligned(gt, mask=mask, target=target)
        weights, counts = self.process_weight(
            gt_data, target_data, mask_data, gt.voxel_size, moving_class_counts
        )
        return _arrays.like(weights, gt), counts

    def process_weight(
        self, labels, target, mask, voxel_size, moving_class_counts=None, unknown=None,
        *, threads=None,
    ):
        """The numpy-level :meth:`create_weight`: ``(weights, counts)``.

        ``unknown`` is passed on to
        :func:`~gp_hotdistance.hot_distance_weights`: the distance to the
        unknown region when ``labels`` is a crop of a larger region.
        ``threads``: for this call; the predictor's ``threads`` by default.
        """
        voxel_size = _checks.as_spatial_voxel_size(voxel_size)
        labels = self._with_channel_axis(labels, "labels", len(voxel_size))
        if moving_class_counts is not None:
            # checked here so that an error names this method's argument
            moving_class_counts = _checks.as_counts(moving_class_counts, self.embedding_dims)
        return hot_distance_weights(
            labels,
            target,
            mask,
            voxel_size,
            self.dt_scale_factor,
            counts=moving_class_counts,
            mask_distances=self.mask_distances,
            epsilon=self.epsilon,
            threshold=self.threshold,
            clipmin=self.clipmin,
            clipmax=self.clipmax,
            unknown=unknown,
            threads=self._threads(threads),
        )

    def create_distance_mask(
        self, distances, mask, voxel_size, normalize=None, normalize_args=None, *,
        threads=None,
    ):
        """Where the target distances can be trusted (1) or not (0).

        Args:

            distances (``ndarray``):

                The target's distance channels ``(classes, ...)``, normalized
                by ``tanh`` with scale ``normalize_args`` (the predictor's
                ``scale_factor`` by default).

            mask (``ndarray`` or ``None``):

                Binary mask, ``(classes, ...)`` or ``(...)``. ``None``: every
                voxel of the array is known; outside the array is unknown in
                every case, so voxels near its edge may be distrusted.

            voxel_size (``Coordinate`` or sequence):

                Voxel size in world units, z-y-x.

            normalize (``str``, optional):

                ``"tanh"``; ``None`` means ``"tanh"`` here (the distances are
                always the target's tanh channels), unlike :meth:`process`,
                where ``None`` asks for raw distances.

            normalize_args (``float``, optional):

                The scale of ``"tanh"``; the predictor's ``scale_factor`` by
                default.

            threads (``int``, optional):

                Threads for this call; the predictor's ``threads`` by default.

        Returns:

            ``uint8`` array ``(classes, ...)``.

        Raises:

            ValueError: ``distances`` without one channel per class, a mask
            that does not fit them, or a ``normalize`` other than ``"tanh"``.
        """
        if normalize is None:
            normalize = self.norm
        scale = self._normalization(normalize, normalize_args)
        distances = _checks.as_array(distances, "distances")
        if distances.ndim >= 1 and distances.shape[0] != self.classes:
            raise ValueError(
                f"distances must have {self.classes} channels (one per class), "
                f"got shape {distances.shape}"
            )
        voxel_size = _checks.as_spatial_voxel_size(voxel_size)
        return distance_mask(
            distances, mask, voxel_size, scale,
            epsilon=self.epsilon, threshold=self.threshold, threads=self._threads(threads),
        )

    # -- context ---------------------------------------------------------------

    def padding(self, gt_voxel_size):
        """Context needed on each side of a target ROI, in world units.

        Args:

            gt_voxel_size (``Coordinate``):

                The gt's voxel size.

        Returns:

            ``Coordinate``: a multiple of the voxel size, at least the
            context distance plus half a voxel along every axis.
        """
        voxels = padding_voxels(self.max_distance, _checks.as_spatial_voxel_size(gt_voxel_size))
        return Coordinate(voxels) * Coordinate(gt_voxel_size)

    def gt_region_for_roi(self, target_spec):
        """The gt spec needed to compute the target over ``target_spec``.

        Args:

            target_spec (``gunpowder.ArraySpec``):

                The requested target's spec, with ``roi`` and ``voxel_size``.

        Returns:

            A new spec: a copy of ``target_spec`` with its ROI grown by
            :meth:`padding` (unbounded ROIs stay unbounded).

        Raises:

            TypeError: ``target_spec`` is not an ``ArraySpec``.

            ValueError: it has no voxel size, or its ROI is not on the voxel
            grid or has another number of dimensions.
        """
        roi, voxel_size = _arrays.spec_roi(target_spec, "target_spec")
        gt_spec = target_spec.copy()
        if roi is not None:
            padding = self.padding(voxel_size)
            gt_spec.roi = roi.grow(padding, padding)
        return gt_spec

    def to_target_range(self, prediction, *, channel_axis=0):
        """The raw output of a network trained with
        :class:`~gp_hotdistance.HotDistanceLoss`, in the target's ranges.

        The one-hot half (logits) goes through a sigmoid into [0, 1]; the
        distance half is clipped to [-1, 1], the range of the target's
        ``tanh`` distances. The input is not modified.

        Args:

            prediction (``ndarray`` or ``torch.Tensor``):

                ``embedding_dims`` channels along ``channel_axis``: one-hot
                logits, then distances.

            channel_axis (``int``, optional):

                The channel axis: 0 (the default) for a ``(channels, ...)``
                array as gunpowder holds it, 1 for a torch batch
                ``(batch, channels, ...)``.

        Returns:

            A new array (numpy, ``float32`` unless the input is ``float64``)
            or tensor of the same shape.

        Raises:

            ValueError: the channel axis does not hold ``embedding_dims``
            channels.

            TypeError: a ``channel_axis`` that is not an integer (Python's or
            numpy's), a numpy ``prediction`` that is not numeric (strings,
            complex, objects).
        """
        return _prediction.to_target_range(prediction, self.channels, channel_axis)

    # -- helpers ---------------------------------------------------------------

    def _threads(self, threads):
        """A call's ``threads``: the predictor's where ``None``."""
        return self.threads if threads is None else _checks.check_threads(threads)

    def _normalization(self, normalize, normalize_args):
        if normalize != "tanh":
            raise ValueError(f"normalize must be None or 'tanh', got {normalize!r}")
        if normalize_args is None:
            return self.dt_scale_factor
        return _checks.check_positive(normalize_args, "normalize_args")

    def _with_channel_axis(self, labels, name, spatial_dims):
        """``labels`` with its channel axis; one class may come without one."""
        return _checks.with_class_axis(labels, self.channels, name, spatial_dims)
