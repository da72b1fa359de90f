"""MobileNetV1 (Howard et al. 2017, arXiv 1704.04861), the network of PytorchInsight's
WS-MobileNetV1 row (docs/architectures.md 1.10; mmpretrain has no MobileNetV1).

A 3x3 stride-2 conv to 32 channels + BN-ReLU, then 13 depthwise-separable blocks (3x3
depthwise conv + BN-ReLU, 1x1 pointwise conv + BN-ReLU) to 64, 128, 128, 256, 256, 512 (x6),
1024 and 1024 channels, with stride 2 in blocks 2, 4, 6 and 12. With global average pooling and
a 1000-class fc it has 4,231,976 parameters at width 1.0. The blocks are grouped into five
stages by output stride (2, 4, 8, 16, 32), which is what ``out_indices`` and ``frozen_stages``
count. Every conv is an mmcv ``ConvModule`` built from ``conv_cfg``, so
``conv_cfg=dict(type='ConvWS')`` weight-standardises all of them.
"""
import torch.nn as nn
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.utils import make_divisible
from torch.nn.modules.batchnorm import _BatchNorm

from resvariants.registry import MODELS


@MODELS.register_module()
class MobileNetV1(BaseBackbone):
    """MobileNetV1 backbone.

    Args:
        widen_factor (float): Width multiplier (alpha); every width is scaled by it and rounded
            to a multiple of 8. Defaults to 1.0.
        out_indices (Sequence[int]): Stages (0-4, output strides 2-32) whose outputs are
            returned. Defaults to ``(4, )``.
        frozen_stages (int): Freeze the stem and the first ``frozen_stages`` stages
            (-1: nothing, 0: the stem only). Defaults to -1.
        conv_cfg (dict | None): Conv layer config of every conv (``dict(type='ConvWS')`` for
            weight standardisation). Defaults to None (``nn.Conv2d``).
        norm_cfg (dict): Norm after every conv. Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation after every norm. Defaults to ``dict(type='ReLU')``.
        norm_eval (bool): Keep BN statistics frozen in train mode. Defaults to False.
        init_cfg: Defaults to Kaiming for convs and 1 / 0 for norms.

    Example:
        >>> import torch
        >>> m = MobileNetV1(widen_factor=0.25, out_indices=(3, 4)).eval()
        >>> [tuple(o.shape) for o in m(torch.rand(1, 3, 64, 64))]
        [(1, 128, 4, 4), (1, 256, 2, 2)]
    """

    #: (output channels, stride) of the 13 depthwise-separable blocks, per stage
    arch = (
        ((64, 1), ),
        ((128, 2), (128, 1)),
        ((256, 2), (256, 1)),
        ((512, 2), ) + ((512, 1), ) * 5,
        ((1024, 2), (1024, 1)),
    )
    stem_channels = 32

    def __init__(self, widen_factor=1.0, out_indices=(4, ), frozen_stages=-1, conv_cfg=None,
                 norm_cfg=dict(type='BN'), act_cfg=dict(type='ReLU'), norm_eval=False,
                 init_cfg=[
                     dict(type='Kaiming', layer=['Conv2d']),
                     dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
                 ]):
        super().__init__(init_cfg)
        num_stages = len(self.arch)
        if not isinstance(widen_factor, (int, float)) or not widen_factor > 0:
            raise ValueError(f'widen_factor must be a number > 0, got {widen_factor!r}')
        out_indices = tuple(out_indices)
        if not out_indices or any(i not in range(num_stages) for i in out_indices):
            raise ValueError(f'out_indices must be stage indices in range({num_stages}), got '
                             f'{out_indices}')
        if frozen_stages not in range(-1, num_stages + 1):
            raise ValueError(f'frozen_stages must be in range(-1, {num_stages + 1}), got '
                             f'{frozen_stages}')
        self.widen_factor = widen_factor
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        def width(channels):
            return make_divisible(channels * widen_factor, 8)

        layer_cfg = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        channels = width(self.stem_channels)
        self.conv1 = ConvModule(3, channels, 3, stride=2, padding=1, **layer_cfg)
        self.layers = []
        for i, stage in enumerate(self.arch):
            blocks = []
            for out_channels, stride in stage:
                blocks.append(DepthwiseSeparableConvModule(
                    channels, width(out_channels), 3, stride=stride, padding=1, **layer_cfg))
                channels = width(out_channels)
            name = f'layer{i + 1}'
            self.add_module(name, nn.Sequential(*blocks))
            self.layers.append(name)
        self.out_channels = channels

    def forward(self, x):
        x = self.conv1(x)
        outs = []
        for i, name in enumerate(self.layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self):
        modules = [self.conv1] if self.frozen_stages >= 0 else []
        modules += [getattr(self, name) for name in self.layers[:max(self.frozen_stages, 0)]]
        for module in modules:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode=True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
