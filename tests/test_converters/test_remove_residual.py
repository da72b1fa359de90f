"""Exact residual removal: same outputs, no addition left, clear refusals."""
import operator

import pytest
import torch
import torch.fx
from torch.nn.modules.batchnorm import _BatchNorm

from resvariants.converters.remove_residual import (fold_batchnorm, remove_residual,
                                                    rm_backbone_config)
from resvariants.models import CifarResNet, PlainResNet, ResNet, RMPlainResNet

ALL_STAGES = dict(out_indices=(0, 1, 2, 3))


def trained_like(model, size, seed=0):
    """Random BN affine parameters, BN statistics measured on random inputs, eval mode.

    A "trained" network keeps activations at a moderate scale, which is where the < 1e-4
    criterion is meant to hold; library-default statistics (mean 0, var 1) would let deep
    random networks blow up and test float32 range instead of the conversion.
    """
    generator = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    with torch.no_grad():
        for norm in norms:
            norm.weight.uniform_(0.5, 1.5, generator=generator)
            norm.bias.uniform_(-0.3, 0.3, generator=generator)
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average: one batch sets the statistics
        model.train()
        model(torch.randn(16, 3, size, size, generator=generator))
    for norm in norms:
        norm.momentum = 0.1
    return model.eval()


def max_abs_diff(a, b):
    return max((x - y).abs().max().item() for x, y in zip(a, b))


CASES = {
    'resnet18': (lambda: ResNet(depth=18, base_channels=8, **ALL_STAGES), 64),
    'resnet34': (lambda: ResNet(depth=34, base_channels=8, **ALL_STAGES), 64),
    'resnet50': (lambda: ResNet(depth=50, base_channels=8, **ALL_STAGES), 64),
    'resnet101': (lambda: ResNet(depth=101, base_channels=8, **ALL_STAGES), 64),
    'resnet50-caffe': (lambda: ResNet(depth=50, base_channels=8, style='caffe', **ALL_STAGES),
                       64),
    'resnet50-dilated': (lambda: ResNet(depth=50, base_channels=8, strides=(1, 2, 1, 1),
                                        dilations=(1, 1, 2, 4), **ALL_STAGES), 48),
    'cifar-resnet20': (lambda: CifarResNet(depth=20), 30),
    'plain-resnet18': (lambda: PlainResNet(depth=18, base_channels=8, **ALL_STAGES), 64),
    'plain-resnet50': (lambda: PlainResNet(depth=50, base_channels=8, **ALL_STAGES), 64),
}


@pytest.mark.parametrize('name', sorted(CASES))
def test_conversion_is_exact(name):
    build, size = CASES[name]
    source = trained_like(build(), size)
    plain = remove_residual(source)
    assert isinstance(plain, RMPlainResNet)
    assert not any(isinstance(m, _BatchNorm) for m in plain.modules())
    x = torch.randn(3, 3, size, size)
    with torch.no_grad():
        expected, got = source(x), plain(x)
    assert len(expected) == len(got)
    assert max(e.abs().max().item() for e in expected) > 0.1  # a non-trivial signal
    assert max_abs_diff(expected, got) < 1e-4


def additions(module):
    graph = torch.fx.symbolic_trace(module).graph
    return [n for n in graph.nodes
            if n.target in (operator.add, operator.iadd, torch.add) or n.target == 'add']


def test_converted_network_has_no_addition_left():
    source = trained_like(ResNet(depth=50, base_channels=8), 32)
    assert len(additions(source)) == 16  # one per bottleneck
    assert additions(remove_residual(source)) == []


def test_reserved_channels_carry_the_block_input():
    source = trained_like(ResNet(depth=50, base_channels=8), 32)
    plain = remove_residual(source)
    block, original = plain.layer2[0], source.layer2[0]
    cin, width = original.conv1.in_channels, original.conv1.out_channels
    assert block.conv1.out_channels == width + cin == block.conv3.in_channels
    assert block.conv2.stride == original.conv2.stride
    basic = remove_residual(trained_like(ResNet(depth=18, base_channels=8), 32)).layer3[0]
    assert (basic.conv1.out_channels, basic.conv2.in_channels) == (16 + 32, 32 + 16)


def test_plain_source_keeps_plain_widths():
    source = trained_like(PlainResNet(depth=50, base_channels=8), 32)
    plain = remove_residual(source)
    assert not plain.reserve_identity
    assert plain.layer2[0].conv1.weight.shape == source.layer2[0].conv1.weight.shape


@pytest.mark.parametrize('build', [
    lambda: ResNet(depth=18, base_channels=8),
    lambda: PlainResNet(depth=50, base_channels=8),
])
def test_fold_batchnorm_keeps_outputs(build):
    source = trained_like(build(), 32)
    folded = fold_batchnorm(source)
    assert not any(isinstance(m, _BatchNorm) for m in folded.modules())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert max_abs_diff(source(x), folded(x)) < 1e-4


@pytest.mark.parametrize('kwargs,error', [
    (dict(depth=50, attention='se'), 'attention'),
    (dict(depth=50, attention='bam'), 'attention'),
    (dict(depth=50, sk=dict(groups=4)), 'sk'),
    (dict(depth=50, groups=32, base_width=4), 'groups'),
    (dict(depth=50, avg_down=True), 'avg_down'),
    (dict(depth=50, deep_stem=True), 'deep_stem'),
])
def test_unconvertible_backbones_are_named(kwargs, error):
    source = ResNet(base_channels=16 if 'groups' not in kwargs else 64, **kwargs)
    with pytest.raises(ValueError, match=error):
        remove_residual(source)


def test_other_inputs_are_refused():
    with pytest.raises(ValueError, match='already an RMPlainResNet'):
        remove_residual(RMPlainResNet(depth=18, base_channels=8))
    with pytest.raises(TypeError, match='resvariants ResNet'):
        remove_residual(torch.nn.Conv2d(3, 3, 3))


def test_backbone_config_translation():
    cfg = dict(type='resvariants.ResNet', depth=50, out_indices=(3, ), norm_eval=False,
               zero_init_residual=False, attention=None, init_cfg=dict(type='Pretrained'))
    rm = rm_backbone_config(cfg)
    assert rm == dict(type='resvariants.RMPlainResNet', depth=50, out_indices=(3, ),
                      norm_eval=False, reserve_identity=True)
    assert rm_backbone_config(dict(type='CifarResNet', depth=20))['stem'] == 'cifar'
    with pytest.raises(ValueError, match='mmdet.ResNet'):
        rm_backbone_config(dict(type='mmdet.ResNet', depth=50))
