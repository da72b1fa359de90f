"""epsilon-ResNet: strict-identity gate, CIFAR pre-act network, gated trunk, side supervision."""
import pytest
import torch
from mmengine.registry import DefaultScope

from resvariants.models import CompactResNet, EpsilonResNet, PreActResNetCIFAR, ResNet
from resvariants.models.backbones.epsilon_resnet import side_supervision_block
from resvariants.models.backbones.preact_resnet_cifar import ParameterFreeDownsample
from resvariants.models.backbones.strict_identity import (StrictIdentityGate,
                                                          apply_discard_record, discard_record,
                                                          find_strict_identity_gates,
                                                          strict_identity_gate)
from resvariants.models.classifiers.epsilon_classifier import EpsilonImageClassifier


def _branch(values, dtype):
    """A batch tensor (2 x 3 x 4 x 4) that is 0.5 everywhere except the given values."""
    t = torch.full((2, 3, 4, 4), 0.5, dtype=dtype)
    flat = t.view(-1)
    flat[:len(values)] = torch.tensor(values, dtype=dtype)
    return t


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_gate_truth_table(dtype, reference_figures):
    table = reference_figures['epsilon_resnet']['strict_identity_truth_table_eps2']
    eps = 2.0
    cases = {
        'all_below_eps': [1.9, -1.99, 0.0],
        'exactly_eps': [2.0, -2.0],
        'one_above_by_1e-3': [0.1, 2.0 + 1e-3],
        'one_above_by_1e-7': [0.1, -(2.0 + 1e-7)],
    }
    for name, values in cases.items():
        gate = strict_identity_gate(_branch(values, dtype), eps)
        assert gate.item() == table[name], name


def test_gate_ramp_and_gradient():
    eps = 1.0
    # between 0 and 1e-6 of excess the gate ramps linearly (float64 resolves it)
    ramp = [strict_identity_gate(_branch([eps + e], torch.float64), eps).item()
            for e in (0.2e-6, 0.999999e-6, 0.9999995e-6, 2e-6)]
    assert ramp[0] == 0.0 and ramp[-1] == 1.0
    assert 0.0 < ramp[2] < 1.0 and ramp[1] <= ramp[2]
    # an open gate passes the gradient unchanged, a closed one passes none
    module = StrictIdentityGate(eps)
    for values, expected in (([3.0], 1.0), ([0.3], 0.0)):
        x = _branch(values, torch.float32).requires_grad_()
        module(x).sum().backward()
        assert torch.all(x.grad == expected)


def test_gate_counts_and_recorded_decisions():
    gate = StrictIdentityGate(2.0).train()
    small, large = torch.full((4, 8), 0.5), torch.full((4, 8), 3.0)
    gate(small)
    gate(large)
    gate(small)
    assert (gate.steps_seen.item(), gate.steps_discarded.item()) == (3, 2)
    gate.eval()
    assert torch.equal(gate(large), large)  # no decision yet: live, like the source
    assert torch.equal(gate(small), torch.zeros_like(small))
    gate.discarded = True
    assert torch.equal(gate(large), torch.zeros_like(large))
    gate.discarded = False
    assert torch.equal(gate(small), small)
    assert gate.steps_seen.item() == 3  # eval steps are not counted
    assert 'steps_seen' not in gate.state_dict()
    with pytest.raises(ValueError, match='epsilon'):
        StrictIdentityGate(-1.0)


def test_recorded_decisions_make_eval_batch_independent():
    model = PreActResNetCIFAR(depth=8, epsilon=1e9, base_channels=8).eval()
    apply_discard_record(model, dict(blocks=list(find_strict_identity_gates(model)),
                                     discarded=['layer2.0'], decided=True))
    x = torch.randn(4, 3, 16, 16)
    alone = model(x[:1])[0]
    together = model(x)[0][:1]
    torch.testing.assert_close(alone, together, rtol=1e-5, atol=1e-5)
    record = discard_record(model)
    assert record['discarded'] == ['layer2.0'] and record['decided']
    with pytest.raises(KeyError, match='does not match'):
        apply_discard_record(model, dict(blocks=['layer9.0'], discarded=[], decided=True))


