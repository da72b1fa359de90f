"""epsilon-ResNet on the shared trunk, and the compact ResNet its discarded blocks leave.

"Learning Strict Identity Mappings in Deep Residual Networks" (Yu, Yu, Ramalingam;
CVPR 2018, arXiv 1804.01661; reference code yuxwind/epsilon-resnet, tensorpack).

* :class:`EpsilonResNet` is the shared ``resvariants.ResNet`` trunk (ImageNet bottleneck or
  basic blocks, detection semantics, attention/SK/ResNeXt options) with
  ``merge='StrictIdentity'``: ``out = gate(F) * F + shortcut(x)`` with the strict-identity gate
  (docs/architectures.md 2.2). The ``state_dict`` layout is the plain trunk's, so plain ResNet
  weights initialise it and its weights transfer by key. Unlike the source (tensorpack
  pre-activation ResNet for ImageNet) the blocks are the trunk's post-activation ones, so the
  same backbone serves mmpretrain and mmdet.
* :class:`CompactResNet` is the ordinary trunk with fewer blocks per stage: what is left after
  removing the discarded blocks (docs/architectures.md 2.6). A stage whose first block was
  discarded keeps that block's projection shortcut (``relu(downsample(x))``, exactly the
  discarded block's output) as layer ``0``; the remaining blocks are renumbered contiguously.
* :class:`~.preact_resnet_cifar.PreActResNetCIFAR` (``epsilon=``) is the CIFAR network.

The side-supervision head lives in the classifier (``resvariants.EpsilonImageClassifier``);
the epsilon schedule, discard bookkeeping and the adaptive learning rate are mmengine hooks
(``resvariants.engine.epsilon_hooks``).
"""
import math

import torch.nn as nn
from mmengine.model import Sequential

from resvariants.registry import MODELS
from .merges import build_merge
from .preact_resnet_cifar import ParameterFreeDownsample, PreActBasicBlock, PreActResNetCIFAR
from .resnet import ResNet
from .strict_identity import (StrictIdentityGate, apply_discard_record, discard_record,
                              find_strict_identity_gates, strict_identity_gate)


def side_supervision_block(stage_blocks):
    """The source's ImageNet side-head block in stage 3: ``floor(sum/2) - (n1 + n2) - 1``.

    ResNet-101 -> 8, ResNet-152 -> 13. The source crashes for depth 50/34 (k = 0) and has no
    head for depth 18 (k = -1); here k is clamped to 0, so every depth trains with the head.
    """
    k = sum(stage_blocks) // 2 - (stage_blocks[0] + stage_blocks[1]) - 1
    return max(k, 0)


@MODELS.register_module()
class EpsilonResNet(ResNet):
    """The shared ResNet trunk with strict-identity gated residual branches (epsilon-ResNet).

    Args:
        depth (int): 18, 34, 50, 101 or 152.
        epsilon (float): Gate threshold; the source uses 2.0 (also 2.1, 1.8) on ImageNet.
            ``EpsilonResNetHook`` may schedule it (0 until an epoch, then this value).
            Defaults to 2.0.
        zero_init_residual (bool): Must stay False: a zero-initialised last norm makes every
            branch output 0, every gate 0 and every gradient of the branches 0, forever.
        **kwargs: As ``resvariants.ResNet`` (``out_indices``, ``frozen_stages``, ``norm_eval``,
            ``attention``, ``sk``, ``groups``, ``init_cfg``, ...). ``preact=True`` gives the
            source's network: tensorpack's pre-activation trunk (``preact_resnet.py``), gated.

    Example:
        >>> import torch
        >>> m = EpsilonResNet(depth=50, epsilon=2.0, out_indices=(3, )).eval()
        >>> tuple(m(torch.rand(1, 3, 64, 64))[0].shape)
        (1, 2048, 2, 2)
    """

    def __init__(self, depth, epsilon=2.0, zero_init_residual=False, **kwargs):
        if zero_init_residual:
            raise ValueError('EpsilonResNet needs zero_init_residual=False: with the last norm '
                             'of each block at 0 every residual output is 0, so every '
                             'strict-identity gate is 0 and no branch ever gets a gradient')
        self.epsilon = build_merge(dict(type='StrictIdentity', epsilon=epsilon)).epsilon
        kwargs = self.with_preset_merge(kwargs, dict(type='StrictIdentity', epsilon=self.epsilon))
        super().__init__(depth, zero_init_residual=False, **kwargs)

    def side_supervision_point(self):
        """``(stage, block, channels)`` of the source's side head (stage 3, see
        :func:`side_supervision_block`)."""
        stage = min(2, self.num_stages - 1)
        return (stage, side_supervision_block(self.stage_blocks),
                self.base_channels * 2**stage * self.block.expansion)


