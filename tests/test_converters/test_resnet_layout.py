"""The layout helpers every public-weights converter shares (converters/resnet_layout.py):
reading checkpoints, splitting and prefixing, inferring the backbone arguments from keys and
shapes, every refusal. Found by mutation testing (docs/testing.md)."""
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn

from resvariants.converters import resnet_layout as rl
from resvariants.utils.safe_load import state_dict_of, strip_prefix
from resvariants.models import ResNet


def _keys(**kwargs):
    return ResNet(**kwargs).state_dict()


def test_strip_prefix():
    state = OrderedDict([('module.a', 1), ('b', 2), ('x.module.c', 3)])
    assert strip_prefix(state) == OrderedDict([('a', 1), ('b', 2), ('x.module.c', 3)])
    assert list(strip_prefix({'backbone.a': 1}, 'backbone.')) == ['a']


@pytest.mark.parametrize('checkpoint', [
    {'module.w': torch.ones(1)},
    {'state_dict': {'module.w': torch.ones(1)}, 'epoch': 3},
    {'model': {'w': torch.ones(1)}, 'optimizer': {}},
    {'state_dict': {'w': torch.ones(1)}, 'model': {'other': torch.ones(1)}},  # state_dict first
    {'w': torch.ones(1), 'epoch': 3, 'meta': {}},  # non-tensors dropped
])
def test_state_dict_of(checkpoint):
    assert list(state_dict_of(checkpoint)) == ['w']


@pytest.mark.parametrize('checkpoint, message', [
    ({}, r'^ckpt.pth holds no state dict \(got dict\)$'),
    ([1], r'^ckpt.pth holds no state dict \(got list\)$'),
    ({'epoch': 3, 'acc': 0.5}, r"^ckpt.pth holds no tensors; top-level keys: \['acc', 'epoch'\]$"),
])
def test_state_dict_of_refusals(checkpoint, message):
    import re
    with pytest.raises(KeyError) as info:
        state_dict_of(checkpoint, source='ckpt.pth')
    assert re.match(message, info.value.args[0])


def test_read_checkpoint_torch_and_safetensors(tmp_path):
    from safetensors.torch import save_file
    torch.save({'state_dict': {'module.w': torch.arange(3.)}}, tmp_path / 'a.pth')
    assert torch.equal(rl.read_checkpoint(str(tmp_path / 'a.pth'))['w'], torch.arange(3.))
    save_file({'module.w': torch.arange(2.)}, str(tmp_path / 'b.safetensors'))
    state = rl.read_checkpoint(str(tmp_path / 'b.safetensors'))
    assert list(state) == ['w'] and torch.equal(state['w'], torch.arange(2.))
    missing = str(tmp_path / 'none.safetensors')
    with pytest.raises(FileNotFoundError, match=f'^checkpoint file not found: {missing}$'):
        rl.read_checkpoint(missing)


def test_split_and_prefix():
    state = OrderedDict([('backbone.a', 1), ('head.fc.weight', 2), ('backbone.b', 3)])
    backbone, head = rl.split_classifier_state(state)
    assert backbone == OrderedDict([('a', 1), ('b', 3)])
    assert head == OrderedDict([('head.fc.weight', 2)])


def test_complete_bn_counters():
    state = OrderedDict([('bn.running_mean', torch.zeros(2)), ('bn.running_var', torch.ones(2)),
                         ('bn2.running_mean', torch.zeros(2)),
                         ('bn2.num_batches_tracked', torch.tensor(7))])
    out = rl.complete_bn_counters(state)
    assert list(out) == ['bn.running_mean', 'bn.num_batches_tracked', 'bn.running_var',
                         'bn2.running_mean', 'bn2.num_batches_tracked']
    assert out['bn.num_batches_tracked'].dtype == torch.long
    assert out['bn.num_batches_tracked'] == 0 and out['bn2.num_batches_tracked'] == 7


