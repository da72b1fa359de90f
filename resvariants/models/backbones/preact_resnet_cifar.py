"""Pre-activation ResNet for CIFAR (He et al. 2016), the network of epsilon-ResNet's CIFAR runs.

docs/architectures.md 2.1: depth 6n+2 (n = 18 -> ResNet-110), three stages of n basic blocks with
widths 16/32/64 (``base_channels`` x 1/2/4); stem 3x3 conv + BN-ReLU; block
``[BN-ReLU] -> 3x3 conv (stride) -> BN-ReLU -> 3x3 conv`` whose pre-activation is omitted for the
very first block (the stem ends with BN-ReLU); the shortcut is the raw block input, or, where
the block halves the resolution and doubles the width, the parameter-free "option A" shortcut
(2x2 average pool, then C/2 zero channels on each side); final BN-ReLU. Convs have no bias and
Kaiming (fan_out) init. The classifier adds global average pooling and the fc head.

``epsilon=<float>`` gates every residual branch with the strict-identity gate
(:mod:`.strict_identity`). ``stage_blocks`` / ``shortcut_only_stages`` / ``first_block_preact``
describe the compact network left after epsilon-ResNet discarded blocks
(``tools/model_converters/epsilon_compact.py`` writes them); a compact network is an ordinary
(ungated) pre-act ResNet.
"""
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule

from resvariants.registry import MODELS
from .merges import MergeMixin


class ParameterFreeDownsample(nn.Module):
    """The "option A" shortcut: 2x2 average pool, then zero channels split over both sides."""

    def __init__(self, in_channels, out_channels, stride=2):
        super().__init__()
        if out_channels < in_channels or (out_channels - in_channels) % 2:
            raise ValueError(f'the parameter-free shortcut pads channels symmetrically and '
                             f'needs an even increase, got {in_channels} -> {out_channels}')
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def extra_repr(self):
        return f'{self.in_channels}, {self.out_channels}, stride={self.stride}'

    def forward(self, x):
        if self.stride > 1:
            x = F.avg_pool2d(x, self.stride, ceil_mode=True)
        pad = (self.out_channels - self.in_channels) // 2
        return F.pad(x, (0, 0, 0, 0, pad, pad)) if pad else x


