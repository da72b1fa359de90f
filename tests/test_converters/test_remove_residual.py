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
    with pytest.raises(ValueError, match='^the backbone is already an RMPlainResNet$'):
        remove_residual(RMPlainResNet(depth=18, base_channels=8))
    with pytest.raises(TypeError, match='^expected a resvariants ResNet backbone, got Conv2d$'):
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


# --- the helpers and every refusal, pinned (found by mutation testing, docs/testing.md) -------
from types import SimpleNamespace  # noqa: E402

import torch.nn as nn  # noqa: E402

from resvariants.converters import remove_residual as rr  # noqa: E402


def test_backbone_config_drops_every_residual_only_key():
    dropped = dict(attention='se', attention_stages=(1, 2), sk=dict(groups=4), groups=32,
                   base_width=4, plugins=[], zero_init_residual=True, dcn=dict(type='DCN'),
                   stage_with_dcn=(False, ) * 4, deep_stem=True, avg_down=True,
                   pretrained='x.pth', init_cfg=dict(type='Pretrained'))
    kept = dict(depth=50, out_indices=(3, ), norm_eval=False, frozen_stages=1, with_cp=True)
    cfg = dict(type='ResNet', **kept, **dropped)
    assert rm_backbone_config(cfg) == dict(type='resvariants.RMPlainResNet', **kept,
                                           reserve_identity=True)
    assert cfg['attention'] == 'se'  # the argument is not changed
    nested = dict(type='ResNet', depth=18, norm_cfg=dict(type='BN'))
    rm_backbone_config(nested)['norm_cfg']['type'] = 'GN'
    assert nested['norm_cfg'] == dict(type='BN')  # nor what it holds


def test_backbone_config_of_every_supported_type():
    plain = rm_backbone_config(dict(type='resvariants.PlainResNet', depth=18),
                               reserve_identity=False)
    assert plain == dict(type='resvariants.RMPlainResNet', depth=18, reserve_identity=False)
    cifar = rm_backbone_config(dict(type='resvariants.CifarResNet', depth=20))
    assert cifar == dict(type='resvariants.RMPlainResNet', depth=20, stem='cifar',
                         reserve_identity=True)
    assert rm_backbone_config(dict(type='CifarResNet', depth=20, stem='x'))['stem'] == 'x'
    for bad in ('mmdet.ResNet', 'other.PlainResNet', 'ResNeXt', None):
        with pytest.raises(ValueError) as info:
            rm_backbone_config(dict(type=bad, depth=50))
        assert info.value.args[0] == (
            f'cannot remove residuals from backbone type {bad!r}; supported: '
            'resvariants.ResNet, resvariants.CifarResNet, resvariants.PlainResNet')


def _bn(channels, seed=0):
    generator = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(channels).eval()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5, generator=generator)
        bn.bias.normal_(generator=generator)
        bn.running_mean.normal_(generator=generator)
        bn.running_var.uniform_(0.5, 2, generator=generator)
    return bn


@pytest.mark.parametrize('conv_bias', [False, True])
def test_fold_by_hand(conv_bias):
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 4, 3, bias=conv_bias), _bn(4)
    weight, bias = rr._fold(conv, bn)
    assert weight.dtype == bias.dtype == torch.float64
    std = (bn.running_var.double() + bn.eps).sqrt()
    g = bn.weight.double() / std
    conv_b = conv.bias.double() if conv_bias else torch.zeros(4, dtype=torch.float64)
    torch.testing.assert_close(weight, conv.weight.double() * g[:, None, None, None])
    torch.testing.assert_close(bias, bn.bias.double() + (conv_b - bn.running_mean.double()) * g)
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        expected = bn.double()(conv.double()(x))
    torch.testing.assert_close(torch.nn.functional.conv2d(x, weight, bias), expected)