def test_rename_or_fail():
    import re
    rules = [(re.compile(r'^a\.(\w+)$'), r'x.\1'), (re.compile(r'^drop\.'), None),
             (re.compile(r'^a\.'), r'never')]
    state = OrderedDict([('a.w', 1), ('drop.me', 2)])
    assert rl.rename_or_fail(state, rules, 'src') == OrderedDict([('x.w', 1)])
    unknown = OrderedDict((f'k{i:02d}', i) for i in range(24))
    with pytest.raises(KeyError) as info:
        rl.rename_or_fail(unknown, rules, 'src')
    assert info.value.args[0] == (
        '24 src keys have no counterpart in resvariants.ResNet (a different architecture?): '
        + ', '.join(f'k{i:02d}' for i in range(20)) + ' ...')
    with pytest.raises(KeyError) as info:
        rl.rename_or_fail({'b': 1}, rules, 'src')
    assert info.value.args[0].endswith('(a different architecture?): b')
    for count, tail in ((20, 'k19'), (21, 'k19 ...')):  # ' ...' only when some are not named
        with pytest.raises(KeyError) as info:
            rl.rename_or_fail(OrderedDict(list(unknown.items())[:count]), rules, 'src')
        assert info.value.args[0].endswith(f'k18, {tail}')


def test_rename_rule_transforms_the_value():
    import re
    rules = [(re.compile(r'^fc\.(weight|bias)$'), r'se.\1', rl.linear_as_conv1x1)]
    state = OrderedDict([('fc.weight', torch.ones(3, 2)), ('fc.bias', torch.ones(3))])
    out = rl.rename_or_fail(state, rules, 'src')
    assert out['se.weight'].shape == (3, 2, 1, 1) and out['se.bias'].shape == (3, )
    assert torch.equal(out['se.weight'][:, :, 0, 0], state['fc.weight'])


@pytest.mark.parametrize('kwargs, expected', [
    (dict(depth=18), dict(depth=18)),
    (dict(depth=34), dict(depth=34)),
    (dict(depth=152), dict(depth=152)),
    (dict(depth=50, deep_stem=True), dict(depth=50, deep_stem=True)),
    (dict(depth=50, deep_stem=True, stem_channels=128),
     dict(depth=50, deep_stem=True, stem_channels=128)),
    (dict(depth=50, avg_down=True), dict(depth=50, avg_down=True)),
    (dict(depth=18, base_channels=32), dict(depth=18, base_channels=32)),
    (dict(depth=50, base_channels=32, stem_channels=32), dict(depth=50, base_channels=32)),
    (dict(depth=50, base_channels=32, stem_channels=64),
     dict(depth=50, base_channels=32, stem_channels=64)),
    (dict(depth=101, groups=64, base_width=4), dict(depth=101, groups=64, base_width=4)),
    (dict(depth=50, groups=2, base_width=32), dict(depth=50, groups=2, base_width=32)),
])
def test_infer_backbone_cfg(kwargs, expected):
    cfg = rl.infer_backbone_cfg(_keys(**kwargs))
    assert cfg == dict(type='resvariants.ResNet', **expected)
    # integer counts, as the trunk's arguments are (16.0 == 16 would pass the comparison)
    assert all(type(v) is int for k, v in cfg.items() if k in ('groups', 'base_width'))


@pytest.mark.parametrize('kwargs', [
    dict(depth=50, attention=dict(type='SEModule', ratio=16, divisor=1)),
    dict(depth=18, attention=dict(type='SEModule', ratio=16, divisor=8)),
    dict(depth=50, attention=dict(type='SEModule', ratio=8, divisor=1)),
])
def test_infer_se(kwargs):
    assert rl.infer_backbone_cfg(_keys(**kwargs)) == dict(type='resvariants.ResNet', **kwargs)


def test_infer_ed_resnet():
    from resvariants.models import EDResNet
    cfg = rl.infer_backbone_cfg(EDResNet(depth=50).state_dict())
    assert cfg == dict(type='resvariants.EDResNet', depth=50)
    narrow = rl.infer_backbone_cfg(EDResNet(depth=50, branch_ratio=0.5).state_dict())
    assert narrow == dict(type='resvariants.EDResNet', depth=50, branch_ratio=0.5)
    grouped = rl.infer_backbone_cfg(EDResNet(depth=50, ed_groups=16).state_dict())
    assert grouped == dict(type='resvariants.EDResNet', depth=50, ed_groups=16)
    assert type(grouped['ed_groups']) is int


