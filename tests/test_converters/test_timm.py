"""timm ResNet-family -> resvariants: same logits as timm's own model; other archs refused."""
import pytest
import timm
import torch

from resvariants.converters.resnet_layout import (ArchitectureMismatch, forward_logits,
                                                  load_converted)
from resvariants.converters.timm import convert_timm_state_dict, parse_timm_arch

EXPECTED_BACKBONE = {
    'resnet18': dict(depth=18),
    'seresnet18': dict(depth=18, attention=dict(type='SEModule', ratio=16, divisor=8)),
    'resnet50d': dict(depth=50, deep_stem=True, avg_down=True),
    'resnet50s': dict(depth=50, deep_stem=True, stem_channels=128),
    'resnext50_32x4d': dict(depth=50, groups=32, base_width=4),
    'seresnext50_32x4d': dict(depth=50, groups=32, base_width=4,
                              attention=dict(type='SEModule', ratio=16, divisor=1)),
}


@pytest.mark.parametrize('arch', sorted(EXPECTED_BACKBONE))
def test_converted_timm_model_gives_same_logits(arch, randomize, images):
    source = randomize(timm.create_model(arch, pretrained=False))
    converted, backbone_cfg = convert_timm_state_dict(source.state_dict(), arch)
    assert backbone_cfg == dict(type='resvariants.ResNet', **EXPECTED_BACKBONE[arch])
    ours = load_converted(converted, backbone_cfg)
    with torch.no_grad():
        expected = source(images)
    assert (forward_logits(ours, images) - expected).abs().max().item() < 1e-4


def test_se_squeeze_rounding_of_timm_is_kept():
    # timm rounds C/16 up to a multiple of 8: 64 channels squeeze to 8, not 4
    state = timm.create_model('seresnet18', pretrained=False).state_dict()
    assert state['layer1.0.se.fc1.weight'].shape[0] == 8
    converted, _ = convert_timm_state_dict(state, 'seresnet18')
    assert converted['backbone.layer1.0.se_layer.conv1.conv.weight'].shape == (8, 64, 1, 1)


@pytest.mark.parametrize('arch,reason', [
    ('resnet50t', 'tiered deep stem'),
    ('resnetaa50d', 'anti-aliased'),
    ('seresnextaa101d_32x8d.ah_in1k', 'anti-aliased'),
    ('resnetblur50', 'blur'),
    ('ecaresnet50d', 'ECA'),
    ('resnetrs101', 'ResNet-RS'),
    ('wide_resnet50_2', 'wide'),
    ('resnet50_gn', 'GroupNorm'),
])
def test_unsupported_timm_archs_are_refused_with_the_reason(arch, reason):
    with pytest.raises(ArchitectureMismatch, match=reason):
        parse_timm_arch(arch)


def test_name_and_weights_must_agree():
    state = timm.create_model('resnet18', pretrained=False).state_dict()
    with pytest.raises(ArchitectureMismatch, match='not a timm resnet34'):
        convert_timm_state_dict(state, 'resnet34')
    with pytest.raises(ArchitectureMismatch, match='deep_stem'):
        convert_timm_state_dict(state, 'resnet18d.ra2_in1k')


def test_depths_outside_the_trunk_are_refused():
    state = timm.create_model('resnet26', pretrained=False).state_dict()
    with pytest.raises(ArchitectureMismatch, match=r'\(2, 2, 2, 2\) blocks are not a depth'):
        convert_timm_state_dict(state, 'resnet26')


def test_tag_is_ignored_by_the_name_parser():
    assert parse_timm_arch('seresnext101d_32x8d.ah_in1k') == dict(
        depth=101, groups=32, base_width=8, deep_stem=True, stem_channels=64, avg_down=True,
        se=True)