def _hand_gate(s, sparsity_l):
    """ReLU(1 - L * ReLU(1 - L * s)) on a Python float (docs/architectures.md 2.2)."""
    return max(0.0, 1.0 - sparsity_l * max(0.0, 1.0 - sparsity_l * s))


@pytest.mark.parametrize('values,s', [
    ([1.095], 0.095),           # on the ramp: 1 - 10 * (1 - 0.95) = 0.5
    ([-1.092], 0.092),          # a negative response alone: 1 - 10 * 0.08 = 0.2
    ([1.05, -1.095], 0.095),    # s is the largest excess of |F| over eps, of either sign
    ([1.2], 0.2),               # past the ramp: open
    ([0.9, -1.0, 1.0], 0.0),    # all |F| <= eps: closed
])
def test_gate_formula_with_a_small_slope(values, s):
    # with L = 10 the ramp of the 4-ReLU gate is wide enough to pin values by hand
    residual = _branch(values, torch.float64)
    expected = _hand_gate(s, 10.0)
    gate = strict_identity_gate(residual, 1.0, sparsity_l=10.0)
    assert gate.dtype == torch.float64
    assert abs(gate.item() - expected) < 1e-9
    module = StrictIdentityGate(1.0, sparsity_l=10.0)
    torch.testing.assert_close(module(residual), expected * residual)


def test_gate_default_slope_and_precision():
    # eps = 0 makes s = max |F| exactly; the default L = 1e6 puts the ramp at s in
    # [1e-6 - 1e-12, 1e-6]; its midpoint gives 0.5, which float64 resolves to ~1e-10
    for s, expected in ((0.9999995e-6, 0.5), (0.99999975e-6, 0.75), (1e-6 - 1e-12, 0.0),
                        (1e-6, 1.0)):
        residual = torch.zeros(2, 3, dtype=torch.float64)
        residual[1, 2] = -s
        gate = strict_identity_gate(residual, 0.0)
        assert abs(gate.item() - expected) < 1e-6, s
        assert abs(expected - _hand_gate(s, 1e6)) < 1e-6
    # half precision: computed in float32 (L * s overflows float16), returned in the input dtype
    for dtype in (torch.float16, torch.bfloat16):
        for values, expected in (([3.0], 1.0), ([-3.0], 1.0), ([1.5, -2.0], 0.0)):
            gate = strict_identity_gate(_branch(values, dtype), 2.0)
            assert gate.dtype == dtype and gate.item() == expected, (dtype, values)


def test_gate_module_arguments_and_state():
    assert repr(StrictIdentityGate(2.5)) == 'StrictIdentityGate(epsilon=2.5, sparsity_l=1e+06)'
    assert repr(StrictIdentityGate(1, sparsity_l=10)) == \
        'StrictIdentityGate(epsilon=1.0, sparsity_l=10)'
    with pytest.raises(ValueError, match=r'^epsilon must be >= 0, got -0\.5$'):
        StrictIdentityGate(-0.5)
    # eps = 0 and eps < 1 are valid: with eps = 0 any non-zero response opens the gate
    zero = StrictIdentityGate(0.0).train()
    x = torch.full((2, 4), 1e-3)
    assert torch.equal(zero(x), x)
    assert torch.equal(zero(torch.zeros(2, 4)), torch.zeros(2, 4))
    assert (zero.steps_seen.item(), zero.steps_discarded.item()) == (2, 1)
    assert StrictIdentityGate(0.5).epsilon == 0.5
    # the counters are no state: the gated network keeps the plain key layout
    assert dict(zero.state_dict()) == {} and dict(zero.named_buffers()).keys() == {
        'steps_seen', 'steps_discarded'}
    zero.reset_statistics()
    assert (zero.steps_seen.item(), zero.steps_discarded.item()) == (0, 0)


