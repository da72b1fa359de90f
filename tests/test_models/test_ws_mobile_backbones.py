"""Weight standardisation with the e-shifted L2 on the other networks of PytorchInsight's WS
table (docs/architectures.md 1.10): ShuffleNetV1 / V2 (mmpretrain's, ``conv_cfg``), MobileNetV1
(``resvariants.MobileNetV1``) and DenseNet-201 (``resvariants.DenseNet``).

Figures are checked against parameter counts written out layer by layer here, from each
paper's architecture table. They reproduce the published figures (ShuffleNetV2 1x 2,278,604,
MobileNetV1 4,231,976, DenseNet-201 20,013,928; ShuffleNetV1 1x g3 comes to 1,865,728). The
weight standardisation is checked against a plain copy of each network whose conv weights
were standardised by hand.
"""
import copy
import os.path as osp

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.conv_ws import ConvWS2d
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, DefaultScope
from torch.nn.modules.batchnorm import _BatchNorm

import resvariants.models  # noqa: F401
from resvariants.engine.eshift_l2 import eshift_l2_gradient
from resvariants.models import DenseNet, MobileNetV1

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
WS = dict(type='ConvWS')

# --------------------------------------------------------------------------------------------
# Parameter counts written out from the architectures (BN: 2 parameters per channel)
# --------------------------------------------------------------------------------------------


def bn(channels):
    return 2 * channels


def shufflenet_v2_params(widths=(116, 232, 464), last=1024, classes=1000, blocks=(4, 8, 4)):
    """Stem 3x3 to 24; per stage a stride-2 unit (branch1: dw3x3-BN, 1x1-BN; branch2: 1x1-BN,
    dw3x3-BN, 1x1-BN, each to half the width) and stride-1 units (branch2 on half the
    channels); conv_last 1x1 + BN; fc."""
    n, c = 3 * 24 * 9 + bn(24), 24
    for width, count in zip(widths, blocks):
        b = width // 2
        n += 9 * c + bn(c) + c * b + bn(b)
        n += c * b + bn(b) + 9 * b + bn(b) + b * b + bn(b)
        n += (count - 1) * (2 * (b * b + bn(b)) + 9 * b + bn(b))
        c = width
    return n + c * last + bn(last) + last * classes + classes


def shufflenet_v1_params(groups=3, widths=(240, 480, 960), classes=1000, blocks=(4, 8, 4)):
    """Stem 3x3 to 24; units: grouped 1x1 to width/4 (ungrouped in the very first unit),
    dw3x3, grouped 1x1 back (the first unit of a stage concatenates its avg-pooled input, so its
    expansion makes width - input channels); fc."""
    n, c = 3 * 24 * 9 + bn(24), 24
    for stage, (width, count) in enumerate(zip(widths, blocks)):
        b, first_groups = width // 4, 1 if stage == 0 else groups
        n += c * b // first_groups + bn(b) + 9 * b + bn(b) + b * (width - c) // groups \
            + bn(width - c)
        n += (count - 1) * (width * b // groups + bn(b) + 9 * b + bn(b) + b * width // groups
                            + bn(width))
        c = width
    return n + c * classes + classes


def mobilenet_v1_params(classes=1000):
    """Stem 3x3/2 to 32 + BN; 13 x (dw3x3 + BN, 1x1 + BN); fc."""
    widths = [32, 64, 128, 128, 256, 256] + [512] * 6 + [1024, 1024]
    n = 3 * 32 * 9 + bn(32)
    for cin, cout in zip(widths, widths[1:]):
        n += 9 * cin + bn(cin) + cin * cout + bn(cout)
    return n + 1024 * classes + classes


