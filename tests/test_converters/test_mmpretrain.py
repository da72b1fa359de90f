"""mmpretrain ResNet-family -> resvariants: same logits as mmpretrain's own classifier."""
import pytest
import torch
from mmengine.registry import DefaultScope
from mmpretrain.models import ImageClassifier

from resvariants.converters.mmpretrain import (convert_mmpretrain_state_dict,
                                               mmpretrain_backbone_cfg, source_model)
from resvariants.converters.resnet_layout import (ArchitectureMismatch, forward_logits,
                                                  load_converted)

SE = dict(type='SEModule', ratio=16, divisor=1)
CASES = {  # mmpretrain backbone -> our backbone arguments
    'ResNet-18': (dict(type='ResNet', depth=18), dict(depth=18)),
    'ResNetV1c-50': (dict(type='ResNetV1c', depth=50), dict(depth=50, deep_stem=True)),
    'ResNetV1d-50': (dict(type='ResNetV1d', depth=50),
                     dict(depth=50, deep_stem=True, avg_down=True)),
    'ResNeXt-50': (dict(type='ResNeXt', depth=50, groups=32, width_per_group=4),
                   dict(depth=50, groups=32, base_width=4)),
    'SEResNet-50': (dict(type='SEResNet', depth=50), dict(depth=50, attention=SE)),
    'SEResNeXt-50': (dict(type='SEResNeXt', depth=50, groups=32, width_per_group=4),
                     dict(depth=50, groups=32, base_width=4, attention=SE)),
}


def mmpretrain_classifier(backbone, num_classes=1000):
    channels = 512 if backbone['depth'] < 50 else 2048
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return ImageClassifier(backbone=backbone, neck=dict(type='GlobalAveragePooling'),
                               head=dict(type='LinearClsHead', num_classes=num_classes,
                                         in_channels=channels))


@pytest.mark.parametrize('case', sorted(CASES))
def test_converted_mmpretrain_model_gives_same_logits(case, randomize, images):
    backbone, expected_cfg = CASES[case]
    source = randomize(mmpretrain_classifier(backbone))
    converted, backbone_cfg = convert_mmpretrain_state_dict(source.state_dict())
    assert backbone_cfg == dict(type='resvariants.ResNet', **expected_cfg)
    ours = load_converted(converted, backbone_cfg)
    expected = forward_logits(source, images)
    assert (forward_logits(ours, images) - expected).abs().max().item() < 1e-4


def test_v1d_layouts_are_renamed():
    source = mmpretrain_classifier(dict(type='ResNetV1d', depth=50))
    converted, _ = convert_mmpretrain_state_dict(source.state_dict())
    state = source.state_dict()
    pairs = [('backbone.stem.1.conv.weight', 'backbone.stem.3.weight'),
             ('backbone.stem.2.bn.running_var', 'backbone.stem.7.running_var'),
             ('backbone.layer1.0.downsample.0.weight', 'backbone.layer1.0.downsample.1.weight'),
             ('backbone.layer2.0.downsample.1.weight', 'backbone.layer2.0.downsample.1.weight')]
    for old, new in pairs:
        assert torch.equal(state[old], converted[new]), (old, new)


def test_backbone_only_checkpoint(randomize, images):
    source = randomize(mmpretrain_classifier(dict(type='ResNet', depth=18), num_classes=10))
    converted, cfg = convert_mmpretrain_state_dict(source.state_dict(), backbone_only=True)
    assert not any(k.startswith('head.') for k in converted)
    ours = load_converted(converted, cfg)
    expected = source.backbone(images)[-1]
    assert (forward_logits(ours, images) - expected).abs().max().item() < 1e-4


def test_cifar_stem_and_other_heads_are_refused():
    from mmpretrain.models import ResNet_CIFAR
    state = {f'backbone.{k}': v for k, v in ResNet_CIFAR(depth=18).state_dict().items()}
    with pytest.raises(ArchitectureMismatch, match='CIFAR'):
        convert_mmpretrain_state_dict(state)
    state = mmpretrain_classifier(dict(type='ResNet', depth=18)).state_dict()
    state['head.layers.pre_logits.weight'] = torch.zeros(1)
    with pytest.raises(KeyError, match='head.layers.pre_logits.weight'):
        convert_mmpretrain_state_dict(state)


def test_bare_backbone_state_dict_gets_the_prefix(randomize, images):
    """A backbone saved on its own (no ``backbone.`` prefix) converts to a backbone file."""
    from mmpretrain.models import ResNet as MMPretrainResNet
    source = MMPretrainResNet(depth=18)
    randomize(source)  # (mmpretrain's ResNet.eval() returns None)
    converted, cfg = convert_mmpretrain_state_dict(source.state_dict())
    assert cfg == dict(type='resvariants.ResNet', depth=18)
    assert converted and all(k.startswith('backbone.') for k in converted)
    ours = load_converted(converted, cfg)
    with torch.no_grad():
        expected = source(images)[-1]
    assert (forward_logits(ours, images) - expected).abs().max().item() < 1e-4


