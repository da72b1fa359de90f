"""Exact residual removal (RMNet "Reserve and Merge", Meng et al., arXiv 2111.00687).

Turns a trained residual ResNet (``resvariants.ResNet`` / ``CifarResNet``, basic or bottleneck
blocks) into an ``RMPlainResNet`` that computes the same function in eval mode with no
addition anywhere:

1. every BN is folded into the conv before it (``w * g / sqrt(v + eps)``, bias
   ``b - m * g / sqrt(v + eps)``), computed in float64;
2. each block's first conv gets ``inplanes`` extra output channels with Dirac kernels (the
   centre tap, with the conv's stride): they copy the block input, which is the output of a
   ReLU (or of the max-pool after one) and therefore non-negative, so it passes the ReLUs
   unchanged (a bottleneck's 3x3 conv copies them once more);
3. the block's last conv reads those channels with the shortcut's weights: a Dirac kernel for
   the identity, the BN-folded 1x1 projection (as the centre tap) otherwise, and the two biases
   add up. The residual sum is now inside the conv.

A ``PlainResNet`` (no shortcut) converts too, with ``reserve_identity=False``: only the norms
are folded. Attention, plugins, SK, ResNeXt groups, DCN, ``deep_stem`` and ``avg_down`` are not
convertible and raise a ``ValueError`` naming the argument.
"""
import copy

import torch
import torch.nn as nn

from resvariants.models.backbones.plain_resnet import (CifarResNet, PlainResNet,
                                                       RMPlainResNet)
from resvariants.models.backbones.resnet import ResNet

#: backbone config keys that exist only for residual / trainable variants
_DROPPED_KEYS = ('attention', 'attention_stages', 'sk', 'groups', 'base_width', 'plugins',
                 'zero_init_residual', 'dcn', 'stage_with_dcn', 'deep_stem', 'avg_down',
                 'pretrained', 'init_cfg')
_BACKBONE_TYPES = {
    'ResNet': ResNet, 'CifarResNet': CifarResNet, 'PlainResNet': PlainResNet,
}


def _fold(conv, norm):
    """(weight, bias) in float64 of ``norm(conv(x))`` as one biased conv (eval-mode norm)."""
    weight = conv.weight.detach().double()
    bias = (conv.bias.detach().double() if conv.bias is not None else
            torch.zeros(weight.shape[0], dtype=torch.float64))
    if isinstance(norm, nn.Identity):
        return weight, bias
    if not isinstance(norm, nn.modules.batchnorm._BatchNorm) or not norm.track_running_stats:
        raise ValueError(f'cannot fold {type(norm).__name__}: only BatchNorm with running '
                         f'statistics folds into a conv')
    std = torch.sqrt(norm.running_var.double() + norm.eps)
    gamma = norm.weight.double() if norm.affine else torch.ones_like(std)
    beta = norm.bias.double() if norm.affine else torch.zeros_like(std)
    scale = gamma / std
    return weight * scale[:, None, None, None], beta + (bias - norm.running_mean.double()) * scale


def _dirac(channels, kernel_size):
    """Kernel (channels, channels, k, k) copying each channel through its centre tap."""
    weight = torch.zeros(channels, channels, kernel_size, kernel_size, dtype=torch.float64)
    centre = kernel_size // 2
    weight[torch.arange(channels), torch.arange(channels), centre, centre] = 1
    return weight


def _shortcut_weight(block, out_channels, kernel_size):
    """The shortcut as a conv on the reserved channels: (weight with centre tap, bias)."""
    weight = torch.zeros(out_channels, block.conv1.in_channels, kernel_size, kernel_size,
                         dtype=torch.float64)
    centre = kernel_size // 2
    if block.downsample is None:
        if block.conv1.in_channels != out_channels:
            raise ValueError('identity shortcut between different widths')
        weight[:, :, centre, centre] = torch.eye(out_channels, dtype=torch.float64)
        return weight, torch.zeros(out_channels, dtype=torch.float64)
    layers = list(block.downsample)
    if len(layers) != 2 or not isinstance(layers[0], nn.Conv2d):
        raise ValueError(f'only conv + norm projection shortcuts convert, got {layers} '
                         f'(avg_down shortcuts are not supported)')
    proj_weight, proj_bias = _fold(layers[0], layers[1])
    if proj_weight.shape[-1] != 1:
        raise ValueError('projection shortcut must be a 1x1 conv')
    # the projection's stride was applied by the first conv's Dirac channels
    weight[:, :, centre, centre] = proj_weight[:, :, 0, 0]
    return weight, proj_bias


