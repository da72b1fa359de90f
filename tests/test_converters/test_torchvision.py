"""torchvision ResNet / ResNeXt -> resvariants: same logits as torchvision's own model."""
import pytest
import torch
import torchvision

from resvariants.converters.resnet_layout import (ArchitectureMismatch, forward_logits,
                                                  load_converted)
from resvariants.converters.torchvision import (build_torchvision_model,
                                                convert_torchvision_state_dict,
                                                infer_torchvision_arch, source_model,
                                                torchvision_arch_of)

EXPECTED_BACKBONE = {
    'resnet18': dict(depth=18), 'resnet34': dict(depth=34), 'resnet50': dict(depth=50),
    'resnet101': dict(depth=101), 'resnet152': dict(depth=152),
    'resnext50_32x4d': dict(depth=50, groups=32, base_width=4),
    'resnext101_32x8d': dict(depth=101, groups=32, base_width=8),
}


@pytest.mark.parametrize('arch', sorted(EXPECTED_BACKBONE))
def test_converted_torchvision_model_gives_same_logits(arch, randomize, images):
    source = randomize(torchvision.models.get_model(arch, weights=None))
    converted = convert_torchvision_state_dict(source.state_dict())
    name, backbone_cfg = infer_torchvision_arch(converted)
    assert name == arch
    assert backbone_cfg == dict(type='resvariants.ResNet', **EXPECTED_BACKBONE[arch])
    ours = load_converted(converted, backbone_cfg)
    with torch.no_grad():
        expected = source(images)
    got = forward_logits(ours, images)
    assert got.shape == expected.shape == (2, 1000)
    assert (got - expected).abs().max().item() < 1e-4


def test_every_tensor_is_carried_over(randomize):
    source = randomize(torchvision.models.resnet18(weights=None))
    state = source.state_dict()
    converted = convert_torchvision_state_dict(state)
    assert len(converted) == len(state)
    for key, value in state.items():
        new_key = 'head.' + key if key.startswith('fc.') else 'backbone.' + key
        assert torch.equal(converted[new_key], value), key


def test_legacy_checkpoint_without_bn_counters_converts():
    state = {k: v for k, v in torchvision.models.resnet18(weights=None).state_dict().items()
             if not k.endswith('num_batches_tracked')}
    converted = convert_torchvision_state_dict(state)
    counters = [k for k in converted if k.endswith('num_batches_tracked')]
    assert len(counters) == 20 and all(converted[k].item() == 0 for k in counters)
    load_converted(converted, infer_torchvision_arch(converted)[1])


def test_wide_resnet_is_refused():
    wide = torchvision.models.resnet.ResNet(torchvision.models.resnet.Bottleneck, [3, 4, 6, 3],
                                            width_per_group=128)
    with pytest.raises(ArchitectureMismatch, match='wide ResNet'):
        convert_torchvision_state_dict(wide.state_dict())


def test_unknown_keys_are_listed():
    state = torchvision.models.resnet18(weights=None).state_dict()
    state['layer1.0.se.fc.weight'] = torch.zeros(4, 64)
    with pytest.raises(KeyError, match=r'1 torchvision keys .*layer1\.0\.se\.fc\.weight'):
        convert_torchvision_state_dict(state)


def test_deep_stem_checkpoint_is_refused():
    """A ResNet-C/D deep stem (stem.0/3/6) is not a torchvision layout."""
    state = torchvision.models.resnet18(weights=None).state_dict()
    del state['conv1.weight']
    state['stem.0.weight'] = torch.zeros(32, 3, 3, 3)
    with pytest.raises(ArchitectureMismatch) as info:
        convert_torchvision_state_dict(state)
    assert info.value.args[0] == ('torchvision ResNets have a single 7x7 stem conv; this '
                                  'checkpoint has a deep stem (use --from timm/mmpretrain)')


def test_the_classifier_rename():
    state = torchvision.models.resnet18(weights=None, num_classes=7).state_dict()
    converted = convert_torchvision_state_dict(state)
    assert 'head.fc.weight' in converted and 'head.fc.bias' in converted
    assert not any(k.startswith(('fc.', 'backbone.fc.')) for k in converted)
    assert converted['head.fc.weight'].shape == (7, 512)


@pytest.mark.parametrize('cfg, name', [
    (dict(depth=18), 'resnet18'), (dict(depth=152, groups=1), 'resnet152'),
    (dict(type='resvariants.ResNet', depth=50, groups=32, base_width=4), 'resnext50_32x4d'),
    (dict(depth=101, groups=64, base_width=4), 'resnext101_64x4d'),
])
def test_torchvision_arch_of(cfg, name):
    assert torchvision_arch_of(cfg) == name


SUPPORTED = ('resnet18, resnet34, resnet50, resnet101, resnet152, resnext50_32x4d, '
             'resnext101_32x8d, resnext101_64x4d')


@pytest.mark.parametrize('cfg, named', [
    (dict(depth=200), 'resnet200'),                                   # not a torchvision depth
    (dict(depth=50, groups=32, base_width=8), 'resnext50_32x8d'),     # not a torchvision width
    (dict(depth=50, deep_stem=True), "resnet50 ['deep_stem']"),       # our extras
    (dict(depth=50, avg_down=True, attention=dict(type='SE')),
     "resnet50 ['attention', 'avg_down']"),
])
def test_torchvision_arch_of_refuses_what_torchvision_lacks(cfg, named):
    with pytest.raises(ArchitectureMismatch) as info:
        torchvision_arch_of(cfg)
    assert info.value.args[0] == f'{named} is not a torchvision ResNet (supported: {SUPPORTED})'


def test_build_torchvision_model():
    model = build_torchvision_model('resnet18')
    assert isinstance(model, torchvision.models.ResNet) and not model.training
    assert model.fc.out_features == 1000
    assert build_torchvision_model('resnet34', num_classes=5).fc.out_features == 5
    assert len(model.layer1) == 2 and len(build_torchvision_model('resnet34').layer1) == 3
    with pytest.raises(ArchitectureMismatch) as info:
        build_torchvision_model('wide_resnet50_2')
    assert info.value.args[0] == ("unsupported torchvision arch 'wide_resnet50_2'; supported: "
                                  + SUPPORTED)


def test_source_model_holds_the_state(randomize):
    source = randomize(torchvision.models.resnet18(weights=None, num_classes=3))
    state = source.state_dict()
    model = source_model('resnet18', state)
    assert model.fc.out_features == 3 and not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    with pytest.raises(KeyError) as info:
        source_model('resnet18', {k: v for k, v in state.items() if not k.startswith('fc.')})
    assert info.value.args[0] == ('a torchvision ResNet checkpoint has fc.weight; this one '
                                  'does not')
    with pytest.raises(RuntimeError, match='Missing key'):
        source_model('resnet18', {k: v for k, v in state.items() if k != 'bn1.weight'})
