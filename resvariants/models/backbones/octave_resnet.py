"""Oct-ResNet: the shared trunk with octave-convolution bottlenecks.

Chen et al., "Drop an Octave" (ICCV 2019), Oct-ResNet of Table 3 / Sec. 4.1, as in the reference
PyTorch model d-li14/octconv.pytorch (docs/architectures.md 1.9): every 1x1 and 3x3 conv of
every bottleneck, and every projection shortcut, is an :class:`OctaveConv` with ratio ``alpha``,
each norm a per-frequency :class:`OctaveNorm`, and the residual addition is done per frequency.
The stem is plain; the first block of stage 1 (conv1 and its shortcut) takes the single-stream
stem output (``alpha_in = 0``); the first block of the last stage returns to one stream (conv1
and shortcut ``alpha_out = 0``) and the rest of that stage is plain. Parameters equal the plain
ResNet's (Oct-ResNet-50: 25,557,032 with the 1000-class head) at about 58 % of its MACs
(2.367 G at 224 for alpha = 0.5).

Any input size works (see :mod:`resvariants.models.layers.octave_conv`); stage outputs have the
plain ResNet's sizes and channels. Outputs of stages that still hold two streams are merged to
one tensor (high + upsampled low, concatenated), so mmdet necks (FPN) take them unchanged.
"""
from mmengine.model import BaseModule, Sequential

from resvariants.registry import MODELS
from ..layers.octave_conv import (OctaveConv, OctaveNorm, OctaveReLU, join_octave, merge_octave,
                                  split_octave)
from .resnet import ResNet, _block_forward, _BlockMixin


class OctaveBottleneck(_BlockMixin, BaseModule):
    """Bottleneck (1x1, 3x3, 1x1, expansion 4) of octave convolutions; the block contract of
    the trunk (``relu(merge(residual(x), x))``) with per-frequency ``merge``.

    Args:
        inplanes (int): Input channels.
        planes (int): Bottleneck width; the block outputs ``4 * planes`` channels.
        stride (int): 1 or 2, on the 3x3 conv (``style='pytorch'``) or the first 1x1 (caffe).
        dilation (int): Dilation of the 3x3 conv.
        downsample (nn.Module | None): Projection shortcut (an octave conv + norm).
        style (str): ``'pytorch'`` or ``'caffe'``.
        conv_cfg (dict | None): Config of the convolutions inside the octave convs.
        norm_cfg (dict): Config of the norms.
        alpha_in (float): Low-frequency ratio of the block input.
        alpha_out (float): Low-frequency ratio of the block's inner maps and output.
        with_cp (bool): Gradient checkpointing: the backward pass recomputes the block instead
            of keeping its activations (both frequency streams).
        init_cfg (dict | None): mmengine init config.
    """

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None,
                 style='pytorch', conv_cfg=None, norm_cfg=dict(type='BN'), alpha_in=0.5,
                 alpha_out=0.5, with_cp=False, init_cfg=None):
        super().__init__(init_cfg)
        if style not in ('pytorch', 'caffe'):
            raise ValueError(f'style must be "pytorch" or "caffe", got {style!r}')
        self.inplanes, self.planes = inplanes, planes
        self.stride, self.dilation, self.style = stride, dilation, style
        self.conv_cfg, self.norm_cfg = conv_cfg, norm_cfg
        self.alpha_in, self.alpha_out = alpha_in, alpha_out
        self.with_cp = with_cp
        conv1_stride, conv2_stride = (1, stride) if style == 'pytorch' else (stride, 1)
        out_channels = planes * self.expansion
        self.conv1 = OctaveConv(inplanes, planes, 1, alpha_in, alpha_out, stride=conv1_stride,
                                conv_cfg=conv_cfg)
        self.bn1 = OctaveNorm(norm_cfg, planes, alpha_out)
        self.conv2 = OctaveConv(planes, planes, 3, alpha_out, alpha_out, stride=conv2_stride,
                                padding=dilation, dilation=dilation, conv_cfg=conv_cfg)
        self.bn2 = OctaveNorm(norm_cfg, planes, alpha_out)
        self.conv3 = OctaveConv(planes, out_channels, 1, alpha_out, alpha_out,
                                conv_cfg=conv_cfg)
        self.bn3 = OctaveNorm(norm_cfg, out_channels, alpha_out)
        self.relu = OctaveReLU(inplace=True)
        self.downsample = downsample

    @property
    def norm1(self):
        return self.bn1

    @property
    def norm2(self):
        return self.bn2

    @property
    def norm3(self):
        return self.bn3

    def residual(self, x):
        """The residual branch F(x): three octave conv + norm (+ ReLU) stages."""
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.relu(self.norm2(self.conv2(out)))
        return self.norm3(self.conv3(out))

    def merge(self, out, x):
        """Residual + shortcut, frequency by frequency."""
        out_high, out_low = split_octave(out)
        identity_high, identity_low = split_octave(self.shortcut(x))
        if (out_low is None) != (identity_low is None):
            raise RuntimeError('octave block: residual and shortcut disagree on the number of '
                               'frequency streams')
        return join_octave(out_high + identity_high,
                           None if out_low is None else out_low + identity_low)

    forward = _block_forward