def test_training_gate_is_live_whatever_was_decided():
    gate = StrictIdentityGate(2.0).train()
    small, large = torch.full((4, 8), 0.5), torch.full((4, 8), 3.0)
    for decided in (True, False):
        gate.discarded = decided
        assert torch.equal(gate(large), large)
        assert torch.equal(gate(small), torch.zeros_like(small))
    assert (gate.steps_seen.item(), gate.steps_discarded.item()) == (4, 2)


def test_gate_names_and_discard_records():
    model = PreActResNetCIFAR(depth=8, epsilon=1e9, base_channels=8)
    blocks = ['layer1.0', 'layer2.0', 'layer3.0']
    assert list(find_strict_identity_gates(model)) == blocks
    bare = torch.nn.Sequential(torch.nn.Identity(), StrictIdentityGate(1.0))
    assert list(find_strict_identity_gates(bare)) == ['1']  # a gate not named "gate"
    assert discard_record(model) == dict(blocks=blocks, discarded=[], decided=False, epsilon=1e9)
    assert discard_record(torch.nn.Conv2d(1, 1, 1)) == dict(blocks=[], discarded=[],
                                                            decided=False, epsilon=None)
    gates = apply_discard_record(model, dict(blocks=blocks, discarded=['layer2.0'],
                                             decided=True))
    assert {n: g.discarded for n, g in gates.items()} == {
        'layer1.0': False, 'layer2.0': True, 'layer3.0': False}
    find_strict_identity_gates(model)['layer1.0'].epsilon = 2e9
    assert discard_record(model) == dict(blocks=blocks, discarded=['layer2.0'], decided=True,
                                         epsilon=2e9)  # the largest epsilon of the gates
    assert discard_record(model, epsilon=3.0)['epsilon'] == 3.0
    # one gate without a decision: not decided
    find_strict_identity_gates(model)['layer3.0'].discarded = None
    assert discard_record(model)['decided'] is False
    # an undecided record resets the decisions; a record without "decided" applies its list
    apply_discard_record(model, dict(blocks=blocks, discarded=['layer2.0'], decided=False))
    assert all(g.discarded is None for g in find_strict_identity_gates(model).values())
    apply_discard_record(model, dict(blocks=blocks, discarded=['layer3.0']))
    assert [g.discarded for g in find_strict_identity_gates(model).values()] == [False, False,
                                                                                 True]


def test_discard_record_of_another_architecture_is_refused():
    model = PreActResNetCIFAR(depth=14, epsilon=2.5, base_channels=4)  # 6 gated blocks
    with pytest.raises(KeyError) as error:
        apply_discard_record(model, dict(blocks=['d', 'c', 'b', 'a', 'layer1.0'], discarded=[],
                                         decided=True))
    assert error.value.args[0] == (
        "the discard record does not match the model's gated blocks: 4 unknown (e.g. "
        "['a', 'b', 'c']), 5 not in the record (e.g. ['layer1.1', 'layer2.0', 'layer2.1'])")
    with pytest.raises(KeyError, match='0 unknown'):
        apply_discard_record(model, dict(discarded=[], decided=True))  # no block list at all
    assert all(g.discarded is None for g in find_strict_identity_gates(model).values())


@pytest.mark.parametrize('depth', [110, 200])
def test_cifar_param_counts_equal_reference(depth, reference_figures):
    figures = reference_figures['epsilon_resnet']
    backbone = PreActResNetCIFAR(depth=depth, epsilon=2.5)
    fc = 64 * 10 + 10
    assert sum(p.numel() for p in backbone.parameters()) + fc == \
        figures[f'eps_preact_cifar10_depth{depth}_params_without_side_head']
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        classifier = _cifar_classifier(depth)
    side = sum(p.numel() for p in classifier.side_head.parameters())
    assert side == figures[f'eps_preact_cifar10_depth{depth}_side_head_params']
    assert classifier.side_position == (1, (depth - 2) // 6 // 2)  # res2.9 for ResNet-110


def _cifar_classifier(depth, base_channels=16, **side):
    return EpsilonImageClassifier(
        backbone=dict(type='resvariants.PreActResNetCIFAR', depth=depth, epsilon=2.5,
                      base_channels=base_channels),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=4 * base_channels),
        side_head=dict(loss_weight=0.1, **side))