def _set(conv, weight, bias):
    if tuple(conv.weight.shape) != tuple(weight.shape):
        raise ValueError(f'converted weight {tuple(weight.shape)} does not fit '
                         f'{tuple(conv.weight.shape)}')
    conv.weight.data.copy_(weight.to(conv.weight.dtype))
    conv.bias.data.copy_(bias.to(conv.bias.dtype))


def _check_convertible(backbone):
    checks = {
        'attention': getattr(backbone, 'attention_cfg', None) is not None,
        'plugins': bool(getattr(backbone, 'plugins', None)),
        'sk': getattr(backbone, 'sk', None) is not None,
        'groups': getattr(backbone, 'groups', 1) != 1,
        'dcn': getattr(backbone, 'dcn', None) is not None,
        'deep_stem': getattr(backbone, 'deep_stem', False),
        'avg_down': getattr(backbone, 'avg_down', False),
        'with SK branch': any(getattr(m, 'with_sk', False) for m in backbone.modules()),
    }
    bad = [name for name, flag in checks.items() if flag]
    if bad:
        raise ValueError(f'{type(backbone).__name__} uses {", ".join(bad)}; exact residual '
                         f'removal handles plain ResNet basic / bottleneck blocks only')
    for module in backbone.modules():
        if isinstance(module, nn.Conv2d) and type(module) is not nn.Conv2d:
            raise ValueError(f'{type(module).__name__} convs (conv_cfg) do not fold; use plain '
                             f'Conv2d')


def rm_backbone_config(backbone_cfg, reserve_identity=True):
    """The ``RMPlainResNet`` config of a ``ResNet`` / ``CifarResNet`` / ``PlainResNet`` config."""
    cfg = copy.deepcopy(dict(backbone_cfg))
    scope, _, name = str(cfg.get('type', '')).rpartition('.')
    if name not in _BACKBONE_TYPES or scope not in ('', 'resvariants'):
        raise ValueError(f'cannot remove residuals from backbone type {cfg.get("type")!r}; '
                         f'supported: {", ".join("resvariants." + n for n in _BACKBONE_TYPES)}')
    for key in _DROPPED_KEYS:
        cfg.pop(key, None)
    if name == 'CifarResNet':
        cfg.setdefault('stem', 'cifar')
    cfg.update(type='resvariants.RMPlainResNet', reserve_identity=reserve_identity)
    return cfg


def backbone_init_args(backbone):
    """Constructor arguments that rebuild ``backbone``'s layout as an ``RMPlainResNet``."""
    return dict(
        depth=backbone.depth, stem=getattr(backbone, 'stem_type', 'imagenet'),
        in_channels=backbone.conv1.in_channels, stem_channels=backbone.stem_channels,
        base_channels=backbone.base_channels, num_stages=backbone.num_stages,
        strides=tuple(backbone.strides), dilations=tuple(backbone.dilations),
        out_indices=tuple(backbone.out_indices), style=backbone.style,
        frozen_stages=backbone.frozen_stages, with_cp=backbone.with_cp,
        reserve_identity=not isinstance(backbone, PlainResNet))


