"""The pre-activation ImageNet trunk (``ResNet(preact=True)``, epsilon-ResNet's network:
tensorpack's pre-activation ResNet, docs/architectures.md 2.1) and its strict-identity gates."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import DefaultScope
from torch.nn.modules.batchnorm import _BatchNorm

from resvariants.models import CompactResNet, EDResNet, EpsilonResNet, ResNet
from resvariants.models.backbones.preact_resnet import PreActBlock, PreActBottleneck
from resvariants.models.classifiers.epsilon_classifier import EpsilonImageClassifier


def _randomise(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / p[0].numel())**0.5)
            elif name.endswith('weight'):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model.eval()


def bn_relu(norm, x):
    """Eval-mode BN then ReLU, written out."""
    scale = norm.weight / (norm.running_var + norm.eps).sqrt()
    return F.relu((x - norm.running_mean[:, None, None]) * scale[:, None, None]
                  + norm.bias[:, None, None])


def conv(module, x):
    return F.conv2d(x, module.weight, None, module.stride, module.padding, module.dilation,
                    module.groups)


def hand_block(block, x, first_stage_first=False, first=False):
    """The tensorpack block, from the block's parameters: a = BN-ReLU(x) (not in the network's
    very first block), F from a, shortcut from a in a stage's first block (from x otherwise),
    projection a bare 1x1 conv, no ReLU after the sum."""
    a = x if first_stage_first else bn_relu(block.bn1, x)
    if isinstance(block, PreActBottleneck):
        out = conv(block.conv3, bn_relu(block.bn3, conv(block.conv2,
                                                         bn_relu(block.bn2, conv(block.conv1, a)))))
    else:
        out = conv(block.conv2, bn_relu(block.bn2, conv(block.conv1, a)))
    source = a if first else x
    shortcut = source if block.downsample is None else conv(block.downsample[0], source)
    return out + shortcut


@pytest.fixture(scope='module')
def preact50():
    torch.manual_seed(0)
    return _randomise(ResNet(depth=50, base_channels=8, preact=True,
                             out_indices=(0, 1, 2, 3))).double()


def test_bottleneck_trunk_is_the_tensorpack_network_by_hand(preact50):
    model = preact50
    x = torch.randn(2, 3, 48, 40, dtype=torch.float64)
    with torch.no_grad():
        outs = model(x)
        y = F.max_pool2d(bn_relu(model.bn1, conv(model.conv1, x)), 3, 2, 1)
        expected = []
        for i, name in enumerate(model.res_layers):
            for j, block in enumerate(getattr(model, name)):
                y = hand_block(block, y, first_stage_first=(i == j == 0), first=(j == 0))
            if i == 3:
                y = bn_relu(model.bn_out, y)
            expected.append(y)
    assert [tuple(o.shape) for o in outs] == [(2, 32, 12, 10), (2, 64, 6, 5), (2, 128, 3, 3),
                                              (2, 256, 2, 2)]
    for out, ref in zip(outs, expected):
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_structure_of_the_blocks(preact50):
    model = preact50
    first, second = model.layer2[0], model.layer2[1]
    assert isinstance(first, PreActBottleneck) and first.shortcut_from_preact
    assert not second.shortcut_from_preact and second.downsample is None
    # bn1 normalises the block input, bn2 / bn3 follow conv1 / conv2; no norm after conv3
    assert (first.bn1.num_features, first.bn2.num_features, first.bn3.num_features) == (32, 16, 16)
    assert second.bn1.num_features == 64
    assert first.conv2.stride == (2, 2) and first.conv1.stride == (1, 1)  # stride on the 3x3
    # the projection is a strided 1x1 conv without a norm; stage 1 has no pre-activation
    assert len(first.downsample) == 1 and first.downsample[0].stride == (2, 2)
    assert not hasattr(model.layer1[0], 'bn1') and model.layer1[0].shortcut_from_preact
    assert model.layer1[0].downsample[0].kernel_size == (1, 1)
    keys = model.state_dict().keys()
    assert 'bn_out.weight' in keys and 'layer2.0.downsample.1.weight' not in keys
    basic = ResNet(depth=18, base_channels=8, preact=True)
    assert isinstance(basic.layer1[0], PreActBlock) and basic.layer1[0].downsample is None
    assert basic.layer2[0].bn1.num_features == 8 and basic.layer2[0].bn2.num_features == 16


def _preact_resnet_params(stage_blocks, bottleneck, classes=1000):
    """Parameters of tensorpack's pre-activation ResNet, layer by layer (BN: 2 per channel)."""
    expansion = 4 if bottleneck else 1
    n, inplanes = 3 * 64 * 49 + 2 * 64, 64
    for stage, count in enumerate(stage_blocks):
        planes = 64 * 2**stage
        out = planes * expansion
        for j in range(count):
            cin = inplanes if j == 0 else out
            if not (stage == 0 and j == 0):
                n += 2 * cin  # pre-activation BN
            if bottleneck:
                n += cin * planes + 2 * planes + 9 * planes**2 + 2 * planes + planes * out
            else:
                n += 9 * cin * planes + 2 * planes + 9 * planes**2
            if j == 0 and (stage > 0 or cin != out):
                n += cin * out  # 1x1 projection, no BN
        inplanes = out
    return n + 2 * inplanes + inplanes * classes + classes