def test_cifar_structure_and_errors():
    model = PreActResNetCIFAR(depth=20, epsilon=2.5, base_channels=8, out_indices=(0, 1, 2))
    assert not model.layer1[0].preact and model.layer1[1].preact
    assert isinstance(model.layer2[0].downsample, ParameterFreeDownsample)
    outs = model(torch.randn(2, 3, 32, 32))
    assert [tuple(o.shape[1:]) for o in outs] == [(8, 32, 32), (16, 16, 16), (32, 8, 8)]
    for bad in (dict(depth=21), dict(depth=110, out_indices=(3, ))):
        with pytest.raises(ValueError):
            PreActResNetCIFAR(**bad)
    with pytest.raises(ValueError, match='shortcut'):
        PreActResNetCIFAR(depth=20, stage_blocks=(3, 0, 3))


def test_parameter_free_shortcut_pools_and_pads():
    x = torch.arange(2 * 4 * 4 * 4, dtype=torch.float32).view(2, 4, 4, 4)
    out = ParameterFreeDownsample(4, 8)(x)
    assert out.shape == (2, 8, 2, 2)
    assert torch.all(out[:, :2] == 0) and torch.all(out[:, 6:] == 0)
    torch.testing.assert_close(out[:, 2:6], torch.nn.functional.avg_pool2d(x, 2))


def test_gated_trunk_keeps_the_plain_key_layout():
    gated = EpsilonResNet(depth=50, base_channels=16, epsilon=2.0)
    plain = ResNet(depth=50, base_channels=16)
    assert gated.state_dict().keys() == plain.state_dict().keys()
    gated.load_state_dict(plain.state_dict(), strict=True)
    assert len(find_strict_identity_gates(gated)) == 16
    # attention still lands after the last norm of the gated bottleneck (after_conv3)
    gated_se = EpsilonResNet(depth=50, base_channels=16, attention='se')
    assert gated_se.state_dict().keys() == \
        ResNet(depth=50, base_channels=16, attention='se').state_dict().keys()
    assert gated_se.layer1[0].after_conv3_plugin_names
    with pytest.raises(ValueError, match='zero_init_residual'):
        EpsilonResNet(depth=50, zero_init_residual=True)


def test_gate_off_block_equals_its_shortcut():
    model = EpsilonResNet(depth=18, base_channels=8, epsilon=1e9).train()
    block = model.layer2[0]
    x = torch.relu(torch.randn(2, 8, 8, 8))
    torch.testing.assert_close(block(x), torch.relu(block.downsample(x)))
    model.layer2[1].train()
    y = torch.relu(torch.randn(2, 16, 4, 4))
    torch.testing.assert_close(model.layer2[1](y), y)


@pytest.mark.parametrize('depth,expected', [(18, (2, 0)), (34, (2, 0)), (50, (2, 0)),
                                            (101, (2, 8)), (152, (2, 13))])
def test_side_head_position_follows_the_source(depth, expected):
    assert side_supervision_block(ResNet.arch_settings[depth][1]) == expected[1]
    model = EpsilonResNet(depth=depth, base_channels=8)
    stage, block, channels = model.side_supervision_point()
    assert (stage, block) == expected
    assert channels == 8 * 4 * model.block.expansion


