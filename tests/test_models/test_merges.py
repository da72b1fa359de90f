"""The shortcut merges (backbones/merges.py): each merge's formula on a block, by hand; the
presets are exactly the trunk with their merge (keys and outputs); clear errors."""
import pytest
import torch

from resvariants.models import EDResNet, EpsilonResNet, PlainResNet, PreActResNetCIFAR, ResNet
from resvariants.models.backbones import BasicBlock, Bottleneck
from resvariants.models.backbones.merges import MERGES, build_merge

SMALL = dict(base_channels=8, zero_init_residual=False)


def randomised(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (p[0].numel()**-0.5 if p.dim() > 1
                                                          else 0.5))
        for name, buf in model.named_buffers():
            if name.endswith('running_var'):
                buf.copy_(torch.rand(buf.shape, generator=gen) + 0.5)
    return model.eval()


def test_registered_merges():
    assert (MERGES.name, MERGES.scope) == ('shortcut merge', 'resvariants')
    assert sorted(MERGES.module_dict) == ['EDPath', 'NoShortcut', 'Residual', 'StrictIdentity']
    assert [build_merge(n).needs_projection for n in sorted(MERGES.module_dict)] == [
        True, False, True, True]
    assert [build_merge(n).allows_zero_init_residual for n in sorted(MERGES.module_dict)] == [
        True, False, True, False]
    assert type(build_merge(None)).__name__ == 'Residual'
    assert type(build_merge('resvariants.NoShortcut')).__name__ == 'NoShortcut'
    assert [repr(build_merge(n)) for n in ('Residual', 'StrictIdentity', 'EDPath')] == [
        'Residual()', 'StrictIdentity(epsilon=2.0, sparsity_l=1000000.0)', 'EDPath(groups=32)']


def test_strict_identity_settings_reach_the_gate():
    block = Bottleneck(32, 8, merge=dict(type='StrictIdentity', epsilon=1.5, sparsity_l=10.))
    assert (block.gate.epsilon, block.gate.sparsity_l) == (1.5, 10.)
    default = Bottleneck(32, 8, merge='StrictIdentity').gate
    assert (default.epsilon, default.sparsity_l) == (2.0, 1e6)


@pytest.mark.parametrize('groups', [1, 2])
def test_ed_path_takes_any_positive_group_count(groups):
    block = Bottleneck(16, 8, merge=dict(type='EDPath', groups=groups))
    assert block.ed_path.encoder_conv.groups == groups
    assert Bottleneck(256, 64, merge='EDPath').ed_path.encoder_conv.groups == 32


def test_zero_init_residual_stays_the_default_of_a_residual_trunk():
    assert ResNet(depth=18, base_channels=8).zero_init_residual is True
    assert ResNet(depth=18, base_channels=8, merge='Residual').zero_init_residual is True

def _calls(block, name):
    calls = []
    module = getattr(block, name)
    module.register_forward_hook(lambda m, i, o: calls.append(o))
    return calls


def test_residual_block_is_relu_of_branch_plus_projection():
    block = randomised(Bottleneck(16, 8, stride=2, downsample=_projection(16, 32, 2)))
    x = torch.randn(2, 16, 9, 9)
    expected = torch.relu(block.residual(x) + block.downsample(x))
    torch.testing.assert_close(block(x), expected)


def _projection(inplanes, outplanes, stride):
    return torch.nn.Sequential(torch.nn.Conv2d(inplanes, outplanes, 1, stride, bias=False),
                               torch.nn.BatchNorm2d(outplanes))


def test_no_shortcut_block_is_relu_of_its_branch_and_refuses_a_projection():
    block = randomised(BasicBlock(8, 16, stride=2, merge='NoShortcut'))
    x = torch.randn(2, 8, 10, 10)
    assert torch.equal(block(x), torch.relu(block.residual(x)))
    with pytest.raises(ValueError) as info:
        BasicBlock(8, 16, stride=2, downsample=_projection(8, 16, 2), merge='NoShortcut')
    assert info.value.args[0] == ('BasicBlock with merge=NoShortcut has no shortcut; it takes no '
                                  'downsample module (got Sequential)')


@pytest.mark.parametrize('epsilon, open_gate', [(0.0, True), (1e9, False)])
def test_strict_identity_block_gates_its_branch(epsilon, open_gate):
    block = randomised(Bottleneck(32, 8, merge=dict(type='StrictIdentity', epsilon=epsilon)))
    block.train()
    x = torch.randn(2, 32, 6, 6)
    branch = block.residual(x)
    expected = torch.relu((branch if open_gate else 0 * branch) + x)
    torch.testing.assert_close(block(x), expected)
    assert block.gate.epsilon == epsilon and int(block.gate.steps_seen) == 1
    assert int(block.gate.steps_discarded) == (0 if open_gate else 1)