@pytest.mark.parametrize('depth,blocks,bottleneck', [
    (18, (2, 2, 2, 2), False), (50, (3, 4, 6, 3), True), (101, (3, 4, 23, 3), True)])
def test_parameter_count_equals_an_independent_count(depth, blocks, bottleneck):
    model = EpsilonResNet(depth=depth, preact=True)
    feat = model.feat_dim
    count = sum(p.numel() for p in model.parameters()) + feat * 1000 + 1000
    assert count == _preact_resnet_params(blocks, bottleneck)
    # against the post-activation trunk: projection BNs gone, one final BN added, and the
    # 1-BN-per-conv layout moved (block input width instead of the last conv's width)
    plain = sum(p.numel() for p in ResNet(depth=depth).parameters()) + feat * 1000 + 1000
    assert {18: 11_689_512, 50: 25_557_032, 101: 44_549_160}[depth] == plain
    assert count != plain


def test_gate_switches_a_block_off():
    torch.manual_seed(0)
    model = _randomise(EpsilonResNet(depth=50, base_channels=8, preact=True, epsilon=0.0))
    x = torch.randn(2, 3, 48, 40)
    records = {}

    def keep(name):
        return lambda m, i, o: records.__setitem__(name, (i[0].clone(), o.clone()))

    blocks = {'first': model.layer2[0], 'later': model.layer2[1]}
    handles = [b.register_forward_hook(keep(n)) for n, b in blocks.items()]
    with torch.no_grad():
        model(x)
        for name, block in blocks.items():  # epsilon 0: an ordinary residual block
            inp, out = records[name]
            torch.testing.assert_close(out, hand_block(block, inp, first=name == 'first'),
                                       rtol=1e-4, atol=1e-4)
        for gate in (m.gate for m in model.modules() if hasattr(m, 'gate')):
            gate.epsilon = 1e6  # every response within [-eps, eps]: every gate 0
        model(x)
    for handle in handles:
        handle.remove()
    inp, out = records['first']  # only the projection of the pre-activated input is left
    torch.testing.assert_close(out, conv(model.layer2[0].downsample[0],
                                         bn_relu(model.layer2[0].bn1, inp)))
    inp, out = records['later']  # a strict identity
    assert torch.equal(out, inp)


def test_side_head_and_gated_keys_on_the_preact_trunk():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = EpsilonImageClassifier(
            backbone=dict(type='resvariants.EpsilonResNet', depth=101, preact=True,
                          base_channels=8, epsilon=2.0),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=5, in_channels=256))
    assert model.side_position == (2, 8)
    assert model.side_head.fc.in_features == 128 == model.backbone.layer3[8].conv3.out_channels
    gates = [n for n, m in model.named_modules() if n.endswith('.gate')]
    assert len(gates) == 33


def test_frozen_stages_and_norm_eval_cover_the_final_norm():
    model = ResNet(depth=18, base_channels=8, preact=True, frozen_stages=4,
                   norm_eval=False).train()
    assert not model.bn_out.training and not any(p.requires_grad for p in model.bn_out.parameters())
    model = ResNet(depth=18, base_channels=8, preact=True, frozen_stages=3,
                   norm_eval=False).train()
    assert model.bn_out.training and all(p.requires_grad for p in model.bn_out.parameters())
    model = ResNet(depth=18, base_channels=8, preact=True, norm_eval=True).train()
    assert not model.bn_out.training


@pytest.mark.parametrize('build,message', [
    (lambda: ResNet(depth=50, preact=True, sk=dict(groups=4)),
     'sk \\(selective kernel\\) is defined for the post-activation trunk, not preact=True'),
    (lambda: ResNet(depth=50, preact=True, zero_init_residual=True),
     'preact=True needs zero_init_residual=False'),
    (lambda: EDResNet(depth=50, preact=True),
     "EDResNet: preact=True is defined for the trunk's BasicBlock / Bottleneck, not "
     'EDBottleneck'),
    (lambda: CompactResNet(depth=50, stage_blocks=(1, 1, 1, 1), preact=True),
     'the compact export of a pre-activation \\(preact=True\\) network is not implemented'),
])
def test_options_the_preact_trunk_does_not_define_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_with_cp_and_conv_ws_on_the_preact_trunk():
    torch.manual_seed(0)
    model = _randomise(EpsilonResNet(depth=18, base_channels=8, preact=True, epsilon=0.5,
                                     conv_cfg=dict(type='ConvWS')))
    assert all(type(m).__name__ == 'ConvWS2d' for m in model.modules()
               if isinstance(m, nn.Conv2d))
    checkpointed = EpsilonResNet(depth=18, base_channels=8, preact=True, epsilon=0.5,
                                 conv_cfg=dict(type='ConvWS'), with_cp=True)
    checkpointed.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 40, 36)
    results = []
    for m in (model, checkpointed):
        m.train()
        inp = x.clone().requires_grad_()
        m(inp)[0].square().sum().backward()
        results.append((inp.grad, [p.grad for p in m.parameters()], m.state_dict()))
    torch.testing.assert_close(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b)
    for key, value in results[0][2].items():  # BN statistics updated once
        torch.testing.assert_close(results[1][2][key], value)
