"""mmpretrain ResNet-family -> resvariants: same logits as mmpretrain's own classifier."""
import pytest
import torch
from mmengine.registry import DefaultScope
from mmpretrain.models import ImageClassifier

from resvariants.converters.mmpretrain import convert_mmpretrain_state_dict
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
