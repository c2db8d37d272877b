"""The one entry of the ground truth and the mask (private).

Every entry point (the predictor, both nodes, the precompute) hands what the
user has to :func:`class_gt`: either binary channels (one per class; the class
axis may be missing for one class) or, with :class:`LabelGroups`, one integer
label image whose ids make up the classes. It comes back as ``(classes, ...)``
binary channels plus a ``(classes, ...)`` mask (a broadcast view where one mask
serves every class), validated once, with messages that name the user's
argument or array key. The numpy layer's private cores then take these as they
are.

"The class axis" is the leading axis of ``(classes, ...)`` arrays, one entry
per class name; :func:`class_axis` adds it where one class comes without it.
"""

import numbers
from dataclasses import dataclass

import numpy as np

from . import _checks

#: The group of a class that is every non-zero id of the label image (an
#: instance label volume of one class).
NONZERO = "nonzero"

# groups of at most this many ids are matched by one comparison per id; more
# go through np.isin
_FEW_IDS = 8


@dataclass(frozen=True)
class LabelGroups:
    """Checked class groups: per class the ids that make it up (``None``: every
    non-zero id), the ids that mean "not annotated", and which classes measure
    their distances between instances."""

    ids: tuple
    unannotated: tuple
    instances: tuple

    def settings(self, channels):
        """The groups as plain JSON values, to record with a run."""
        return {
            "groups": {
                name: NONZERO if ids is None else list(ids) for name, ids in zip(channels, self.ids)
            },
            "unannotated": list(self.unannotated),
            "instances": [name for name, flag in zip(channels, self.instances) if flag],
        }