def test_backbone_only_drops_neck_and_head():
    state = mmpretrain_classifier(dict(type='ResNet', depth=18)).state_dict()
    state['neck.scale'] = torch.ones(1)
    state['head.layers.pre_logits.weight'] = torch.zeros(1)
    converted, _ = convert_mmpretrain_state_dict(state, backbone_only=True)
    assert all(k.startswith('backbone.') for k in converted)
    assert len(converted) == sum(k.startswith('backbone.') for k in state)


@pytest.mark.parametrize('ours, theirs', [
    (dict(depth=18), dict(type='ResNet', depth=18)),
    (dict(depth=50, deep_stem=True, avg_down=True),
     dict(type='ResNet', depth=50, deep_stem=True, avg_down=True)),
    (dict(depth=50, groups=32, base_width=4),
     dict(type='ResNeXt', depth=50, groups=32, width_per_group=4)),
    (dict(depth=101, attention=dict(type='SEModule', ratio=8, divisor=1)),
     dict(type='SEResNet', depth=101, se_ratio=8)),
    (dict(depth=50, groups=64, base_width=4, attention=SE, stem_channels=32),
     dict(type='SEResNeXt', depth=50, groups=64, width_per_group=4, se_ratio=16,
          stem_channels=32)),
    (dict(depth=18, base_channels=32, stem_channels=32),
     dict(type='ResNet', depth=18, base_channels=32, stem_channels=32)),
    (dict(depth=18, base_channels=32),  # our stem is base_channels wide, mmpretrain's 64
     dict(type='ResNet', depth=18, base_channels=32, stem_channels=32)),
    (dict(depth=50, groups=2, base_width=64),
     dict(type='ResNeXt', depth=50, groups=2, width_per_group=64)),
])
def test_mmpretrain_backbone_cfg(ours, theirs):
    assert mmpretrain_backbone_cfg(dict(type='resvariants.ResNet', **ours)) == theirs


@pytest.mark.parametrize('case', ['ResNet-18', 'SEResNet-50', 'ResNetV1d-50'])
def test_source_model_is_mmpretrains_own(case, randomize, images):
    backbone, _ = CASES[case]
    source = randomize(mmpretrain_classifier(backbone, num_classes=7))
    state = source.state_dict()
    _, backbone_cfg = convert_mmpretrain_state_dict(state)
    model = source_model(backbone_cfg, state)
    assert isinstance(model, ImageClassifier) and not model.training
    assert model.head.fc.out_features == 7
    assert type(model.backbone).__name__ == dict(ResNetV1d='ResNet').get(
        backbone['type'], backbone['type'])
    torch.testing.assert_close(forward_logits(model, images), forward_logits(source, images))
    # without a head: mmpretrain's bare backbone, out_indices=(3, ), keys without the prefix
    headless = {k: v for k, v in state.items() if k.startswith('backbone.')}
    bare = source_model(backbone_cfg, headless)
    assert not isinstance(bare, ImageClassifier) and not bare.training
    assert bare.out_indices == [3] or tuple(bare.out_indices) == (3, )
    with torch.no_grad():
        torch.testing.assert_close(bare(images)[-1], source.backbone(images)[-1])
        assert len(bare(images)) == 1


def test_bare_backbone_with_its_head_keeps_the_head_keys(randomize):
    source = mmpretrain_classifier(dict(type='ResNet', depth=18), num_classes=4)
    state = {k[len('backbone.'):] if k.startswith('backbone.') else k: v
             for k, v in source.state_dict().items()}
    converted, _ = convert_mmpretrain_state_dict(state)
    assert 'head.fc.weight' in converted and 'backbone.head.fc.weight' not in converted
    assert torch.equal(converted['head.fc.weight'], source.head.fc.weight)


def test_unknown_keys_are_counted_as_mmpretrain_keys():
    state = mmpretrain_classifier(dict(type='ResNet', depth=18)).state_dict()
    state['head.layers.pre_logits.weight'] = torch.zeros(1)
    with pytest.raises(KeyError) as info:
        convert_mmpretrain_state_dict(state)
    assert info.value.args[0] == ('1 mmpretrain keys have no counterpart in resvariants.ResNet '
                                  '(a different architecture?): head.layers.pre_logits.weight')


def test_source_model_of_a_narrow_net_and_its_refusals(randomize, images):
    backbone = dict(type='ResNet', depth=18, base_channels=32, stem_channels=32)  # as ours
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        source = ImageClassifier(backbone=backbone, neck=dict(type='GlobalAveragePooling'),
                                 head=dict(type='LinearClsHead', num_classes=3,
                                           in_channels=256))
    randomize(source)
    state = source.state_dict()
    _, backbone_cfg = convert_mmpretrain_state_dict(state)
    model = source_model(backbone_cfg, state)
    assert model.head.fc.in_features == 256
    torch.testing.assert_close(forward_logits(model, images), forward_logits(source, images))
    headless = {k: v for k, v in state.items() if not k.startswith('head.')}
    headless['neck.unused'] = torch.zeros(1)  # neck / head keys of a backbone-only file
    headless['head.layers.unused'] = torch.zeros(1)
    assert not source_model(backbone_cfg, headless).training
    del state['backbone.conv1.weight']
    with pytest.raises(RuntimeError, match='conv1.weight'):
        source_model(backbone_cfg, state)
