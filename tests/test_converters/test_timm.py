"""timm ResNet-family -> resvariants: same logits as timm's own model; other archs refused."""
import json

import pytest
import timm
import torch

from resvariants.converters.resnet_layout import (ArchitectureMismatch, forward_logits,
                                                  load_converted)
from resvariants.converters.timm import (IMAGENET_MEAN, IMAGENET_STD, convert_timm_state_dict,
                                        parse_timm_arch, read_hf_architecture,
                                        source_model, source_preprocessing)

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
    with pytest.raises(ArchitectureMismatch) as info:
        convert_timm_state_dict(state, 'resnet34')
    assert info.value.args[0] == ("the checkpoint is not a timm resnet34: (name, weights) "
                                  "differ in {'depth': (34, 18)}")
    with pytest.raises(ArchitectureMismatch) as info:
        convert_timm_state_dict(state, 'resnet18d.ra2_in1k')
    assert info.value.args[0] == ("the checkpoint is not a timm resnet18d.ra2_in1k: (name, "
                                  "weights) differ in {'deep_stem': (True, False), "
                                  "'avg_down': (True, False)}")
    state['layer1.0.foo.weight'] = state['fc.bias']
    with pytest.raises(KeyError) as info:
        convert_timm_state_dict(state, 'resnet18')
    assert info.value.args[0].startswith('1 timm resnet18 keys have no counterpart')


def test_depths_outside_the_trunk_are_refused():
    state = timm.create_model('resnet26', pretrained=False).state_dict()
    with pytest.raises(ArchitectureMismatch, match=r'\(2, 2, 2, 2\) blocks are not a depth'):
        convert_timm_state_dict(state, 'resnet26')


def test_tag_is_ignored_by_the_name_parser():
    assert parse_timm_arch('seresnext101d_32x8d.ah_in1k') == dict(
        depth=101, groups=32, base_width=8, deep_stem=True, stem_channels=64, avg_down=True,
        se=True)


@pytest.mark.parametrize('arch, expected', [
    ('resnet18', dict(depth=18, groups=1, base_width=None, deep_stem=False, stem_channels=64,
                      avg_down=False, se=False)),
    ('resnet50c', dict(depth=50, groups=1, base_width=None, deep_stem=True, stem_channels=64,
                       avg_down=False, se=False)),
    ('seresnet101s.tag', dict(depth=101, groups=1, base_width=None, deep_stem=True,
                              stem_channels=128, avg_down=False, se=True)),
    ('resnext152_64x4d', dict(depth=152, groups=64, base_width=4, deep_stem=False,
                              stem_channels=64, avg_down=False, se=False)),
    ('resnext50d_32x4d', dict(depth=50, groups=32, base_width=4, deep_stem=True,
                              stem_channels=64, avg_down=True, se=False)),
])
def test_name_parser(arch, expected):
    assert parse_timm_arch(arch) == expected


@pytest.mark.parametrize('arch, reasons', [
    ('resnext50', []),                 # a ResNeXt needs _{G}x{W}d
    ('resnet50_32x4d', []),            # a ResNet has no groups
    ('seresnet50t', ['tiered deep stem']),
    ('gcresnet50t', ['global-context attention of timm', 'tiered deep stem']),
    ('skresnet18', ["timm's SKNet"]),
    ('resnet50_clip', ['CLIP ResNets']),
    ('resnet50x', []),
])
def test_refusal_message(arch, reasons):
    with pytest.raises(ArchitectureMismatch) as info:
        parse_timm_arch(arch)
    message = str(info.value)
    head = f"timm arch {arch!r} has no exact counterpart in resvariants.ResNet"
    assert message.startswith(head + (': ' if reasons else '. Supported: '))
    assert message.endswith('Supported: (se)resnet{depth}[c|d|s] and (se)resnext{depth}'
                            '[c|d|s]_{G}x{W}d, depth 18/34/50/101/152')
    for reason in reasons:
        assert reason in message
    assert ('; ' in message) == (len(reasons) > 1)