def densenet_params(depths=(6, 12, 48, 32), growth=32, init=64, bn_size=4, classes=1000):
    """Stem 7x7 + BN; dense layers BN-1x1(4k)-BN-3x3(k); transitions BN-1x1 halving; final
    BN; fc."""
    n, c = 3 * init * 49 + bn(init), init
    for i, depth in enumerate(depths):
        for _ in range(depth):
            n += bn(c) + c * bn_size * growth + bn(bn_size * growth) + bn_size * growth**2 * 9
            c += growth
        if i < len(depths) - 1:
            n, c = n + bn(c) + c * (c // 2), c // 2
    return n + bn(c) + c * classes + classes


# config -> (independent count, published figure or None, convs in the backbone)
CONFIGS = {
    'ws_shufflenetv2_1x_eshift_in1k.py': (shufflenet_v2_params(), 2_278_604,
                                          1 + 3 * 5 + 13 * 3 + 1),
    'ws_shufflenetv1_1x_g3_eshift_in1k.py': (shufflenet_v1_params(), None, 1 + 16 * 3),
    'ws_mobilenetv1_eshift_in1k.py': (mobilenet_v1_params(), 4_231_976, 1 + 13 * 2),
    'ws_densenet201_eshift_in1k.py': (densenet_params(), 20_013_928, 1 + 2 * 98 + 3),
}
EPSILONS = {'ws_shufflenetv2_1x_eshift_in1k.py': (4e-5, 1e-8),
            'ws_shufflenetv1_1x_g3_eshift_in1k.py': (4e-5, 1e-8),
            'ws_mobilenetv1_eshift_in1k.py': (4e-5, 1e-6),
            'ws_densenet201_eshift_in1k.py': (1e-4, 1e-8)}


def _config(name):
    return Config.fromfile(osp.join(REPO, 'configs', 'imagenet', name))


def _build(model_cfg):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(copy.deepcopy(model_cfg))


@pytest.fixture(scope='module')
def classifiers():
    cache = {}

    def get(name):
        if name not in cache:
            cfg = _config(name)
            cache[name] = (cfg, _build(cfg.model))
        return cache[name]

    return get


def test_independent_counts_reproduce_the_published_figures():
    assert shufflenet_v2_params() == 2_278_604  # ShuffleNetV2 1x (Ma et al.; PytorchInsight)
    assert mobilenet_v1_params() == 4_231_976  # MobileNetV1 1.0 (Howard et al.)
    assert densenet_params() == 20_013_928  # DenseNet-201 (Huang et al.; torchvision)
    assert densenet_params(depths=(6, 12, 24, 16)) == 7_978_856  # DenseNet-121 (torchvision)
    assert shufflenet_v1_params() == 1_865_728  # ShuffleNetV1 1x, g = 3


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_ws_network_has_the_plain_networks_parameters(name, classifiers):
    cfg, model = classifiers(name)
    expected, published, num_convs = CONFIGS[name]
    count = sum(p.numel() for p in model.parameters())
    assert count == expected
    if published is not None:
        assert count == published
    plain_cfg = copy.deepcopy(cfg.model)
    plain_cfg.backbone.pop('conv_cfg')
    plain = _build(plain_cfg)
    assert sum(p.numel() for p in plain.parameters()) == count
    assert plain.state_dict().keys() == model.state_dict().keys()
    convs = [m for m in model.backbone.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == num_convs  # every conv, the stem included, is a ConvWS2d
    assert all(type(m) is ConvWS2d and m.eps == 1e-5 for m in convs)
    assert not any(type(m) is ConvWS2d for m in plain.modules())


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_ws_config_applies_the_sources_epsilon_and_excludes_depthwise_convs(name, classifiers):
    cfg, model = classifiers(name)
    lam, eps = EPSILONS[name]
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    group_of = {id(p): g for g in wrapper.optimizer.param_groups for p in g['params']}
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    depthwise = [m for m in convs if m.groups == m.in_channels == m.out_channels]
    assert bool(depthwise) == ('densenet' not in name)
    for conv in convs:
        group = group_of[id(conv.weight)]
        assert group['weight_decay'] == 0.
        if conv in depthwise:  # shape[1] == 1: neither decay nor the e-shift term
            assert conv.weight.shape[1] == 1 and 'eshift_lambda' not in group
        else:
            assert (group['eshift_lambda'], group['eshift_eps']) == (lam, eps)
    decay = cfg.optim_wrapper.optimizer.weight_decay
    assert group_of[id(model.head.fc.weight)]['weight_decay'] == decay
    assert group_of[id(model.head.fc.bias)]['weight_decay'] == 0.
    norm = next(m for m in model.backbone.modules() if isinstance(m, _BatchNorm))
    mobile = 'densenet' not in name  # the mobile recipe does not decay BN
    assert group_of[id(norm.weight)]['weight_decay'] == (0. if mobile else decay)


def _hand_standardised(weight, eps=1e-5):
    """(w_f - mean_f) / (std_f + eps) per output filter, std unbiased, written out."""
    flat = weight.reshape(weight.shape[0], -1)
    n = flat.shape[1]
    mean = flat.sum(1, keepdim=True) / n
    std = (((flat - mean)**2).sum(1, keepdim=True) / (n - 1)).sqrt()
    return ((flat - mean) / (std + eps)).reshape(weight.shape)


TINY = {
    'shufflenetv2': dict(type='mmpretrain.ShuffleNetV2', widen_factor=0.5, out_indices=(3, )),
    'shufflenetv1': dict(type='mmpretrain.ShuffleNetV1', groups=3, widen_factor=0.5),
    'mobilenetv1': dict(type='resvariants.MobileNetV1', widen_factor=0.25),
    'densenet': dict(type='resvariants.DenseNet',
                     arch=dict(growth_rate=4, depths=[2, 1, 2, 1], init_channels=8)),
}


@pytest.mark.parametrize('name', sorted(TINY))
def test_ws_network_equals_the_plain_network_with_hand_standardised_weights(name):
    torch.manual_seed(0)
    ws, plain = _build(dict(TINY[name], conv_cfg=WS)), _build(TINY[name])
    ws.double().eval()  # mmpretrain's ShuffleNets return None from train()
    plain.double().eval()
    with torch.no_grad():
        for p in ws.parameters():
            p.copy_(torch.randn(p.shape) * 0.5 + 0.1)
        for m in ws.modules():
            if isinstance(m, _BatchNorm):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
        state = ws.state_dict()
        plain.load_state_dict(state)
        for conv_name, conv in plain.named_modules():
            if isinstance(conv, nn.Conv2d):
                conv.weight.copy_(_hand_standardised(state[f'{conv_name}.weight']))
        x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
        outs, expected = ws(x), plain(x)
    assert len(outs) == len(expected) >= 1
    for out, ref in zip(outs, expected):
        torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)
    # and it is not the plain network with the raw weights
    plain.load_state_dict(state)
    with torch.no_grad():
        assert (plain(x)[-1] - outs[-1]).abs().max() > 1e-2


def test_eshift_step_leaves_depthwise_weights_alone():
    """One SGD step with zero loss gradients on a WS MobileNetV1: pointwise / stem weights move
    by exactly -lr * dR/dw, depthwise weights (shape[1] == 1) do not move."""
    torch.manual_seed(0)
    model = MobileNetV1(widen_factor=0.25, conv_cfg=WS)
    wrapper = build_optim_wrapper(model, dict(
        constructor='resvariants.EShiftL2OptimWrapperConstructor',
        eshift_l2=dict(lam=0.01, eps=0.05),
        optimizer=dict(type='SGD', lr=1.0, momentum=0.9, weight_decay=4e-5),
        paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., dwconv_decay_mult=0.)))
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    wrapper.step()
    moved = dict(model.named_parameters())
    depthwise = [k for k in before if k.endswith('depthwise_conv.conv.weight')]
    others = [k for k, v in before.items() if v.dim() == 4 and k not in depthwise]
    assert len(depthwise) == 13 and len(others) == 14
    for key in depthwise:
        assert torch.equal(moved[key].detach(), before[key])
    for key in others:
        expected = before[key] - eshift_l2_gradient(before[key], 0.01, 0.05)
        torch.testing.assert_close(moved[key].detach(), expected)