def test_fold_without_affine_or_norm():
    conv = nn.Conv2d(2, 3, 1)
    bn = nn.BatchNorm2d(3, affine=False).eval()
    with torch.no_grad():
        bn.running_mean.fill_(0.5)
        bn.running_var.fill_(4.0)
    weight, bias = rr._fold(conv, bn)
    scale = 1 / (4.0 + bn.eps)**0.5
    torch.testing.assert_close(weight, conv.weight.double() * scale)
    torch.testing.assert_close(bias, (conv.bias.double() - 0.5) * scale)
    weight, bias = rr._fold(conv, nn.Identity())
    assert torch.equal(weight, conv.weight.double()) and torch.equal(bias, conv.bias.double())


@pytest.mark.parametrize('norm, name', [(nn.GroupNorm(1, 3), 'GroupNorm'),
                                        (nn.BatchNorm2d(3, track_running_stats=False),
                                         'BatchNorm2d')])
def test_fold_refuses_other_norms(norm, name):
    with pytest.raises(ValueError, match=rf'^cannot fold {name}: only BatchNorm with running '
                                         r'statistics folds into a conv$'):
        rr._fold(nn.Conv2d(2, 3, 1), norm)


@pytest.mark.parametrize('kernel', [1, 3, 5])
def test_dirac_copies_each_channel(kernel):
    weight = rr._dirac(4, kernel)
    assert weight.shape == (4, 4, kernel, kernel) and weight.dtype == torch.float64
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    torch.testing.assert_close(torch.nn.functional.conv2d(x, weight, padding=kernel // 2), x)
    assert weight.sum() == 4


def _block(cin, downsample=None):
    return SimpleNamespace(conv1=nn.Conv2d(cin, 4, 1), downsample=downsample)


@pytest.mark.parametrize('kernel', [1, 3, 5])
def test_shortcut_weight_of_an_identity(kernel):
    weight, bias = rr._shortcut_weight(_block(6), 6, kernel)
    assert weight.shape == (6, 6, kernel, kernel) and not bias.any()
    torch.testing.assert_close(weight, rr._dirac(6, kernel))


def test_shortcut_weight_of_a_projection():
    conv, bn = nn.Conv2d(6, 8, 1, bias=False), _bn(8)
    weight, bias = rr._shortcut_weight(_block(6, nn.Sequential(conv, bn)), 8, 3)
    folded_w, folded_b = rr._fold(conv, bn)
    assert weight.shape == (8, 6, 3, 3)
    torch.testing.assert_close(weight[:, :, 1, 1], folded_w[:, :, 0, 0])
    weight[:, :, 1, 1] = 0
    assert not weight.any()
    torch.testing.assert_close(bias, folded_b)


@pytest.mark.parametrize('block, out, message', [
    (_block(6), 8, '^identity shortcut between different widths$'),
    (_block(6, nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(6, 8, 1), _bn(8))), 8,
     r'^only conv \+ norm projection shortcuts convert, got .*AvgPool2d.* \(avg_down '
     r'shortcuts are not supported\)$'),
    (_block(6, nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(6, 8, 1))), 8,
     r'^only conv \+ norm'),
    (_block(6, nn.Sequential(nn.Conv2d(6, 8, 3, bias=False), _bn(8))), 8,
     '^projection shortcut must be a 1x1 conv$'),
])
def test_shortcut_weight_refusals(block, out, message):
    with pytest.raises(ValueError, match=message):
        rr._shortcut_weight(block, out, 3)


def test_set_refuses_a_shape_that_does_not_fit():
    conv = nn.Conv2d(2, 3, 3)
    with pytest.raises(ValueError, match=r'^converted weight \(3, 2, 1, 1\) does not fit '
                                         r'\(3, 2, 3, 3\)$'):
        rr._set(conv, torch.zeros(3, 2, 1, 1, dtype=torch.float64),
                torch.zeros(3, dtype=torch.float64))
    rr._set(conv, torch.ones(3, 2, 3, 3, dtype=torch.float64),
            torch.full((3, ), 2.0, dtype=torch.float64))
    assert conv.weight.dtype == torch.float32 and torch.all(conv.weight == 1)
    assert torch.all(conv.bias == 2)


