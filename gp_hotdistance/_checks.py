"""Argument checks shared by every layer of the package (private).

Each function raises ``TypeError`` for a value of the wrong type and
``ValueError`` for a value of the right type that is out of range, with a
message that names the argument and echoes the value; each returns the value
in the form the rest of the package works with.
"""

import math
import numbers

import numpy as np

from ._kernels.passes import MAX_AXIS_LENGTH

# ---------------------------------------------------------------------------
# Arrays for the kernels: any bool, integer or float dtype, either byte order,
# any layout, read-only or memory-mapped, brought once to the few dtypes the
# kernels are compiled for (native byte order, C order, writeable), so that a
# new dtype or layout compiles nothing new.
# ---------------------------------------------------------------------------

#: dtype kinds that are not labels, masks or distances, and their names
_REFUSED_KINDS = {
    "c": "complex numbers",
    "O": "Python objects",
    "U": "strings",
    "S": "bytes",
    "M": "datetimes",
    "m": "timedeltas",
    "V": "raw or structured records",
}


def check_numeric_dtype(array, name):
    """Raise ``TypeError`` unless ``array`` holds bools, integers or floats
    (in either byte order)."""
    if array.dtype.kind not in "biuf":
        what = _REFUSED_KINDS.get(array.dtype.kind, "no numbers")
        raise TypeError(
            f"{name} must be a bool, integer or float array, got dtype {array.dtype} ({what})"
        )


def _plain(array, dtype):
    """``array`` as a native-endian, C-ordered, writeable ``numpy.ndarray`` of
    ``dtype``: ``array`` itself where it is one already, else a copy (numba
    compiles read-only arrays, other byte orders and layouts anew)."""
    dtype = np.dtype(dtype)
    if (
        type(array) is np.ndarray
        and array.dtype == dtype  # '>f4' != '<f4'
        and array.flags.c_contiguous
        and array.flags.writeable
    ):
        return array
    out = np.empty(array.shape, dtype=dtype)
    np.copyto(out, array, casting="unsafe")
    return out


def kernel_binary(array):
    """``array != 0`` as native C-ordered uint8 (0 and 1), for the kernels: a
    view of ``array`` where it is already such bool or 8-bit 0/1 data (the
    caller has checked that it is binary)."""
    if array.dtype.itemsize == 1 and array.dtype.kind in "biu":
        return _plain(array, array.dtype).view(np.uint8)
    out = np.empty(array.shape, dtype=bool)
    np.not_equal(array, 0, out=out)
    return out.view(np.uint8)


def kernel_float32(array):
    """``array`` as native C-ordered float32 for the kernels (float64 and
    integer values are rounded to float32, the target's dtype)."""
    return _plain(array, np.float32)


def kernel_labels(labels, outside=None):
    """``labels`` (bool, integer or float, checked: no NaN) as uint8 or
    uint64 labels for the kernel, equal where ``labels`` are equal, and
    ``outside`` (a value of the labels' dtype, or ``None``) mapped alike.

    8-bit labels are viewed as uint8; other integers become uint64 (a
    one-to-one map); floats the bits of their float64 value with -0.0 taken
    as 0.0 (they are equal); wider floats than float64 are numbered.
    """
    dtype = labels.dtype
    if dtype.itemsize == 1 and dtype.kind in "biu":
        return (
            _plain(labels, dtype).view(np.uint8),
            None if outside is None else np.array(outside, dtype=dtype).view(np.uint8)[()],
        )
    extra = None if outside is None else np.array([outside], dtype=dtype)
    if dtype.kind in "iu":
        converted = _plain(labels, np.uint64)
        mapped = None if extra is None else extra.astype(np.uint64)[0]
        return converted, mapped
    if dtype.itemsize <= 8:
        converted = np.empty(labels.shape, dtype=np.float64)
        np.add(labels, 0.0, out=converted, casting="unsafe")  # -0.0 + 0.0 is 0.0
        mapped = None
        if extra is not None:
            mapped = (extra.astype(np.float64) + 0.0).view(np.uint64)[0]
        return converted.view(np.uint64), mapped
    # long double: no exact 64-bit image, so number the distinct values
    values = labels.reshape(-1) if extra is None else np.concatenate([labels.reshape(-1), extra])
    _, numbers = np.unique(values, return_inverse=True)
    numbers = numbers.astype(np.uint64).reshape(-1)
    converted = numbers[: labels.size].reshape(labels.shape).copy()
    return converted, (None if extra is None else numbers[-1])


def check_threads(threads):
    """``threads`` as a positive ``int``: how many threads a call's kernels
    may run on."""
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
        raise TypeError(f"threads must be a positive int, got {threads!r}")
    if threads < 1:
        raise ValueError(f"threads must be a positive int (1 or more), got {threads!r}")
    return int(threads)