# --------------------------------------------------------------------------------------------
# MobileNetV1
# --------------------------------------------------------------------------------------------


def _reference_mobilenet(model, x):
    """conv-BN-ReLU stem, then (dw3x3-BN-ReLU, 1x1-BN-ReLU) blocks, from the parameters."""
    def cbr(module, x, stride, groups):
        conv, norm = module.conv, module.bn
        padding = conv.kernel_size[0] // 2
        x = F.conv2d(x, conv.weight, None, stride, padding, 1, groups)
        x = F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias,
                         False, 0., norm.eps)
        return F.relu(x)

    x = cbr(model.conv1, x, 2, 1)
    outs = []
    for i, stage in enumerate(model.arch):
        for j, (_, stride) in enumerate(stage):
            block = getattr(model, f'layer{i + 1}')[j]
            x = cbr(block.depthwise_conv, x, stride, x.shape[1])
            x = cbr(block.pointwise_conv, x, 1, 1)
        outs.append(x)
    return outs


def test_mobilenet_v1_forward_strides_and_widths():
    torch.manual_seed(0)
    model = MobileNetV1(widen_factor=0.25, out_indices=(0, 1, 2, 3, 4))
    model.init_weights()
    model.eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                m.weight.uniform_(0.5, 1.5)
                m.running_mean.uniform_(-0.1, 0.1)
        x = torch.randn(2, 3, 64, 48)
        outs = model(x)
        expected = _reference_mobilenet(model, x)
    assert [tuple(o.shape) for o in outs] == [(2, 16, 32, 24), (2, 32, 16, 12), (2, 64, 8, 6),
                                              (2, 128, 4, 3), (2, 256, 2, 2)]
    for out, ref in zip(outs, expected):
        torch.testing.assert_close(out, ref)
    full = MobileNetV1()
    assert sum(p.numel() for p in full.parameters()) + 1024 * 1000 + 1000 == 4_231_976
    assert full.out_channels == 1024