def remove_residual(backbone, plain=None):
    """Convert ``backbone`` into an ``RMPlainResNet`` with the same eval-mode outputs.

    Args:
        backbone (ResNet | CifarResNet | PlainResNet): A trained backbone (any mode; the BN
            running statistics are used).
        plain (RMPlainResNet | None): The target to fill; built from ``backbone``'s layout when
            None (``reserve_identity`` is False for a ``PlainResNet`` source).

    Returns:
        RMPlainResNet: The plain network, in eval mode.
    """
    if isinstance(backbone, RMPlainResNet):
        raise ValueError('the backbone is already an RMPlainResNet')
    if not isinstance(backbone, ResNet):
        raise TypeError(f'expected a resvariants ResNet backbone, got {type(backbone).__name__}')
    _check_convertible(backbone)
    if plain is None:
        plain = RMPlainResNet(**backbone_init_args(backbone))
    residual = not isinstance(backbone, PlainResNet)
    if plain.reserve_identity != residual:
        raise ValueError(f'reserve_identity={plain.reserve_identity} does not fit a '
                         f'{type(backbone).__name__} source (needs {residual})')
    with torch.no_grad():
        _set(plain.conv1, *_fold(backbone.conv1, backbone.norm1))
        for layer_name in backbone.res_layers:
            source_layer, target_layer = getattr(backbone, layer_name), getattr(plain, layer_name)
            if len(source_layer) != len(target_layer):
                raise ValueError(f'{layer_name}: {len(source_layer)} blocks vs '
                                 f'{len(target_layer)} in the target')
            for source, target in zip(source_layer, target_layer):
                if hasattr(source, 'conv3'):
                    _convert_bottleneck(source, target, residual)
                else:
                    _convert_basic_block(source, target, residual)
    return plain.eval()


def _convert_basic_block(block, target, residual):
    w1, b1 = _fold(block.conv1, block.norm1)
    w2, b2 = _fold(block.conv2, block.norm2)
    if not residual:
        _set(target.conv1, w1, b1)
        _set(target.conv2, w2, b2)
        return
    cin, k1 = block.conv1.in_channels, w1.shape[-1]
    _set(target.conv1, torch.cat([w1, _dirac(cin, k1)]),
         torch.cat([b1, torch.zeros(cin, dtype=torch.float64)]))
    shortcut_w, shortcut_b = _shortcut_weight(block, w2.shape[0], w2.shape[-1])
    _set(target.conv2, torch.cat([w2, shortcut_w], dim=1), b2 + shortcut_b)


def _convert_bottleneck(block, target, residual):
    w1, b1 = _fold(block.conv1, block.norm1)
    w2, b2 = _fold(block.conv2, block.norm2)
    w3, b3 = _fold(block.conv3, block.norm3)
    if not residual:
        for conv, (w, b) in zip((target.conv1, target.conv2, target.conv3),
                                ((w1, b1), (w2, b2), (w3, b3))):
            _set(conv, w, b)
        return
    cin, width = block.conv1.in_channels, w1.shape[0]
    zeros = torch.zeros(cin, dtype=torch.float64)
    _set(target.conv1, torch.cat([w1, _dirac(cin, w1.shape[-1])]), torch.cat([b1, zeros]))
    k2 = w2.shape[-1]
    w2_full = torch.zeros(width + cin, width + cin, k2, k2, dtype=torch.float64)
    w2_full[:width, :width] = w2
    w2_full[width:, width:] = _dirac(cin, k2)
    _set(target.conv2, w2_full, torch.cat([b2, zeros]))
    shortcut_w, shortcut_b = _shortcut_weight(block, w3.shape[0], w3.shape[-1])
    _set(target.conv3, torch.cat([w3, shortcut_w], dim=1), b3 + shortcut_b)


def fold_batchnorm(backbone):
    """A copy of ``backbone`` with every BN folded into the conv before it (same topology).

    For benchmarks: the residual or plain network in the deploy form the RM network has
    (biased convs, no norms), with its additions and shortcut convs left in place.
    """
    model = copy.deepcopy(backbone).eval()
    _check_convertible(model)
    pairs = [(model, 'conv1', model.norm1_name)]
    for layer_name in model.res_layers:
        for block in getattr(model, layer_name):
            for i in (1, 2, 3):
                if hasattr(block, f'conv{i}'):
                    pairs.append((block, f'conv{i}', getattr(block, f'norm{i}_name')))
            if getattr(block, 'downsample', None) is not None:
                pairs.append((block.downsample, '0', '1'))
    with torch.no_grad():
        for parent, conv_name, norm_name in pairs:
            conv = getattr(parent, conv_name)
            weight, bias = _fold(conv, getattr(parent, norm_name))
            conv.weight.data.copy_(weight.to(conv.weight.dtype))
            conv.bias = nn.Parameter(bias.to(conv.weight.dtype))
            setattr(parent, norm_name, nn.Identity())
    return model