class PreActBasicBlock(MergeMixin, BaseModule):
    """Pre-activation basic block: ``forward(x) = merge(residual(x), x)`` (no ReLU after).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Stride of the first 3x3 conv. Defaults to 1.
        preact (bool): Apply BN-ReLU to the input of the residual branch (False only for the
            very first block, whose input already is BN-ReLU'd by the stem). Defaults to True.
        conv_cfg (dict | None): Conv layer config. Defaults to None (Conv2d).
        norm_cfg (dict): Norm layer config. Defaults to ``dict(type='BN')``.
        merge (dict | None): How the shortcut is added (``merges.MERGES``); None is
            ``Residual``, ``dict(type='StrictIdentity', epsilon=2.5)`` the gated block.
    """

    def __init__(self, in_channels, out_channels, stride=1, preact=True, conv_cfg=None,
                 norm_cfg=dict(type='BN'), merge=None, init_cfg=None):
        super().__init__(init_cfg)
        self.preact = preact
        if preact:
            self.norm1_name, norm1 = build_norm_layer(norm_cfg, in_channels, postfix=1)
            self.add_module(self.norm1_name, norm1)
        self.conv1 = build_conv_layer(conv_cfg, in_channels, out_channels, 3, stride=stride,
                                      padding=1, bias=False)
        self.norm2_name, norm2 = build_norm_layer(norm_cfg, out_channels, postfix=2)
        self.add_module(self.norm2_name, norm2)
        self.conv2 = build_conv_layer(conv_cfg, out_channels, out_channels, 3, padding=1,
                                      bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (ParameterFreeDownsample(in_channels, out_channels, stride)
                           if stride != 1 or in_channels != out_channels else None)
        self.build_merge_from(merge)

    def residual(self, x):
        """F(x): ``[BN-ReLU] -> conv1 -> BN-ReLU -> conv2``."""
        out = self.relu(getattr(self, self.norm1_name)(x)) if self.preact else x
        out = self.relu(getattr(self, self.norm2_name)(self.conv1(out)))
        return self.conv2(out)

    def forward(self, x):
        return self.merge(self.residual(x), x)


@MODELS.register_module()
class PreActResNetCIFAR(BaseModule):
    """Pre-activation ResNet-(6n+2) for CIFAR-sized inputs, optionally epsilon-gated.

    Args:
        depth (int): 6n+2 (20, 32, 44, 56, 110, 200, 500, 752, ...). Defaults to 110.
        epsilon (float | None): Gate every residual branch with this threshold (epsilon-ResNet);
            None builds the ordinary network. Defaults to None.
        base_channels (int): Width of the first stage (x2 per stage). Defaults to 16.
        num_stages (int): Defaults to 3.
        out_indices (tuple[int]): Stages whose outputs are returned; the last stage's output
            passes through the final BN-ReLU. Defaults to ``(2, )``.
        stage_blocks (tuple[int] | None): Blocks per stage of a compact network (default: n in
            every stage).
        shortcut_only_stages (tuple[bool] | None): Stages that start with a bare
            parameter-free downsampling (their first block was discarded).
        first_block_preact (bool): Whether the first block of stage 1 has its pre-activation
            (True in a compact network whose original first block was removed). Defaults to
            False.
        conv_cfg, norm_cfg: Layer configs. ``norm_eval`` freezes BN statistics in train mode.
        init_cfg: Defaults to Kaiming fan_out for convs and 1/0 for norms (the source's init).

    Example:
        >>> import torch
        >>> m = PreActResNetCIFAR(depth=20, epsilon=2.5).eval()
        >>> tuple(m(torch.rand(2, 3, 32, 32))[0].shape)
        (2, 64, 8, 8)
    """

    def __init__(self, depth=110, epsilon=None, base_channels=16, num_stages=3, in_channels=3,
                 out_indices=(2, ), stage_blocks=None, shortcut_only_stages=None,
                 first_block_preact=False, conv_cfg=None, norm_cfg=dict(type='BN'),
                 norm_eval=False, init_cfg=None):
        if init_cfg is None:
            init_cfg = [dict(type='Kaiming', layer='Conv2d', mode='fan_out'),
                        dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])]
        super().__init__(init_cfg)
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f'PreActResNetCIFAR depth must be 6n+2 (e.g. 20, 56, 110), got '
                             f'{depth}')
        self.depth, self.epsilon, self.num_stages = depth, epsilon, num_stages
        self.blocks_per_stage = (depth - 2) // 6
        stage_blocks = tuple(stage_blocks) if stage_blocks is not None else \
            (self.blocks_per_stage, ) * num_stages
        shortcut_only_stages = tuple(shortcut_only_stages) if shortcut_only_stages is not None \
            else (False, ) * num_stages
        if len(stage_blocks) != num_stages or len(shortcut_only_stages) != num_stages:
            raise ValueError(f'stage_blocks {stage_blocks} and shortcut_only_stages '
                             f'{shortcut_only_stages} need {num_stages} entries each')
        if any(not 0 <= n <= self.blocks_per_stage for n in stage_blocks):
            raise ValueError(f'stage_blocks {stage_blocks}: a depth-{depth} network has at most '
                             f'{self.blocks_per_stage} blocks per stage')
        if shortcut_only_stages[0]:
            raise ValueError('stage 1 keeps resolution and width: it has no shortcut to keep, '
                             'so shortcut_only_stages[0] must be False')
        if any(i not in range(num_stages) for i in out_indices):
            raise ValueError(f'out_indices {out_indices} must lie in range({num_stages})')
        if epsilon is not None and (stage_blocks != (self.blocks_per_stage, ) * num_stages
                                    or any(shortcut_only_stages)):
            raise ValueError('a gated (epsilon) network is always the full depth; compact '
                             'stage_blocks describe an exported, ungated network')
        self.stage_blocks, self.shortcut_only_stages = stage_blocks, shortcut_only_stages
        self.first_block_preact = first_block_preact
        self.out_indices, self.norm_eval = tuple(out_indices), norm_eval
        self.base_channels = base_channels

        self.conv1 = build_conv_layer(conv_cfg, in_channels, base_channels, 3, padding=1,
                                      bias=False)
        self.norm1_name, norm1 = build_norm_layer(norm_cfg, base_channels, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.relu = nn.ReLU(inplace=True)
        block_kwargs = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        if epsilon is not None:
            block_kwargs['merge'] = dict(type='StrictIdentity', epsilon=epsilon)
        self.res_layers = []
        channels = base_channels
        for i in range(num_stages):
            width, stride = base_channels * 2**i, 1 if i == 0 else 2
            layers = []
            if shortcut_only_stages[i]:
                layers.append(ParameterFreeDownsample(channels, width, stride))
                channels, stride = width, 1
            for j in range(stage_blocks[i]):
                preact = not (i == 0 and j == 0 and not first_block_preact)
                layers.append(PreActBasicBlock(channels, width, stride=stride, preact=preact,
                                               **block_kwargs))
                channels, stride = width, 1
            if stride != 1 or channels != width:
                raise ValueError(f'stage {i + 1} has no blocks and no shortcut, but its input '
                                 f'({channels} channels) must become {width} channels at '
                                 f'stride {stride}: set shortcut_only_stages[{i}]=True')
            name = f'layer{i + 1}'
            self.add_module(name, nn.Sequential(*layers))
            self.res_layers.append(name)
        self.final_norm_name, final_norm = build_norm_layer(norm_cfg, channels, postfix='_out')
        self.add_module(self.final_norm_name, final_norm)
        self.feat_dim = channels

    def side_supervision_point(self):
        """``(stage, block, channels)`` of the source's side head: after block n/2 of stage 2."""
        return 1, self.stage_blocks[1] // 2, self.base_channels * 2

    def forward(self, x):
        x = self.relu(getattr(self, self.norm1_name)(self.conv1(x)))
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i == len(self.res_layers) - 1:
                x = self.relu(getattr(self, self.final_norm_name)(x))
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode=True):
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self