def test_side_supervision_loss_and_prediction():
    from mmpretrain.structures import DataSample
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = EpsilonImageClassifier(
            backbone=dict(type='resvariants.EpsilonResNet', depth=50, base_channels=8,
                          out_indices=(3, ), epsilon=2.0),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=5, in_channels=256))
    model.init_weights()
    assert model.side_position == (2, 0) and model.side_head.num_classes == 5
    # the side block is looked up, not registered a second time (keys, optimizer groups)
    assert {k.split('.')[0] for k in model.state_dict()} == {'backbone', 'head', 'side_head'}
    from mmengine.optim import build_optim_wrapper
    build_optim_wrapper(model, dict(optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4),
                                    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.)))
    x, labels = torch.randn(4, 3, 32, 32), torch.arange(4) % 5
    samples = [DataSample().set_gt_label(int(i)) for i in labels]
    model.train()
    for m in model.modules():  # fixed BN statistics: the check below re-runs the side head
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    seen = {}
    handle = model.backbone.layer3[0].register_forward_hook(
        lambda m, i, o: seen.__setitem__('x', o))
    with torch.no_grad():
        losses = model.loss(x, samples)
    handle.remove()
    assert set(losses) == {'loss', 'loss_side'}
    assert model.side_block.side_output is None  # released after the loss
    # 0.1 x cross-entropy of BN -> ReLU -> global average pool -> fc on layer3[0]'s output
    head = model.side_head
    logits = head.fc(torch.relu(head.bn(seen['x'])).mean(dim=(2, 3)))
    expected = 0.1 * torch.nn.functional.cross_entropy(logits, labels)
    torch.testing.assert_close(losses['loss_side'], expected)
    model.eval()
    preds = model.predict(x)
    assert len(preds) == 4 and preds[0].pred_score.shape == (5, )
    with pytest.raises(ValueError, match='side_position'):
        EpsilonImageClassifier(
            backbone=dict(type='resvariants.EpsilonResNet', depth=18, base_channels=8),
            head=dict(type='mmpretrain.LinearClsHead', num_classes=5, in_channels=64),
            side_position=(2, 7))


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet', 'resvariants'])
def test_builds_from_config_in_every_scope(scope):
    from mmengine.registry import MODELS
    with DefaultScope.overwrite_default_scope(scope):
        for cfg in (dict(type='resvariants.EpsilonResNet', depth=18, base_channels=8),
                    dict(type='resvariants.PreActResNetCIFAR', depth=8, epsilon=2.5),
                    dict(type='resvariants.CompactResNet', depth=18, base_channels=8,
                         stage_blocks=(1, 0, 2, 1),
                         shortcut_only_stages=(False, True, False, False))):
            assert MODELS.build(cfg) is not None


def test_gated_backbone_in_faster_rcnn():
    import os.path as osp

    from mmengine.config import Config

    from resvariants.engine.config_loading import register_scope
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = Config.fromfile(osp.join(repo, 'projects', 'epsilon_resnet', 'configs',
                                   'faster-rcnn_eps-r50_fpn_det-small.py'))
    cfg.model.backbone.update(base_channels=16, init_cfg=None)
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    register_scope('mmdet')
    with DefaultScope.overwrite_default_scope('mmdet'):
        from mmdet.registry import MODELS
        detector = MODELS.build(cfg.model)
    detector.init_weights()
    detector.train()
    gates = find_strict_identity_gates(detector)
    assert len(gates) == 16 and all(n.startswith('backbone.layer') for n in gates)
    feats = detector.extract_feat(torch.randn(2, 3, 64, 64))
    assert len(feats) == 5
    # the frozen stage 1 is in eval mode: its gates are live but do not count
    seen = {n: int(g.steps_seen) for n, g in gates.items()}
    assert all(v == 0 for n, v in seen.items() if n.startswith('backbone.layer1'))
    assert all(v == 1 for n, v in seen.items() if not n.startswith('backbone.layer1'))


def test_compact_resnet_structure():
    model = CompactResNet(depth=50, base_channels=16, stage_blocks=(3, 1, 0, 2),
                          shortcut_only_stages=(False, True, True, False),
                          out_indices=(0, 1, 2, 3)).eval()
    assert len(model.layer2) == 2 and len(model.layer3) == 1 and len(model.layer4) == 2
    outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [(64, 16, 16), (128, 8, 8), (256, 4, 4),
                                                  (512, 2, 2)]
    assert 'layer3.0.downsample.0.weight' in model.state_dict()
    with pytest.raises(ValueError, match='changes shape'):
        CompactResNet(depth=50, stage_blocks=(3, 4, 0, 3))
    with pytest.raises(ValueError, match='exceeds'):
        CompactResNet(depth=50, stage_blocks=(3, 4, 6, 3),
                      shortcut_only_stages=(False, True, False, False))