def test_refused_layouts():
    state = _keys(depth=18)
    del state['layer2.1.conv1.weight'], state['layer2.1.bn1.weight']
    state = {k.replace('layer2.1.', 'layer2.2.'): v for k, v in state.items()}
    with pytest.raises(rl.ArchitectureMismatch, match=r'^layer2 block indices are not '
                                                      r'contiguous: \[0, 2\]$'):
        rl.infer_backbone_cfg(state)
    basic = {k: v for k, v in _keys(depth=18).items() if not k.startswith('layer1.1.')}
    with pytest.raises(rl.ArchitectureMismatch) as info:
        rl.infer_backbone_cfg(basic)
    assert info.value.args[0] == ('basic-block stages with (1, 2, 2, 2) blocks are not a depth '
                                  'of our trunk (its basic depths, blocks per stage: 18: '
                                  '(2, 2, 2, 2), 34: (3, 4, 6, 3))')
    bottleneck = {k: v for k, v in _keys(depth=50).items() if not k.startswith('layer4.2.')}
    with pytest.raises(rl.ArchitectureMismatch, match=r'^bottleneck-block stages with \(3, 4, '
                                                      r'6, 2\) blocks .*50: \(3, 4, 6, 3\), '
                                                      r'101: \(3, 4, 23, 3\), 152'):
        rl.infer_backbone_cfg(bottleneck)


def _with_stem(**shapes):
    state = {k: v for k, v in _keys(depth=18).items()
             if not k.startswith(('conv1.', 'bn1.'))}
    state.update({k: torch.zeros(s) for k, s in shapes.items()})
    return state


@pytest.mark.parametrize('shapes, message', [
    (dict(), r'^no stem found \(neither conv1.weight nor stem.0.weight\)$'),
    ({'conv1.weight': (64, 3, 3, 3)},
     r"^stem conv of shape \(64, 3, 3, 3\): our trunk's stem is a 7x7 stride-2 conv on 3 "
     r"channels \(\+ max-pool\); a 3x3 stem is the CIFAR ResNet, not supported$"),
    ({'conv1.weight': (64, 4, 7, 7)}, r'^stem conv of shape \(64, 4, 7, 7\)'),
    ({'stem.0.weight': (32, 3, 3, 3), 'stem.3.weight': (32, 32, 3, 3)},
     r'^deep stem with convs \[\(32, 3, 3, 3\), \(32, 32, 3, 3\)\]: our deep stem is three '
     r'3x3 convs$'),
    ({'stem.0.weight': (32, 3, 3, 3), 'stem.3.weight': (32, 32, 5, 5),
      'stem.6.weight': (64, 32, 3, 3)}, r'^deep stem with convs'),
    ({'stem.0.weight': (24, 3, 3, 3), 'stem.3.weight': (32, 24, 3, 3),
      'stem.6.weight': (64, 32, 3, 3)},
     r"^deep stem widths 3->24->32->64: our trunk's deep stem \(ResNet-C/D\) is "
     r"3->c/2->c/2->c; tiered stems such as timm's \"t\" variants \(3->24->32->64\) are not "
     r"supported$"),
    ({'stem.0.weight': (32, 3, 3, 3), 'stem.3.weight': (32, 32, 3, 3),
      'stem.6.weight': (48, 32, 3, 3)}, r'^deep stem widths 3->32->32->48'),
    ({'stem.0.weight': (32, 4, 3, 3), 'stem.3.weight': (32, 32, 3, 3),
      'stem.6.weight': (64, 32, 3, 3)}, r'^deep stem widths'),
    ({'stem.0.weight': (32, 3, 3, 3), 'stem.3.weight': (32, 16, 3, 3),
      'stem.6.weight': (64, 32, 3, 3)}, r'^deep stem widths'),
    ({'stem.0.weight': (32, 3, 3, 3), 'stem.3.weight': (32, 32, 3, 3),
      'stem.6.weight': (64, 16, 3, 3)}, r'^deep stem widths'),
])
def test_stem_refusals(shapes, message):
    with pytest.raises(rl.ArchitectureMismatch, match=message):
        rl._infer_stem(_with_stem(**shapes))