@pytest.mark.parametrize('kwargs, named', [
    (dict(depth=50, attention='se'), 'attention, plugins'),  # block attention is a plugin
    (dict(depth=50, sk=dict(groups=4)), 'sk, with SK branch'),
    (dict(depth=50, groups=32, base_width=4), 'groups'),
    (dict(depth=50, deep_stem=True), 'deep_stem'),
    (dict(depth=50, avg_down=True), 'avg_down'),
    (dict(depth=50, deep_stem=True, avg_down=True), 'deep_stem, avg_down'),
    (dict(depth=18, plugins=[dict(cfg=dict(type='SGE', groups=4), position='after_conv2')]),
     'plugins'),
])
def test_refusal_names_every_argument(kwargs, named):
    source = ResNet(base_channels=64 if 'groups' in kwargs else 16, **kwargs)
    with pytest.raises(ValueError) as info:
        remove_residual(source)
    assert info.value.args[0] == (f'ResNet uses {named}; exact residual removal handles '
                                  f'plain ResNet basic / bottleneck blocks only')
    with pytest.raises(ValueError, match=f'^ResNet uses {named};'):
        fold_batchnorm(source)


def test_dcn_is_refused():
    source = ResNet(depth=18, base_channels=16)
    source.dcn = dict(type='DCN')  # mmcv's DCN op is not built on every machine
    with pytest.raises(ValueError, match='^ResNet uses dcn;'):
        remove_residual(source)


def test_weight_standardised_convs_are_refused():
    source = ResNet(depth=18, base_channels=16, conv_cfg=dict(type='ConvWS'))
    with pytest.raises(ValueError, match=r'^ConvWS2d convs \(conv_cfg\) do not fold; use plain '
                                         r'Conv2d$'):
        remove_residual(source)


def test_target_that_does_not_fit_is_refused():
    source = trained_like(ResNet(depth=50, base_channels=8), 32)
    with pytest.raises(ValueError, match=r'^reserve_identity=False does not fit a ResNet source '
                                         r'\(needs True\)$'):
        remove_residual(source, RMPlainResNet(depth=50, base_channels=8, reserve_identity=False))
    plain_source = trained_like(PlainResNet(depth=50, base_channels=8), 32)
    with pytest.raises(ValueError, match=r'^reserve_identity=True does not fit a PlainResNet '
                                         r'source \(needs False\)$'):
        remove_residual(plain_source, RMPlainResNet(depth=50, base_channels=8))
    with pytest.raises(ValueError, match='^layer3: 6 blocks vs 23 in the target$'):
        remove_residual(source, RMPlainResNet(depth=101, base_channels=8))


def test_given_target_is_filled_and_returned_in_eval_mode():
    source = trained_like(ResNet(depth=18, base_channels=8, **ALL_STAGES), 32)
    target = RMPlainResNet(depth=18, base_channels=8, **ALL_STAGES).train()
    plain = remove_residual(source, target)
    assert plain is target and not plain.training
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert max_abs_diff(source(x), plain(x)) < 1e-4


def test_layout_arguments_are_carried_over():
    source = ResNet(depth=50, base_channels=8, in_channels=4, stem_channels=16, num_stages=3,
                    strides=(1, 2, 2), dilations=(1, 1, 2), out_indices=(1, 2), style='caffe',
                    frozen_stages=1, with_cp=True)
    args = rr.backbone_init_args(source)
    assert args == dict(depth=50, stem='imagenet', in_channels=4, stem_channels=16,
                        base_channels=8, num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 2),
                        out_indices=(1, 2), style='caffe', frozen_stages=1, with_cp=True,
                        reserve_identity=True)
    assert rr.backbone_init_args(CifarResNet(depth=20))['stem'] == 'cifar'
    assert not rr.backbone_init_args(PlainResNet(depth=18))['reserve_identity']


def test_fold_batchnorm_is_a_copy_with_biased_convs():
    source = trained_like(ResNet(depth=50, base_channels=8), 32)
    folded = fold_batchnorm(source)
    assert all(isinstance(getattr(source, 'norm1'), _BatchNorm) for _ in [0])  # untouched
    convs = [m for m in folded.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 16 * 3 + 4 and all(c.bias is not None for c in convs)
    assert isinstance(folded.layer1[0].downsample[1], nn.Identity)
    assert not folded.training