def test_mobilenet_v1_frozen_stages_and_norm_eval():
    model = MobileNetV1(widen_factor=0.25, frozen_stages=2, norm_eval=True).train()
    frozen = [model.conv1, model.layer1, model.layer2]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for m in (model.layer3, model.layer5) for p in m.parameters())
    assert not any(m.training for m in model.modules() if isinstance(m, _BatchNorm))
    model = MobileNetV1(widen_factor=0.25, frozen_stages=0).train()
    assert not any(p.requires_grad for p in model.conv1.parameters())
    assert all(p.requires_grad for p in model.layer1.parameters())
    assert model.layer1[0].depthwise_conv.bn.training


@pytest.mark.parametrize('kwargs,message', [
    (dict(out_indices=(5, )), r'out_indices must be stage indices in range\(5\), got \(5,\)'),
    (dict(out_indices=()), r'out_indices must be stage indices'),
    (dict(frozen_stages=6), r'frozen_stages must be in range\(-1, 6\), got 6'),
    (dict(widen_factor=0), r'widen_factor must be a number > 0, got 0'),
])
def test_mobilenet_v1_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MobileNetV1(**kwargs)


# --------------------------------------------------------------------------------------------
# DenseNet with conv_cfg
# --------------------------------------------------------------------------------------------


def test_densenet_conv_cfg_keeps_weights_names_and_frozen_stages():
    arch = dict(growth_rate=4, depths=[2, 1, 2, 1], init_channels=8)
    torch.manual_seed(0)
    plain = DenseNet(arch=arch, frozen_stages=2)
    torch.manual_seed(0)
    ws = DenseNet(arch=arch, frozen_stages=2, conv_cfg=WS)
    assert ws.state_dict().keys() == plain.state_dict().keys()
    for key, value in plain.state_dict().items():
        assert torch.equal(ws.state_dict()[key], value)  # same draws, weights carried over
    assert type(ws.stem[0]) is ConvWS2d and type(plain.stem[0]) is nn.Conv2d
    for module in (ws, plain):
        frozen = list(module.stages[:2].parameters()) + list(module.transitions[:2].parameters())
        assert frozen and not any(p.requires_grad for p in frozen)
        assert all(p.requires_grad for p in module.stages[2].parameters())
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        built = MODELS.build(dict(type='resvariants.DenseNet', arch='121', conv_cfg=WS))
    assert isinstance(built, DenseNet)
    assert sum(p.numel() for p in built.parameters()) + 1024 * 1000 + 1000 == 7_978_856