def test_resnet_c_stem_converts_exactly(randomize, images):
    source = randomize(timm.create_model('resnet50c', pretrained=False))
    converted, backbone_cfg = convert_timm_state_dict(source.state_dict(), 'resnet50c')
    assert backbone_cfg == dict(type='resvariants.ResNet', depth=50, deep_stem=True)
    assert {k for k in converted if '.stem.' in k or k.startswith('backbone.stem')} >= {
        f'backbone.stem.{i}.weight' for i in (0, 1, 3, 4, 6, 7)}
    ours = load_converted(converted, backbone_cfg)
    with torch.no_grad():
        expected = source(images)
    assert (forward_logits(ours, images) - expected).abs().max().item() < 1e-4


def test_read_hf_architecture(tmp_path):
    weights = tmp_path / 'model.safetensors'
    assert read_hf_architecture(str(weights)) is None
    (tmp_path / 'config.json').write_text(json.dumps(dict(num_classes=1000)))
    assert read_hf_architecture(str(weights)) is None
    (tmp_path / 'config.json').write_text(json.dumps(dict(architecture='resnet50d')))
    assert read_hf_architecture(str(weights)) == 'resnet50d'


def test_source_preprocessing_of_a_pretrained_tag():
    assert source_preprocessing('resnet50') is None  # no tag, nothing recorded
    assert source_preprocessing('resnet50.a1_in1k') == dict(
        mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], input_size=[3, 224, 224],
        test_input_size=[3, 288, 288], crop_pct=0.95, interpolation='bicubic')
    # a tag without a separate test size falls back to the train size
    assert source_preprocessing('resnet18.tv_in1k')['test_input_size'] == [3, 224, 224]


def test_imagenet_constants_are_timms():
    assert IMAGENET_MEAN == timm.data.IMAGENET_DEFAULT_MEAN
    assert IMAGENET_STD == timm.data.IMAGENET_DEFAULT_STD


def test_source_model(randomize):
    source = randomize(timm.create_model('resnet18', pretrained=False, num_classes=5))
    state = source.state_dict()
    model = source_model('resnet18', state)
    assert not model.training and model.num_classes == 5
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    headless = {k: v for k, v in state.items() if not k.startswith('fc.')}
    assert source_model('resnet18', headless).num_classes == 0


SUPPORTED_TAIL = ('. Supported: (se)resnet{depth}[c|d|s] and (se)resnext{depth}[c|d|s]_{G}x{W}d, '
                  'depth 18/34/50/101/152')


@pytest.mark.parametrize('arch, reasons', [
    ('resnetaa50', 'anti-aliased downsampling (an average pool after the strided 3x3)'),
    ('resnetblur50', 'blur-pool anti-aliasing'),
    ('resnetrs50', 'ResNet-RS (SE with different widths, deep stem variant, no max-pool)'),
    ('resnet50_gn', 'GroupNorm instead of BatchNorm'),
    ('ecaresnet50', 'ECA attention'),
    ('gcresnet50', 'global-context attention of timm'),
    ('skresnet34', "timm's SKNet (split-input selective kernel), not PytorchInsight's SK*"),
    ('wide_resnet101', 'wide ResNet bottlenecks'),
    ('resnet26ts', 'timm "ts" ByobNet-style ResNets; a tiered deep stem (3->24->32->64), which '
                   'our trunk does not build'),
    ('resnet50_clip', 'CLIP ResNets (attention pooling, anti-aliased stem)'),
    ('seresnext26t_32x4d', 'a tiered deep stem (3->24->32->64), which our trunk does not build'),
])
def test_every_refusal_reason_in_full(arch, reasons):
    with pytest.raises(ArchitectureMismatch) as info:
        parse_timm_arch(arch + '.some_tag')
    assert info.value.args[0] == (f'timm arch {arch!r} has no exact counterpart in '
                                  f'resvariants.ResNet: {reasons}' + SUPPORTED_TAIL)


def test_signature_stem_follows_base_channels():
    from resvariants.converters.timm import _backbone_signature
    assert _backbone_signature(dict(depth=18, base_channels=32))['stem_channels'] == 32
    assert _backbone_signature(dict(depth=18))['stem_channels'] == 64
    assert _backbone_signature(dict(depth=18, base_channels=32, stem_channels=16))[
        'stem_channels'] == 16
