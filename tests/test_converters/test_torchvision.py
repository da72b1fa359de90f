"""torchvision ResNet / ResNeXt -> resvariants: same logits as torchvision's own model."""
import pytest
import torch
import torchvision

from resvariants.converters.resnet_layout import (ArchitectureMismatch, forward_logits,
                                                  load_converted)
from resvariants.converters.torchvision import (convert_torchvision_state_dict,
                                                infer_torchvision_arch)

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