class ProjectionShortcut(nn.Module):
    """What a discarded down-sampling block computes: ``relu(downsample(x))``."""

    def __init__(self, downsample):
        super().__init__()
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.downsample(x))


@MODELS.register_module()
class CompactResNet(ResNet):
    """An ordinary ``resvariants.ResNet`` with the blocks an epsilon-ResNet discarded removed.

    Args:
        depth (int): Depth of the network it was exported from (gives the block type).
        stage_blocks (tuple[int]): Ordinary blocks kept per stage (0 allowed).
        shortcut_only_stages (tuple[bool] | None): Stages whose first (down-sampling) block was
            discarded: they start with its :class:`ProjectionShortcut` (layer index 0).
        **kwargs: As ``resvariants.ResNet``.

    Example:
        >>> import torch
        >>> m = CompactResNet(depth=50, stage_blocks=(3, 2, 0, 1),
        ...                   shortcut_only_stages=(False, True, True, False)).eval()
        >>> tuple(m(torch.rand(1, 3, 64, 64))[0].shape)
        (1, 2048, 2, 2)
    """

    def __init__(self, depth, stage_blocks, shortcut_only_stages=None, **kwargs):
        if kwargs.get('preact'):
            raise ValueError('CompactResNet is the post-activation trunk; the compact export of '
                             'a pre-activation (preact=True) network is not implemented')
        if depth not in ResNet.arch_settings:
            raise KeyError(f'unsupported ResNet depth {depth}; valid depths: '
                           f'{sorted(ResNet.arch_settings)}')
        block, full_blocks = ResNet.arch_settings[depth]
        num_stages = kwargs.get('num_stages', 4)
        stage_blocks = tuple(int(n) for n in stage_blocks)
        shortcut_only_stages = (tuple(bool(s) for s in shortcut_only_stages)
                                if shortcut_only_stages is not None else (False, ) * num_stages)
        if len(stage_blocks) != num_stages or len(shortcut_only_stages) != num_stages:
            raise ValueError(f'stage_blocks {stage_blocks} and shortcut_only_stages '
                             f'{shortcut_only_stages} need num_stages={num_stages} entries')
        for i, n in enumerate(stage_blocks):
            if not 0 <= n <= full_blocks[i] - int(shortcut_only_stages[i]):
                raise ValueError(f'stage {i + 1}: {n} blocks (+ shortcut: '
                                 f'{shortcut_only_stages[i]}) exceeds the {full_blocks[i]} '
                                 f'blocks of a depth-{depth} network')
        self.arch_settings = {depth: (block, stage_blocks)}  # instance-level: fewer blocks
        self.shortcut_only_stages = shortcut_only_stages
        super().__init__(depth, **kwargs)

    def make_res_layer(self, **kwargs):
        stage = int(round(math.log2(kwargs['planes'] / self.base_channels)))
        num_blocks = kwargs['num_blocks']
        layers = []
        if self.shortcut_only_stages[stage]:
            probe = super().make_res_layer(**dict(kwargs, num_blocks=1))
            if probe[0].downsample is None:
                raise ValueError(f'stage {stage + 1} keeps resolution and width: its first '
                                 f'block has no projection shortcut, so it needs no '
                                 f'shortcut_only entry')
            layers.append(ProjectionShortcut(probe[0].downsample))
            kwargs = dict(kwargs, inplanes=kwargs['planes'] * kwargs['block'].expansion,
                          stride=1)
        if num_blocks:
            res_layer = super().make_res_layer(**kwargs)
            if not layers:
                return res_layer
            layers.extend(res_layer)
        elif not layers and (kwargs['stride'] != 1 or kwargs['inplanes']
                             != kwargs['planes'] * kwargs['block'].expansion):
            raise ValueError(f'stage {stage + 1} has no blocks but changes shape: keep its '
                             f'projection shortcut (shortcut_only_stages[{stage}]=True)')
        # mmengine's Sequential: init_weights reaches the blocks (their zero_init_residual and
        # the attention modules' own init); torch's would stop the recursion here
        return Sequential(*layers)


__all__ = [
    'CompactResNet', 'EpsilonResNet', 'ParameterFreeDownsample', 'PreActBasicBlock',
    'PreActResNetCIFAR', 'ProjectionShortcut', 'StrictIdentityGate', 'apply_discard_record',
    'discard_record',
    'find_strict_identity_gates', 'side_supervision_block', 'strict_identity_gate'
]

# The side-supervision classifier registers with the backbones it serves.
from ..classifiers.epsilon_classifier import EpsilonImageClassifier  # noqa: E402,F401

__all__.append('EpsilonImageClassifier')
