"""A small 3-D U-Net with valid convolutions, sized for CPU training.

Valid (unpadded) convolutions make the output smaller than the input, but
every output voxel sees its whole receptive field in real data, so blockwise
prediction (``gp.Scan``) has no seams. :meth:`UNet.output_shape` and
:meth:`UNet.valid_input_shape` do the shape arithmetic.
"""

import torch


class ConvBlock(torch.nn.Module):
    """``num_convs`` valid 3x3x3 convolutions, each followed by a leaky ReLU.

    Leaky, because with plain ReLUs and Adam at 3e-3 half the channels of
    this small network died early in training (they never fired again), and
    a run left with a few live channels lost whole classes.
    """

    def __init__(self, in_channels, out_channels, num_convs):
        super().__init__()
        layers = []
        for i in range(num_convs):
            layers.append(torch.nn.Conv3d(in_channels if i == 0 else out_channels, out_channels, 3))
            layers.append(torch.nn.LeakyReLU(0.01, inplace=True))
        self.layers = torch.nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


def _center_crop(x, shape):
    """The central ``shape`` (spatial) of the 5-D tensor ``x``."""
    offsets = [(have - want) // 2 for have, want in zip(x.shape[2:], shape)]
    slices = tuple(slice(o, o + s) for o, s in zip(offsets, shape))
    return x[(Ellipsis,) + slices]


class UNet(torch.nn.Module):
    """A 3-D U-Net with valid convolutions.

    Args:

        in_channels (``int``):

            Channels of the input (1 for a raw EM volume).

        num_fmaps (``int``):

            Feature maps at the top level; also the number of output channels
            (``num_out_channels``), to which a head is attached
            (``HotDistancePredictor.create_model``).

        fmap_inc_factor (``int``):

            Feature maps grow by this factor at each level down.

        downsample_factors (``list`` of 3-tuples):

            Max-pooling factor per level, z-y-x, e.g. ``[(1, 2, 2), (2, 2, 2)]``
            for anisotropic data.

        num_convs (``int``):

            Convolutions per level and side.
    """

    dims = 3

    def __init__(
        self,
        in_channels=1,
        num_fmaps=12,
        fmap_inc_factor=2,
        downsample_factors=((2, 2, 2), (2, 2, 2)),
        num_convs=2,
    ):
        super().__init__()
        self.downsample_factors = [tuple(int(f) for f in factors) for factors in downsample_factors]
        self.num_convs = num_convs
        self.num_out_channels = num_fmaps
        levels = len(self.downsample_factors) + 1
        fmaps = [num_fmaps * fmap_inc_factor**level for level in range(levels)]

        self.down = torch.nn.ModuleList()
        self.pools = torch.nn.ModuleList()
        for level in range(levels):
            self.down.append(
                ConvBlock(in_channels if level == 0 else fmaps[level - 1], fmaps[level], num_convs)
            )
            if level < levels - 1:
                factors = self.downsample_factors[level]
                self.pools.append(torch.nn.MaxPool3d(factors, stride=factors))

        self.ups = torch.nn.ModuleList()
        self.up_convs = torch.nn.ModuleList()
        for level in reversed(range(levels - 1)):
            factors = self.downsample_factors[level]
            self.ups.append(
                torch.nn.ConvTranspose3d(fmaps[level + 1], fmaps[level], factors, stride=factors)
            )
            self.up_convs.append(ConvBlock(2 * fmaps[level], fmaps[level], num_convs))

    def forward(self, x):
        skips = []
        for level, block in enumerate(self.down):
            x = block(x)
            if level < len(self.pools):
                skips.append(x)
                x = self.pools[level](x)
        for up, block in zip(self.ups, self.up_convs):
            x = up(x)
            skip = _center_crop(skips.pop(), x.shape[2:])
            x = block(torch.cat([skip, x], dim=1))
        return x

    # -- shape arithmetic --------------------------------------------------------

    def output_shape(self, input_shape):
        """The output shape (z, y, x) for an input shape, or ``None`` if the
        input does not fit (a level would not divide, or nothing is left)."""
        shape = tuple(self._axis_output(size, axis) for axis, size in enumerate(input_shape))
        return None if None in shape else shape

    def _axis_output(self, size, axis):
        shrink = 2 * self.num_convs
        for factors in self.downsample_factors:
            size -= shrink
            if size <= 0 or size % factors[axis]:
                return None
            size //= factors[axis]
        size -= shrink
        for factors in reversed(self.downsample_factors):
            if size <= 0:
                return None
            size = size * factors[axis] - shrink
        return size if size > 0 else None

    def valid_input_shape(self, min_output_shape):
        """The smallest input shape whose output is at least
        ``min_output_shape``, and that output shape: ``(input, output)``."""
        input_shape = []
        for axis, want in enumerate(min_output_shape):
            size = 1
            while (self._axis_output(size, axis) or 0) < want:
                size += 1
            input_shape.append(size)
        return tuple(input_shape), self.output_shape(input_shape)