def test_ed_path_block_runs_its_shortcut_once():
    block = randomised(Bottleneck(16, 8, stride=2, downsample=_projection(16, 32, 2),
                                  merge=dict(type='EDPath', groups=4)))
    seen = _calls(block, 'downsample')
    x = torch.randn(2, 16, 9, 7)
    out = block(x)
    assert len(seen) == 1
    s = block.downsample(x)
    torch.testing.assert_close(out, torch.relu(block.residual(x) + s + block.ed_path(s)))
    assert block.ed_path.encoder_conv.out_channels == 8 and block.ed_path.encoder_conv.groups == 4


@pytest.mark.parametrize('preset, kwargs, merge', [
    (PlainResNet, dict(depth=50), 'NoShortcut'),
    (EpsilonResNet, dict(depth=50, epsilon=1.5), dict(type='StrictIdentity', epsilon=1.5)),
    (EDResNet, dict(depth=50, ed_groups=4), dict(type='EDPath', groups=4)),
])
def test_presets_are_the_trunk_with_their_merge(preset, kwargs, merge):
    preset_model = randomised(preset(**kwargs, **SMALL))
    trunk = ResNet(depth=kwargs['depth'], merge=merge, **SMALL)
    assert list(trunk.state_dict()) == list(preset_model.state_dict())
    trunk.load_state_dict(preset_model.state_dict())
    x = torch.randn(2, 3, 48, 40)
    for a, b in zip(preset_model(x), trunk.eval()(x)):
        torch.testing.assert_close(a, b)


def test_preact_block_takes_the_strict_identity_merge():
    model = randomised(PreActResNetCIFAR(depth=20, epsilon=1e9)).train()
    block = model.layer2[1]
    x = torch.randn(2, 32, 8, 8)
    torch.testing.assert_close(block(x), x)  # gate closed: the identity, no final ReLU
    assert int(block.gate.steps_discarded) == 1


def test_no_shortcut_trunk_turns_the_zero_init_off():
    model = ResNet(depth=18, merge='NoShortcut', base_channels=8)
    model.init_weights()
    assert model.zero_init_residual is False
    assert all(o.abs().sum() > 0 for o in model.eval()(torch.randn(1, 3, 32, 32)))


ZERO_INIT = ('needs zero_init_residual=False: a zero last norm in every block would never '
             'train (no shortcut, or a gate that stays closed)')


@pytest.mark.parametrize('kwargs, error, message', [
    (dict(merge='Sum'), KeyError, "unknown merge 'Sum'; valid merges: EDPath, NoShortcut, "
                                  "Residual, StrictIdentity"),
    (dict(merge=3), TypeError, 'merge must be a name or a dict with "type", got 3'),
    (dict(merge=dict(groups=4)), TypeError,
     'merge must be a name or a dict with "type", got {\'groups\': 4}'),
    (dict(merge='NoShortcut', zero_init_residual=True), ValueError,
     'merge=NoShortcut() ' + ZERO_INIT),
    (dict(merge='StrictIdentity', zero_init_residual=True), ValueError,
     'merge=StrictIdentity(epsilon=2.0, sparsity_l=1000000.0) ' + ZERO_INIT),
    (dict(merge=dict(type='StrictIdentity', epsilon=-1)), ValueError,
     'epsilon must be a number >= 0, got -1'),
    (dict(merge=dict(type='StrictIdentity', epsilon=None)), ValueError,
     'epsilon must be a number >= 0, got None'),
    (dict(merge=dict(type='EDPath', groups=0)), ValueError,
     'ed_groups must be a positive int, got 0'),
    (dict(merge=dict(type='EDPath', groups=2.0)), ValueError,
     'ed_groups must be a positive int, got 2.0'),
    (dict(depth=18, merge='EDPath'), ValueError,
     'the ED path is defined for bottleneck blocks, not BasicBlock'),
])
def test_bad_merges_raise(kwargs, error, message):
    with pytest.raises(error) as info:
        ResNet(**dict(dict(depth=50, base_channels=8), **kwargs))
    assert info.value.args[0] == message


@pytest.mark.parametrize('preset', [PlainResNet, EpsilonResNet, EDResNet])
def test_presets_refuse_another_merge(preset):
    with pytest.raises(ValueError, match=f'{preset.__name__} is the trunk with merge='):
        preset(depth=50, merge='Residual')