@MODELS.register_module()
class OctResNet(ResNet):
    """Oct-ResNet backbone (``type='resvariants.OctResNet'``) for mmpretrain and mmdet.

    Args:
        depth (int): 26, 50, 101 or 152 (bottleneck depths).
        alpha (float): Low-frequency ratio inside the network, in (0, 1). Defaults to 0.5.
        **kwargs: ``resvariants.ResNet`` / mmdet ``ResNet`` arguments (``out_indices``,
            ``frozen_stages``, ``norm_eval``, ``style``, ``conv_cfg``, ``norm_cfg``,
            ``zero_init_residual``, ``deep_stem``, ``with_cp``, ``init_cfg``, ...). Attention
            modules, SK, ResNeXt groups, DCN, plugins and ``avg_down`` are not defined for
            octave blocks and raise ``ValueError``.

    Example:
        >>> import torch
        >>> from resvariants.models import OctResNet
        >>> m = OctResNet(depth=50, out_indices=(0, 1, 2, 3)).eval()
        >>> [tuple(o.shape) for o in m(torch.rand(1, 3, 65, 97))]
        [(1, 256, 17, 25), (1, 512, 9, 13), (1, 1024, 5, 7), (1, 2048, 3, 4)]
    """

    arch_settings = {
        26: (OctaveBottleneck, (2, 2, 2, 2)),
        50: (OctaveBottleneck, (3, 4, 6, 3)),
        101: (OctaveBottleneck, (3, 4, 23, 3)),
        152: (OctaveBottleneck, (3, 8, 36, 3)),
    }
    _unsupported = dict(attention=None, sk=None, dcn=None, plugins=None, groups=1,
                        avg_down=False)

    def __init__(self, depth, alpha=0.5, **kwargs):
        if not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
            raise ValueError(f'OctResNet alpha must be a number in (0, 1), got {alpha!r}')
        for name, default in self._unsupported.items():
            if kwargs.get(name, default) != default:
                raise ValueError(f'OctResNet does not support {name}={kwargs[name]!r} (octave '
                                 f'bottlenecks have no such option)')
        if kwargs.get('num_stages', 4) < 2:
            raise ValueError('OctResNet needs at least 2 stages (the first enters the octave '
                             'representation, the last leaves it)')
        self.alpha = float(alpha)
        super().__init__(depth, **kwargs)

    def stage_alphas(self, index):
        """``(alpha_in, alpha_out)`` of stage ``index``'s first block and the alpha of its other
        blocks: the first stage enters the octave representation, the last one leaves it."""
        last = index == self.num_stages - 1
        alpha_in = 0. if index == 0 else self.alpha
        inner = 0. if last else self.alpha
        return alpha_in, inner, inner

    def make_res_layer(self, block, inplanes, planes, num_blocks, stride, dilation, style,
                       conv_cfg, norm_cfg, init_cfg=None, with_cp=False, **unused):
        """One stage of octave bottlenecks (called by mmdet's constructor, stage by stage)."""
        index = len(self.res_layers)
        alpha_in, alpha_out, alpha_rest = self.stage_alphas(index)
        if self.zero_init_residual and init_cfg is None and isinstance(self.init_cfg, list):
            # as the trunk: only with mmdet's default init (a checkpoint replaces it anyway)
            init_cfg = dict(type='Constant', val=0, override=dict(name='norm3'))
        out_channels = planes * block.expansion
        downsample = None
        if stride != 1 or inplanes != out_channels:
            downsample = Sequential(
                OctaveConv(inplanes, out_channels, 1, alpha_in, alpha_out, stride=stride,
                           conv_cfg=conv_cfg),
                OctaveNorm(norm_cfg, out_channels, alpha_out))
        common = dict(dilation=dilation, style=style, conv_cfg=conv_cfg, norm_cfg=norm_cfg,
                      with_cp=with_cp, init_cfg=init_cfg)
        blocks = [block(inplanes, planes, stride=stride, downsample=downsample,
                        alpha_in=alpha_in, alpha_out=alpha_out, **common)]
        blocks += [block(out_channels, planes, alpha_in=alpha_rest, alpha_out=alpha_rest,
                         **common) for _ in range(1, num_blocks)]
        return Sequential(*blocks)

    def forward(self, x):
        """Stage outputs of ``out_indices``, each one single-stream tensor."""
        return tuple(merge_octave(out) for out in super().forward(x))
