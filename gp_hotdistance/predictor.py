"""The :class:`HotDistancePredictor`: the spec's API over
:mod:`gp_hotdistance.distance` and :mod:`gp_hotdistance.weights`."""

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional, Tuple

import numpy as np
from funlib.geometry import Coordinate
from funlib.persistence import Array

from . import _arrays, _checks, _gt, _prediction
from ._prediction import HotDistanceArrayType
from .distance import _target, context_distance, padding_voxels
from .weights import _weights, distance_mask, trust_reach

if TYPE_CHECKING:  # for the annotations only: neither is needed at run time
    import gunpowder
    import torch

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

    The gt is either binary, one channel per class (the channel axis may be
    missing for one class), or, with ``groups``, one integer label image whose
    ids make up the classes (see ``docs/label_groups.md``).

    Attributes named by the spec: ``dt_scale_factor`` (an alias of
    :attr:`scale_factor`), ``max_distance`` (the context distance of the
    target, see :func:`~gp_hotdistance.distance.context_distance`; not the
    ``max_distance`` argument of
    :func:`~gp_hotdistance.distance.unknown_distance`, which is a cap on the
    distances it reports), ``norm`` (``"tanh"``), ``epsilon`` and
    ``threshold``. The spec's :meth:`process` is an alias of
    :meth:`compute_target`.

    Where the reference implementation this API comes from is wrong, this one
    does the right thing; the documentation's page "Differences from dacapo"
    (``docs/differences.md``) lists each difference.

    Args:

        channels (``list`` of ``str``):

            The name of each class, one gt channel each.

        scale_factor (``float``):

            World distance at which the target reaches ``tanh(1)``.

        mask_distances (``bool``):

            Whether to zero the distance weights where an unknown region (mask
            0) or the edge of the data is not clearly farther than the
            measured boundary (see :func:`~gp_hotdistance.distance_mask`).

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

        groups (``dict``, optional):

            Keyword only. The gt is then one integer label image (no channel
            axis, any integer dtype, either byte order): ``{class name: [label
            ids]}``, one entry per class in ``channels`` (which gives the
            order); groups may overlap; ids in no group are background. The
            string ``"nonzero"`` in place of a list makes a class of every
            non-zero id (an instance label volume of one class).

        unannotated (``list`` of ``int``, optional):

            Keyword only, with ``groups``: label ids that mean "not
            annotated". The mask is 0 there for every class (on top of the
            mask given, if any).

        instances (``list`` of ``str``, optional):

            Keyword only, with ``groups``: classes whose distances are
            measured to the nearest face between different ids (different
            instances of the class, or the class and anything else), so that
            touching instances are apart in the target.

        threads (``int``, optional):

            Keyword only. Threads each call of the kernels may use (the
            target, the weights with ``mask_distances``, the distance mask);
            each method also takes ``threads`` for one call. Default 1, so
            that N ``gp.PreCache`` workers on N cores do not oversubscribe
            them (see the threads page of the docs).

    Examples:

        >>> import numpy as np
        >>> from funlib.persistence import Array
        >>> predictor = HotDistancePredictor(["cell"], scale_factor=4.0, mask_distances=False)
        >>> gt = Array(np.array([[0, 0, 1, 1]], np.uint8), offset=(0, 0), voxel_size=(2, 2))
        >>> predictor.create_target(gt)[gt.roi].round(2)
        array([[[ 0.  ,  0.  ,  1.  ,  1.  ]],
        <BLANKLINE>
               [[-0.64, -0.24,  0.24,  0.64]]], dtype=float32)

        A label image whose ids 3 and 4 make up "mito", id 9 "er":

        >>> predictor = HotDistancePredictor(
        ...     ["mito", "er"], 4.0, False, groups={"mito": [3, 4], "er": [9]})
        >>> labels = np.array([[0, 3, 4, 9]], np.uint64)
        >>> predictor.compute_target(labels, (2, 2))[:2]
        array([[[0., 1., 1., 0.]],
        <BLANKLINE>
               [[0., 0., 0., 1.]]], dtype=float32)
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
        groups=None,
        unannotated=None,
        instances=None,
        threads=1,
    ):
        channels = _checks.class_names(channels)
        mask_distances = _checks.check_flag(mask_distances, "mask_distances")
        kernel_size = _checks.check_positive_int(kernel_size, "kernel_size")

        self.channels = channels
        self.scale_factor = _checks.check_positive(scale_factor, "scale_factor")
        self.mask_distances = bool(mask_distances)
        self.kernel_size = kernel_size
        self.tolerance = _checks.check_fraction(tolerance, "tolerance")
        self.epsilon = _checks.check_nonnegative(epsilon, "epsilon")
        self.threshold = _checks.check_fraction(threshold, "threshold")
        self.clipmin, self.clipmax = _checks.check_clip(clipmin, clipmax)
        self.groups = _gt.label_groups(groups, channels, unannotated, instances)
        self.threads = _checks.check_threads(threads)
        self.max_distance = context_distance(self.scale_factor, self.tolerance, self.threshold)

    @property
    def dt_scale_factor(self) -> float:
        """The spec's name of :attr:`scale_factor`."""
        return self.scale_factor

    @property
    def classes(self) -> int:
        """The number of classes."""
        return len(self.channels)

    @property
    def embedding_dims(self) -> int:
        """The number of output channels: one-hot plus distance per class."""
        return 2 * self.classes

    @property
    def output_array_type(self) -> HotDistanceArrayType:
        """A :class:`HotDistanceArrayType` with ``embedding_dims`` named,
        interpolatable channels."""
        names = [f"{name}_hot" for name in self.channels]
        names += [f"{name}_distance" for name in self.channels]
        return HotDistanceArrayType(tuple(names))

    def __repr__(self):
        groups = ""
        if self.groups is not None:
            settings = self.groups.settings(self.channels)
            groups = f", groups={settings['groups']!r}"
            if settings["unannotated"]:
                groups += f", unannotated={settings['unannotated']!r}"
            if settings["instances"]:
                groups += f", instances={settings['instances']!r}"
        return (
            f"HotDistancePredictor(channels={self.channels!r}, "
            f"scale_factor={self.scale_factor!r}, "
            f"mask_distances={self.mask_distances!r}{groups})"
        )

    # -- model ---------------------------------------------------------------

    def create_model(self, architecture: "torch.nn.Module") -> "torch.nn.Module":
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

    def compute_target(
        self,
        gt: np.ndarray,
        voxel_size: Sequence[float],
        *,
        normalize: Optional[str] = "tanh",
        scale_factor: Optional[float] = None,
        name: str = "gt",
        threads: Optional[int] = None,
    ) -> np.ndarray:
        """The target of a ground truth as a numpy array.

        Args:

            gt (``ndarray``):

                Binary gt, ``(classes, [z,] [y,] x)`` (without a channel axis
                when there is one class); with the predictor's ``groups``, an
                integer label image ``([z,] [y,] x)``.

            voxel_size (``Coordinate`` or sequence):

                Voxel size in world units, z-y-x.

            normalize (``str``, optional):

                ``"tanh"`` (the default), or ``None`` for raw signed distances
                (world units, ``+-inf`` where a channel has no face).

            scale_factor (``float``, optional):

                The scale of ``"tanh"``; the predictor's :attr:`scale_factor`
                by default.

            name (``str``, optional):

                The name of ``gt`` in error messages.

            threads (``int``, optional):

                Threads for this call; the predictor's ``threads`` by default.

        Returns:

            ``float32`` array ``(2 * classes, ...)``: one-hot channels, then
            distance channels.

        Raises:

            ValueError: ``gt`` of another shape than ``(classes, ...)`` (or a
            label image's) with one spatial axis per ``voxel_size`` entry,
            binary channels with values other than 0 and 1, a bad voxel size
            or a ``normalize`` other than ``None`` and ``"tanh"``.

            TypeError: ``gt`` that is not an array of numbers (or, with
            ``groups``, not of integers), a voxel size that is not a sequence
            of numbers.
        """
        inverse_scale = 0.0
        if normalize is not None:
            inverse_scale = 1.0 / self._normalization(normalize, scale_factor, "scale_factor")
        return self._numpy_target(gt, voxel_size, inverse_scale, name, self._threads(threads))

    def process(
        self,
        labels: np.ndarray,
        voxel_size: Sequence[float],
        normalize: Optional[str] = None,
        normalize_args: Optional[float] = None,
        *,
        threads: Optional[int] = None,
    ) -> np.ndarray:
        """The spec's name of :meth:`compute_target`, with the spec's
        defaults: ``process(labels, voxel_size, normalize, normalize_args)``
        is ``compute_target(labels, voxel_size, normalize=normalize,
        scale_factor=normalize_args, name="labels")``; ``normalize=None``
        (the default here) gives raw signed distances.

        Raises:

            ValueError, TypeError: as :meth:`compute_target` (its ``gt`` named
            ``labels``).
        """
        inverse_scale = 0.0
        if normalize is not None:
            inverse_scale = 1.0 / self._normalization(normalize, normalize_args)
        return self._numpy_target(
            labels, voxel_size, inverse_scale, "labels", self._threads(threads)
        )

    def create_target(self, gt: Array, *, threads: Optional[int] = None) -> Array:
        """The target of a gt ``Array``, as an ``Array`` with the same offset
        and voxel size.

        Args:

            gt (``funlib.persistence.Array``):

                Binary gt with one channel per class (or none, for one class),
                or, with ``groups``, an integer label image.

        Returns:

            A ``float32`` ``funlib.persistence.Array`` ``(2 * classes, ...)``.

        Raises:

            TypeError: ``gt`` is not a ``funlib.persistence.Array``.

            ValueError: ``gt`` does not hold one channel per class, or holds
            values other than 0 and 1.
        """
        data = _arrays.array_data(gt, "gt")
        voxel_size = _checks.as_spatial_voxel_size(gt.voxel_size)
        class_gt = self._class_gt(data, None, len(voxel_size), "gt")
        target = self._target(class_gt, voxel_size, 1.0 / self.scale_factor, self._threads(threads))
        return _arrays.like(target, gt)

    # -- weights ---------------------------------------------------------------

    def create_weight(
        self,
        gt: Array,
        target: Array,
        mask: Optional[Array],
        moving_class_counts: Optional[np.ndarray] = None,
        *,
        threads: Optional[int] = None,
    ) -> Tuple[Array, np.ndarray]:
        """Class-balanced weights for ``target``, and the updated counts.

        Args:

            gt (``funlib.persistence.Array``):

                The gt the target was made from.

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
        gt_data = _arrays.array_data(gt, "gt")
        target_data = _arrays.array_data(target, "target")
        mask_data = None if mask is None else _arrays.array_data(mask, "mask")
        _arrays.check_aligned(gt, mask=mask, target=target)
        voxel_size = _checks.as_spatial_voxel_size(gt.voxel_size)
        if moving_class_counts is not None:
            moving_class_counts = _checks.as_counts(moving_class_counts, self.embedding_dims)
        class_gt = self._class_gt(gt_data, mask_data, len(voxel_size), "gt", "mask")
        weights, counts = self._weights(
            class_gt, target_data, voxel_size, moving_class_counts, None, self._threads(threads)
        )
        return _arrays.like(weights, gt), counts

    def process_weight(
        self,
        labels: np.ndarray,
        target: np.ndarray,
        mask: Optional[np.ndarray],
        voxel_size: Sequence[float],
        moving_class_counts: Optional[np.ndarray] = None,
        unknown: Optional[np.ndarray] = None,
        *,
        threads: Optional[int] = None,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """The numpy-level :meth:`create_weight`: ``(weights, counts)``.

        ``unknown`` is passed on to
        :func:`~gp_hotdistance.hot_distance_weights`: the distance to the
        unknown region when ``labels`` is a crop of a larger region.
        ``threads``: for this call; the predictor's ``threads`` by default.
        """
        voxel_size = _checks.as_spatial_voxel_size(voxel_size)
        if moving_class_counts is not None:
            # checked here so that an error names this method's argument
            moving_class_counts = _checks.as_counts(moving_class_counts, self.embedding_dims)
        class_gt = self._class_gt(labels, mask, len(voxel_size), "labels", "mask")
        return self._weights(
            class_gt, target, voxel_size, moving_class_counts, unknown, self._threads(threads)
        )

    def create_distance_mask(
        self,
        distances: np.ndarray,
        mask: Optional[np.ndarray],
        voxel_size: Sequence[float],
        normalize: Optional[str] = None,
        normalize_args: Optional[float] = None,
        *,
        threads: Optional[int] = None,
    ) -> np.ndarray:
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
            distances,
            mask,
            voxel_size,
            scale,
            epsilon=self.epsilon,
            threshold=self.threshold,
            threads=self._threads(threads),
        )

    # -- context ---------------------------------------------------------------

    def padding(self, gt_voxel_size: Sequence[float]) -> Coordinate:
        """Context needed on each side of a target ROI, in world units.

        Args:

            gt_voxel_size (``Coordinate``):

                The gt's voxel size.

        Returns:

            ``Coordinate``: a multiple of the voxel size, at least the
            context distance plus half a voxel along every axis; with
            ``mask_distances``, at least the trust reach
            (:func:`~gp_hotdistance.weights.trust_reach`) plus half a voxel
            too, so that :class:`~gp_hotdistance.BalanceHotDistance` never
            requests the mask beyond the gt.
        """
        voxel_size = _checks.as_spatial_voxel_size(gt_voxel_size)
        reach = self.max_distance
        if self.mask_distances:
            reach = max(
                reach, trust_reach(self.dt_scale_factor, self.threshold, voxel_size=voxel_size)
            )
        return Coordinate(padding_voxels(reach, voxel_size)) * Coordinate(gt_voxel_size)

    def gt_region_for_roi(self, target_spec: "gunpowder.ArraySpec") -> "gunpowder.ArraySpec":
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

    def to_target_range(
        self, prediction: "np.ndarray | torch.Tensor", *, channel_axis: int = 0
    ) -> "np.ndarray | torch.Tensor":
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

    def _normalization(self, normalize, normalize_args, name="normalize_args"):
        if normalize != "tanh":
            raise ValueError(f"normalize must be None or 'tanh', got {normalize!r}")
        if normalize_args is None:
            return self.scale_factor
        return _checks.check_positive(normalize_args, name)

    def _class_gt(self, gt, mask, spatial_dims, gt_name, mask_name="mask"):
        """The gt (and mask) through the package's one entry: a checked
        :class:`~gp_hotdistance._gt.ClassGt`."""
        return _gt.class_gt(
            gt,
            mask,
            channels=self.channels,
            spatial_dims=spatial_dims,
            groups=self.groups,
            gt_name=gt_name,
            mask_name=mask_name,
        )

    def _numpy_target(self, gt, voxel_size, inverse_scale, name, threads):
        voxel_size = _checks.as_spatial_voxel_size(voxel_size)
        class_gt = self._class_gt(gt, None, len(voxel_size), name)
        return self._target(class_gt, voxel_size, inverse_scale, threads)

    def _target(self, class_gt, voxel_size, inverse_scale, threads=None):
        """The target of a checked gt (raw distances where ``inverse_scale``
        is 0); ``threads`` checked, the predictor's where ``None``."""
        return _target(
            class_gt.channels,
            voxel_size,
            inverse_scale,
            class_gt.instance_labels,
            threads=self.threads if threads is None else threads,
        )

    def _weights(self, class_gt, target, voxel_size, counts, unknown, threads=None):
        """``(weights, counts)`` of a checked gt and mask."""
        return _weights(
            class_gt.channels,
            target,
            class_gt.mask,
            voxel_size,
            self.scale_factor,
            counts=counts,
            mask_distances=self.mask_distances,
            epsilon=self.epsilon,
            threshold=self.threshold,
            clipmin=self.clipmin,
            clipmax=self.clipmax,
            unknown=unknown,
            threads=self.threads if threads is None else threads,
        )
