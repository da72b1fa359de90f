"""Octave convolution: a feature map split into a full- and a half-resolution part.

Chen et al., "Drop an Octave: Reducing Spatial Redundancy in Convolutional Neural Networks with
Octave Convolution", ICCV 2019 (arXiv 1904.05049), Fig. 2 / Sec. 3.2. Facts about the reference
PyTorch model (d-li14/octconv.pytorch) are summarised in docs/architectures.md 1.9.

A map of ``C`` channels with low-frequency ratio ``alpha`` is held as a pair ``(high, low)``:
``C - floor(alpha * C)`` channels at full resolution and ``floor(alpha * C)`` channels at half
resolution. A single-stream map (``alpha = 0``) is a plain tensor. An octave convolution is four
ordinary convolutions whose weights partition the weights of one ``C_in -> C_out`` convolution
(so parameters are unchanged):

    Y_high = conv_h2h(X_high) + upsample(conv_l2h(X_low))
    Y_low  = conv_h2l(pool(X_high)) + conv_l2l(X_low)

Stride 2 is done, as in the reference, by 2x2 average pooling before the stride-1 convolutions:
the high input is pooled before h->h / h->l, the low input before l->l, and l->h needs no
upsampling. Unlike the reference, pooling uses ``ceil_mode`` and upsampling crops to the high
map's size, so odd sizes work and every map has the size of the plain ResNet's map
(``ceil(H / 2)`` per stride 2); for even sizes both choices are the reference's operations.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer, build_norm_layer


def split_octave(x):
    """``(high, low)`` of an octave feature; ``low`` is None for a single-stream tensor."""
    if isinstance(x, (tuple, list)):
        if len(x) != 2:
            raise ValueError(f'an octave feature is a tensor or a (high, low) pair, got a '
                             f'{type(x).__name__} of {len(x)} items')
        return x[0], x[1]
    return x, None


def join_octave(high, low):
    """The inverse of :func:`split_octave`."""
    return high if low is None else (high, low)


def low_frequency_channels(channels, alpha):
    """Channels of the half-resolution part: ``floor(alpha * channels)``."""
    return int(alpha * channels)


def downsample2x(x):
    """2x2 average pooling, stride 2; odd sizes round up like a stride-2 conv (``ceil_mode``)."""
    return F.avg_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)


def upsample2x(x, size):
    """Nearest-neighbour x2 upsampling cropped to ``size`` (the matching high-frequency map)."""
    x = F.interpolate(x, scale_factor=2, mode='nearest')
    return x[..., :size[0], :size[1]]


def merge_octave(x):
    """One full-resolution tensor from an octave feature: ``cat([high, upsample(low)])``.

    Parameter-free; keeps the channel count ``C``, so a detector neck sees the same widths as
    for a plain ResNet. A single-stream tensor is returned unchanged.
    """
    high, low = split_octave(x)
    if low is None:
        return high
    return torch.cat([high, upsample2x(low, high.shape[-2:])], dim=1)


def _check_alpha(name, alpha):
    if not isinstance(alpha, (int, float)) or not 0 <= alpha < 1:
        raise ValueError(f'{name} must be a number in [0, 1), got {alpha!r}')


class OctaveConv(nn.Module):
    """Octave convolution ``C_in -> C_out`` (paper Fig. 2), bias-free as in ResNets.

    Args:
        in_channels (int): Channels of the whole input (both frequencies).
        out_channels (int): Channels of the whole output.
        kernel_size (int): Kernel size of the four convolutions.
        alpha_in (float): Low-frequency ratio of the input; 0 means a single-stream input.
        alpha_out (float): Low-frequency ratio of the output; 0 means a single-stream output.
        stride (int): 1 or 2 (2 = average pooling before the stride-1 convolutions).
        padding (int): Padding of the convolutions.
        dilation (int): Dilation of the convolutions.
        conv_cfg (dict | None): Config of the four convolutions (e.g. ``dict(type='ConvWS')``).

    Example:
        >>> import torch
        >>> conv = OctaveConv(64, 128, 3, alpha_in=0.5, alpha_out=0.5, padding=1)
        >>> high, low = conv((torch.rand(1, 32, 15, 15), torch.rand(1, 32, 8, 8)))
        >>> tuple(high.shape), tuple(low.shape)
        ((1, 64, 15, 15), (1, 64, 8, 8))
    """

    def __init__(self, in_channels, out_channels, kernel_size, alpha_in=0.5, alpha_out=0.5,
                 stride=1, padding=0, dilation=1, conv_cfg=None):
        super().__init__()
        _check_alpha('alpha_in', alpha_in)
        _check_alpha('alpha_out', alpha_out)
        if stride not in (1, 2):
            raise ValueError(f'OctaveConv supports stride 1 or 2, got {stride}')
        self.in_low = low_frequency_channels(in_channels, alpha_in)
        self.out_low = low_frequency_channels(out_channels, alpha_out)
        for side, alpha, channels, low in (('input', alpha_in, in_channels, self.in_low),
                                           ('output', alpha_out, out_channels, self.out_low)):
            if alpha > 0 and not 0 < low < channels:
                raise ValueError(f'alpha={alpha} leaves the {side} of {channels} channels '
                                 f'without a high- or low-frequency channel')
        self.in_channels, self.out_channels = in_channels, out_channels
        self.alpha_in, self.alpha_out = alpha_in, alpha_out
        self.stride = stride
        in_high, out_high = in_channels - self.in_low, out_channels - self.out_low

        def conv(cin, cout):
            if cin == 0 or cout == 0:
                return None
            return build_conv_layer(conv_cfg, cin, cout, kernel_size, stride=1, padding=padding,
                                    dilation=dilation, bias=False)

        self.conv_h2h = conv(in_high, out_high)
        self.conv_h2l = conv(in_high, self.out_low)
        self.conv_l2h = conv(self.in_low, out_high)
        self.conv_l2l = conv(self.in_low, self.out_low)

    def forward(self, x):
        high, low = split_octave(x)
        if (low is not None) != (self.in_low > 0):
            expected = ('a (high, low) pair' if self.in_low else 'a single tensor')
            raise ValueError(f'OctaveConv(alpha_in={self.alpha_in}) expects {expected}, got '
                             f'{"a pair" if low is not None else "a single tensor"}')
        if self.stride == 2:
            high = downsample2x(high)
        out_high = self.conv_h2h(high)
        out_low = self.conv_h2l(downsample2x(high)) if self.conv_h2l is not None else None
        if low is not None:
            if self.stride == 2:
                out_high = out_high + self.conv_l2h(low)  # low is at the new high resolution
                low = downsample2x(low)
            else:
                out_high = out_high + upsample2x(self.conv_l2h(low), out_high.shape[-2:])
            if self.conv_l2l is not None:
                out_low = out_low + self.conv_l2l(low)
        return join_octave(out_high, out_low)

    def extra_repr(self):
        return (f'{self.in_channels}, {self.out_channels}, alpha_in={self.alpha_in}, '
                f'alpha_out={self.alpha_out}, stride={self.stride}')


class OctaveNorm(nn.Module):
    """A norm layer per frequency (``norm_h`` for the high part, ``norm_l`` for the low part).

    Args:
        norm_cfg (dict): Config of the norm layers, e.g. ``dict(type='BN')``.
        channels (int): Channels of the whole feature.
        alpha (float): Low-frequency ratio of the feature (0: only ``norm_h``).
    """

    def __init__(self, norm_cfg, channels, alpha):
        super().__init__()
        _check_alpha('alpha', alpha)
        low = low_frequency_channels(channels, alpha)
        self.norm_h = build_norm_layer(norm_cfg, channels - low)[1]
        self.norm_l = build_norm_layer(norm_cfg, low)[1] if low else None

    def forward(self, x):
        high, low = split_octave(x)
        if (low is not None) != (self.norm_l is not None):
            expected = 'a (high, low) pair' if self.norm_l is not None else 'a single tensor'
            raise ValueError(f'OctaveNorm expects {expected}, got '
                             f'{"a pair" if low is not None else "a single tensor"}')
        return join_octave(self.norm_h(high), None if low is None else self.norm_l(low))


class OctaveReLU(nn.Module):
    """ReLU applied to each frequency of an octave feature."""

    def __init__(self, inplace=True):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        high, low = split_octave(x)
        return join_octave(F.relu(high, inplace=self.inplace),
                           None if low is None else F.relu(low, inplace=self.inplace))