def test_wide_and_oddly_grouped_bottlenecks_are_refused():
    wide = _keys(depth=50)
    wide['layer1.0.conv2.weight'] = torch.zeros(128, 128, 3, 3)
    with pytest.raises(rl.ArchitectureMismatch, match=r'^bottleneck width 128 with groups=1 for '
                                                      r'64 planes: a wide ResNet'):
        rl.infer_backbone_cfg(wide)


def test_se_widths_that_follow_no_rule_are_refused():
    state = _keys(depth=50, attention=dict(type='SEModule', ratio=16))
    state['layer1.0.se_layer.conv1.conv.weight'] = torch.zeros(5, 256, 1, 1)
    with pytest.raises(rl.ArchitectureMismatch, match=r'^SE squeeze widths \(hidden, channels\) '
                                                      r'\[.*\(5, 256\).*\] follow neither C//16 '
                                                      r'nor its rounding to multiples of 8$'):
        rl.infer_backbone_cfg(state)


def test_build_helpers():
    backbone = rl.build_backbone(dict(type='resvariants.ResNet', depth=18))
    assert isinstance(backbone, ResNet) and not backbone.training
    assert backbone.out_indices == (3, ) and backbone.frozen_stages == -1
    assert not backbone.norm_eval
    assert rl.build_backbone(dict(type='ResNet', depth=18), out_indices=(0, 1)).out_indices == \
        (0, 1)
    classifier = rl.build_classifier(dict(type='resvariants.ResNet', depth=50), 7)
    assert not classifier.training and classifier.head.fc.out_features == 7
    assert classifier.head.fc.in_features == 2048
    small = rl.build_classifier(dict(type='resvariants.ResNet', depth=18, base_channels=32), 3)
    assert small.head.fc.in_features == 256
    state = {f'backbone.{k}': v for k, v in ResNet(depth=18).state_dict().items()}
    assert isinstance(rl.build_target_model(state, dict(type='resvariants.ResNet', depth=18)),
                      ResNet)


def test_load_converted_checks_keys_and_shapes():
    source = ResNet(depth=18, base_channels=16)
    state = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    cfg = dict(type='resvariants.ResNet', depth=18, base_channels=16)
    model = rl.load_converted(state, cfg)
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    del state['backbone.conv1.weight']
    with pytest.raises(KeyError, match='conv1.weight'):
        rl.load_converted(state, cfg)


def test_forward_logits_of_each_kind():
    x = torch.randn(2, 3, 32, 32)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 4)).train()
    torch.testing.assert_close(rl.forward_logits(lin, x), lin(x))
    backbone = rl.build_backbone(dict(type='resvariants.ResNet', depth=18), out_indices=(2, 3))
    out = rl.forward_logits(backbone, x)
    assert out.shape == (2, 512, 1, 1) and not out.requires_grad
    classifier = rl.build_classifier(dict(type='resvariants.ResNet', depth=18), 5)
    assert rl.forward_logits(classifier, x).shape == (2, 5)


def test_save_converted(tmp_path):
    from resvariants.utils.safe_load import load_checkpoint_safely
    path = str(tmp_path / 'out.pth')
    assert rl.save_converted({'w': torch.ones(2)}, path, meta=dict(a=1)) == path
    loaded = load_checkpoint_safely(path)
    assert loaded['meta'] == dict(a=1) and torch.equal(loaded['state_dict']['w'], torch.ones(2))


def test_refusal_labels_and_cuts():
    with pytest.raises(KeyError) as info:
        state_dict_of([1])  # the default label
    assert info.value.args[0] == 'checkpoint holds no state dict (got list)'
    meta = {f'k{i:02d}': i for i in range(12)}
    with pytest.raises(KeyError) as info:
        state_dict_of(meta, source='c.pth')
    assert info.value.args[0] == ('c.pth holds no tensors; top-level keys: '
                                  + str([f'k{i:02d}' for i in range(10)]))


def test_block_counts_stop_at_the_first_missing_stage():
    """A trunk without layer3 has two stages (layer4 after the gap is not counted)."""
    state = {k: v for k, v in _keys(depth=18).items() if not k.startswith('layer3.')}
    with pytest.raises(rl.ArchitectureMismatch) as info:
        rl.infer_backbone_cfg(state)
    assert info.value.args[0].startswith('basic-block stages with (2, 2) blocks are not a '
                                         'depth of our trunk')