def as_voxel_size(voxel_size, spatial_dims, name="voxel_size"):
    """``voxel_size`` as a tuple of ``spatial_dims`` positive finite floats
    (all ones if ``None``)."""
    if voxel_size is None:
        return (1.0,) * spatial_dims
    if isinstance(voxel_size, (str, bytes)) or not hasattr(voxel_size, "__len__"):
        raise TypeError(
            f"{name} must be a sequence of {spatial_dims} numbers (z-y-x), got {voxel_size!r}"
        )
    if len(voxel_size) != spatial_dims:
        raise ValueError(
            f"{name} must have one entry per spatial axis ({spatial_dims}), "
            f"got {tuple(voxel_size)!r}"
        )
    values = []
    for v in voxel_size:
        if not isinstance(v, numbers.Real) or isinstance(v, bool):
            raise TypeError(f"{name} must hold numbers, got {tuple(voxel_size)!r}")
        if not (_finite(v) and v > 0):
            raise ValueError(
                f"{name} entries must be positive and finite, got {tuple(voxel_size)!r}"
            )
        if not VOXEL_SIZE_RANGE[0] <= v <= VOXEL_SIZE_RANGE[1]:
            # squared distances are float32 in the kernels: far outside this
            # range they overflow to inf or round to 0
            raise ValueError(
                f"{name} entries must lie in [{VOXEL_SIZE_RANGE[0]:g}, "
                f"{VOXEL_SIZE_RANGE[1]:g}] world units, got {tuple(voxel_size)!r}; "
                f"express the voxel size in other units"
            )
        values.append(float(v))
    return tuple(values)


def class_names(channels):
    """``channels`` as a new list of one or more distinct class names."""
    if isinstance(channels, (str, bytes)):
        raise TypeError(
            f"channels must be a list of class names, got the string {channels!r}; "
            f"for one class write [{channels!r}]"
        )
    try:
        channels = list(channels)
    except TypeError:
        raise TypeError(f"channels must be a list of class names, got {channels!r}") from None
    if not channels:
        raise ValueError("channels must name at least one class, got []")
    if not all(isinstance(name, str) for name in channels):
        raise TypeError(f"channels must hold strings, got {channels!r}")
    if len(set(channels)) != len(channels):
        raise ValueError(f"channels must be distinct, got {channels!r}")
    return channels


#: Moving class counts stay below this, so that sums of them fit in int64.
MAX_COUNT = 2**61

#: The voxel sizes the kernels measure exactly with (world units, any unit).
VOXEL_SIZE_RANGE = (1e-15, 1e15)


def _finite(value):
    """``math.isfinite``, False for an int too large for a float."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_flag(value, name):
    """``value`` as a bool; 0 and 1 are not flags."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def check_tanh_range(values, name):
    """Refuse NaN and values outside [-1, 1]: ``values`` are tanh-normalised
    distances (a target's distance channels)."""
    if values.size == 0:
        return
    low, high = np.min(values), np.max(values)
    if np.isnan(low) or np.isnan(high):
        raise ValueError(f"{name} must hold tanh-normalised distances in [-1, 1], found NaN")
    if low < -1 or high > 1:
        raise ValueError(
            f"{name} must hold tanh-normalised distances in [-1, 1] (the target's "
            f"distance channels, normalize='tanh'), found values in [{low:g}, {high:g}]"
        )