def _id_list(values, name):
    """``values`` as a sorted tuple of distinct Python ints."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a list of integer label ids, got {values!r}")
    values = list(values.tolist() if isinstance(values, np.ndarray) else values)
    odd = [
        v for v in values if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral)
    ]
    if odd:
        raise TypeError(f"{name} must hold integer label ids, got {odd[:5]!r}")
    return tuple(sorted({int(v) for v in values}))


def label_groups(groups, channels, unannotated=None, instances=None):
    """Check the class groups of a label image against ``channels``; a
    :class:`LabelGroups`, or ``None`` without ``groups``."""
    if groups is None:
        if unannotated is not None or instances is not None:
            given = "unannotated" if unannotated is not None else "instances"
            raise ValueError(
                f"{given} applies to a label image: give groups too (the label ids "
                f"of each class in {list(channels)})"
            )
        return None
    if isinstance(groups, (list, tuple)) and all(
        isinstance(pair, (list, tuple)) and len(pair) == 2 for pair in groups
    ):
        # dacapo's form: [("mito", [3, 4, 5]), ...]
        names = [pair[0] for pair in groups]
        if len(set(names)) != len(names):
            raise ValueError(f"groups names a class twice: {names!r}")
        groups = dict(groups)
    if not hasattr(groups, "items"):
        raise TypeError(
            f"groups must be a mapping from class name to label ids, such as "
            f"{{'mito': [3, 4, 5]}} (or a list of such pairs), got "
            f"{type(groups).__name__}"
        )
    unknown = [name for name in groups if name not in channels]
    if unknown:
        raise ValueError(
            f"groups names the class {unknown[0]!r}, which is not in channels {list(channels)}"
        )
    missing = [name for name in channels if name not in groups]
    if missing:
        raise ValueError(
            f"groups has no label ids for the class {missing[0]!r}; it needs an "
            f"entry for each class in channels {list(channels)}"
        )
    ids = []
    for name in channels:
        group = groups[name]
        if isinstance(group, str) and group == NONZERO:
            ids.append(None)
            continue
        group = _id_list(group, f"groups[{name!r}]")
        if not group:
            raise ValueError(
                f"groups[{name!r}] is empty; give the label ids of the class, or "
                f"{NONZERO!r} for every non-zero id"
            )
        ids.append(group)
    unannotated = () if unannotated is None else _id_list(unannotated, "unannotated")
    flags = [False] * len(channels)
    if instances is not None:
        if isinstance(instances, str):
            raise TypeError(
                f"instances must be a list of class names, got the string "
                f"{instances!r}; for one class write [{instances!r}]"
            )
        for name in instances:
            if name not in channels:
                raise ValueError(
                    f"instances names the class {name!r}, which is not in channels {list(channels)}"
                )
            c = list(channels).index(name)
            if ids[c] is not None and 0 in ids[c]:
                raise ValueError(
                    f"instances: the class {name!r} holds label id 0, which marks the "
                    f"outside of its instances; its instance ids must be non-zero"
                )
            flags[c] = True
    return LabelGroups(tuple(ids), unannotated, tuple(flags))


def class_axis(array, classes, name, spatial_dims, channel_names):
    """``array`` with its class axis, ``(classes, ...)``; one class may come
    without it. ``channel_names`` only go into the message."""
    if classes == 1 and array.ndim == spatial_dims:
        array = array[np.newaxis]
    if array.ndim != spatial_dims + 1 or array.shape[0] != classes:
        raise ValueError(
            f"{name} must have shape ({classes}, <{spatial_dims} spatial "
            f"axes>) (one channel per class in {list(channel_names)}, one spatial "
            f"axis per voxel_size entry), got shape {array.shape}"
        )
    return array


@dataclass
class ClassGt:
    """The gt as the cores take it: ``channels`` ``(classes, ...)`` binary,
    ``mask`` ``(classes, ...)`` (a broadcast view when shared) or ``None``,
    and, for a label image, the native-order ``labels`` with the classes that
    measure between instances (``instances``, one flag per class)."""

    channels: np.ndarray
    mask: object = None
    labels: object = None
    instances: tuple = ()

    def instance_labels(self, c):
        """The ids of class ``c``'s voxels (0 elsewhere) as C-contiguous
        ``uint64``, or ``None`` where the class is measured as one label."""
        if not self.instances or not self.instances[c]:
            return None
        # uint64 keeps every id of any integer dtype distinct (negative ones
        # wrap to large ones)
        ids = self.labels.astype(np.uint64)
        ids[~self.channels[c]] = 0
        return ids


def class_gt(gt, mask, *, channels, spatial_dims, groups=None, gt_name="gt", mask_name="mask"):
    """Turn the user's gt (binary channels, or a label image with ``groups``)
    and mask into a :class:`ClassGt`, checked once.

    ``gt`` and ``mask`` are numpy arrays (or array-likes); ``mask`` may be
    ``None``, ``(classes, ...)`` or ``(...)``. Unannotated ids of the label
    image zero the mask of every class.
    """
    gt = _checks.as_array(gt, gt_name)
    classes = len(channels)
    if gt.size == 0:
        raise ValueError(f"{gt_name} must not be empty, got shape {gt.shape}")
    if groups is None:
        gt = class_axis(gt, classes, gt_name, spatial_dims, channels)
        _checks.check_axis_lengths(gt, gt_name, spatial_dims)
        for c in range(classes):
            _checks.check_binary(gt[c], f"{gt_name} channel {c}")
        result = ClassGt(gt)
        annotated = None
    else:
        labels = label_image(gt, gt_name, spatial_dims, channels)
        _checks.check_axis_lengths(labels, gt_name, spatial_dims)
        binary = np.empty((classes,) + labels.shape, dtype=bool)
        for c, ids in enumerate(groups.ids):
            members(labels, ids, binary[c])
        result = ClassGt(binary, labels=labels, instances=groups.instances)
        annotated = None
        if groups.unannotated:
            annotated = ~members(labels, groups.unannotated)
    result.mask = class_mask(mask, result.channels.shape, mask_name, annotated)
    return result


def label_image(gt, name, spatial_dims, channels):
    """A label image ``gt`` in native byte order, checked."""
    if gt.dtype.kind not in "iu":
        raise TypeError(
            f"{name} must be an integer label image (any integer dtype) when the "
            f"classes are given as groups of ids, got dtype {gt.dtype}"
        )
    if gt.ndim != spatial_dims:
        axis = " with a channel axis" if gt.ndim == spatial_dims + 1 else ""
        raise ValueError(
            f"{name} must be a label image (<{spatial_dims} spatial axes>, no "
            f"channel axis) when the classes {list(channels)} are given as groups "
            f"of ids, got shape {gt.shape}{axis}"
        )
    if not gt.dtype.isnative:
        gt = gt.astype(gt.dtype.newbyteorder("="))
    return gt


def members(labels, ids, out=None):
    """``out`` (bool, shaped like ``labels``) set where ``labels`` is one of
    ``ids`` (a tuple of ints; ``None``: every non-zero id)."""
    if out is None:
        out = np.empty(labels.shape, dtype=bool)
    if ids is None:
        return np.not_equal(labels, 0, out=out)
    info = np.iinfo(labels.dtype)
    # ids the dtype cannot hold match nothing; those it holds are compared in
    # its own type (a uint64 image against int64 ids would compare as float)
    held = np.array([i for i in ids if info.min <= i <= info.max], dtype=labels.dtype)
    if held.size == 0:
        out.fill(False)
    elif held.size <= _FEW_IDS:
        np.equal(labels, held[0], out=out)
        for i in held[1:]:
            out |= labels == i
    else:
        out[...] = np.isin(labels, held)
    return out


def class_mask(mask, shape, name, annotated):
    """The user's mask as ``(classes, ...)`` (or ``None``), with the
    unannotated voxels (``annotated`` False) zeroed for every class."""
    masks = _checks.mask_channels(mask, shape, name)
    if annotated is None:
        return masks
    if masks is None:
        return np.broadcast_to(annotated, shape)
    if _checks.is_shared(masks) or shape[0] == 1:
        return np.broadcast_to(masks[0].astype(bool) & annotated, shape)
    return masks.astype(bool) & annotated