def check_positive(value, name):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (_finite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return float(value)


def check_fraction(value, name, low_open=True, high_open=True):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    low_ok = value > 0 if low_open else value >= 0
    high_ok = value < 1 if high_open else value <= 1
    if not (_finite(value) and low_ok and high_ok):
        interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return float(value)


def as_array(array, name):
    if isinstance(array, np.ma.MaskedArray):
        # numpy.ma's mask would be ignored by some steps and honoured by
        # others: refuse it rather than give silently mixed results
        raise TypeError(
            f"{name} must be a plain numpy array, got a masked array (numpy.ma), whose "
            f"mask would be ignored; pass its data (np.ma.getdata), and the unknown "
            f"voxels as the mask argument where there is one"
        )
    if isinstance(array, np.ndarray):
        return array
    if hasattr(array, "__array__") or isinstance(array, (list, tuple)):
        try:
            return np.asarray(array)
        except ValueError as error:  # e.g. ragged nested lists
            raise ValueError(f"{name} must be an array of one shape: {error}") from None
    raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")


def check_spatial_rank(array, name, channel_axis):
    spatial = array.ndim - (1 if channel_axis else 0)
    if not 1 <= spatial <= 3:
        expected = "(channels, [z,] [y,] x)" if channel_axis else "([z,] [y,] x)"
        raise ValueError(
            f"{name} must have shape {expected} with 1 to 3 spatial axes, got shape {array.shape}"
        )
    if array.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    check_axis_lengths(array, name, spatial)
    return spatial


def check_axis_lengths(array, name, spatial_dims):
    """Refuse spatial axes (the last ``spatial_dims``) longer than the kernel
    measures exactly."""
    if spatial_dims > 0 and max(array.shape[-spatial_dims:]) > MAX_AXIS_LENGTH:
        raise ValueError(
            f"{name} must have spatial axes of at most {MAX_AXIS_LENGTH} voxels, "
            f"got shape {array.shape}"
        )


def check_binary(array, name):
    """Raise unless ``array`` holds only 0 and 1 (bool, integer or float)."""
    if array.dtype == bool:
        return
    # by kind: numpy counts timedelta64 as a signed integer
    check_numeric_dtype(array, name)
    low, high = array.min(), array.max()
    # NaN makes both comparisons false
    binary = low >= 0 and high <= 1
    if binary and np.issubdtype(array.dtype, np.floating):
        binary = not np.any((array != 0) & (array != 1))
    if not binary:
        values = np.unique(array)
        odd = values[(values != 0) & (values != 1)]
        raise ValueError(
            f"{name} must hold only 0 and 1 (binary, one channel per class), "
            f"found {odd[:5].tolist()}"
        )


def check_scale_threshold(scale_factor, threshold):
    """``scale_factor`` (positive) and the distance mask's ``threshold`` (in
    (0, 1)) as floats: the two settings of the tanh space in which the
    context, the trust reach and the distance mask are measured."""
    return (
        check_positive(scale_factor, "scale_factor"),
        check_fraction(threshold, "threshold"),
    )


def check_nonnegative(value, name):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (_finite(value) and value >= 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return float(value)


def check_distance(value, name):
    """``value`` as a float distance >= 0; ``inf`` is allowed."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a distance (a number), got {value!r}")
    if not value >= 0:
        raise ValueError(f"{name} must be a distance >= 0, got {value!r}")
    if not _finite(value):
        return math.inf  # an int too large for a float is as good as no cap
    return float(value)


def mask_channels(mask, shape, name):
    """Check ``mask`` against a ``(C, ...)`` shape and return it as ``(C, ...)``.

    ``mask`` may be ``None`` (returned as is: all known), ``(C, ...)`` (one
    channel per class) or ``(...)`` (one for all classes, returned as a
    broadcast view, ``strides[0] == 0``: see :func:`is_shared`).
    """
    if mask is None:
        return None
    mask = as_array(mask, name)
    if mask.shape != tuple(shape) and mask.shape != tuple(shape[1:]):
        raise ValueError(
            f"{name} must have shape {tuple(shape)} (one channel per class) or "
            f"{tuple(shape[1:])} (one for all classes), got {mask.shape}"
        )
    check_binary(mask, name)
    if mask.shape != tuple(shape):
        mask = np.broadcast_to(mask, shape)
    return mask


def is_shared(channels):
    """Whether a ``(C, ...)`` array is one channel broadcast to every class."""
    return channels.shape[0] > 1 and channels.strides[0] == 0


def as_counts(counts, channels, name="moving_class_counts"):
    """``counts`` as a new ``int64`` array ``(channels, 2)`` (zeros if ``None``)."""
    if counts is None:
        return np.zeros((channels, 2), dtype=np.int64)
    counts = as_array(counts, name)
    if counts.shape != (channels, 2):
        raise ValueError(
            f"{name} must have shape ({channels}, 2) (background and foreground "
            f"voxels per channel), got {counts.shape}; were they made for "
            f"another number of classes?"
        )
    if not np.issubdtype(counts.dtype, np.integer):
        raise TypeError(f"{name} must hold non-negative integer counts, got dtype {counts.dtype}")
    if np.any(counts < 0):
        raise ValueError(f"{name} must hold non-negative integer counts, got {counts.min()}")
    # a channel's two counts, and what a batch adds, are summed in int64
    if counts.size and counts.max() >= MAX_COUNT:
        raise ValueError(f"{name} must hold counts below 2**61, got {counts.max()}")
    return counts.astype(np.int64)


def check_clip(clipmin, clipmax):
    clipmin = check_fraction(clipmin, "clipmin", high_open=False)
    clipmax = check_fraction(clipmax, "clipmax", high_open=False)
    if clipmin > clipmax:
        raise ValueError(f"clipmin ({clipmin}) must not exceed clipmax ({clipmax})")
    return clipmin, clipmax


def as_spatial_voxel_size(voxel_size, name="voxel_size"):
    """``voxel_size`` (1 to 3 entries, z-y-x) as a tuple of positive floats."""
    if voxel_size is None:
        raise ValueError(f"{name} must be given (world units per voxel, z-y-x)")
    try:
        voxel_size = tuple(voxel_size)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of numbers, got {voxel_size!r}") from None
    if not 1 <= len(voxel_size) <= 3:
        raise ValueError(f"{name} must have 1 to 3 entries (z-y-x), got {voxel_size!r}")
    return as_voxel_size(voxel_size, len(voxel_size), name)


def check_positive_int(value, name):
    """``value`` as a positive ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


#: The extra that brings torch, named by :func:`import_torch`'s error.
TORCH_EXTRA = 'pip install "gp_hotdistance[torch]"'


def import_torch(feature):
    """Import torch for ``feature``, or raise an ``ImportError`` that names the
    extra to install (torch is not a requirement of the package)."""
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            f"{feature} needs torch, which is not installed; install it with "
            f"{TORCH_EXTRA} (or a torch build of your choice)"
        ) from error
    return torch
