"""The attention factory (attention/factory.py): name resolution, defaults, the SK hint, plugin
checks and their messages. Found by mutation testing (docs/testing.md)."""
import pytest
from mmengine.registry import DefaultScope

from resvariants.models.attention import factory
from resvariants.models.attention import (attention_aliases, attention_names,
                                          attention_placement, attention_types,
                                          build_attention, check_plugin_cfgs,
                                          normalize_attention_cfg)

VALID = ('BAM, CBAM, GCBlock, SEModule, SGE, SRM, bam, cbam, contextblock, gc, se, sge, srm')


def test_aliases_and_names():
    assert attention_aliases() == {'se': 'SEModule', 'cbam': 'CBAM', 'bam': 'BAM',
                                 'gc': 'GCBlock', 'contextblock': 'GCBlock', 'sge': 'SGE',
                                 'srm': 'SRM'}
    assert ', '.join(attention_names()) == VALID
    assert {n: attention_placement(n) for n in attention_types()} == {
        'BAM': 'stage', 'CBAM': 'block', 'GCBlock': 'block', 'SEModule': 'block', 'SGE': 'block',
        'SKFusion': 'branches', 'SRM': 'block'}
    assert attention_placement('NonLocal2d') == 'block'  # mmcv's plugins go into blocks
    assert set(attention_types()) == {'BAM', 'CBAM', 'GCBlock', 'SEModule', 'SGE',
                                      'SKFusion', 'SRM'}


@pytest.mark.parametrize('given, expected', [
    (None, None),
    ('se', dict(type='SEModule')),
    ('SE', dict(type='SEModule')),
    ('Sge', dict(type='SGE')),
    ('resvariants.SGE', dict(type='SGE')),
    ('SRM', dict(type='SRM')),
    (dict(type='cbam', ratio=8), dict(type='CBAM', ratio=8)),
    ('gc', dict(type='GCBlock', ratio=1 / 16)),
    (dict(type='ContextBlock'), dict(type='GCBlock', ratio=1 / 16)),  # mmcv's name: ours
    (dict(type='contextblock', ratio=0.25), dict(type='GCBlock', ratio=0.25)),
    ('NonLocal2d', dict(type='NonLocal2d')),  # mmcv's, found in the root registry
])
def test_normalize_attention_cfg(given, expected):
    assert normalize_attention_cfg(given) == expected


def test_normalize_does_not_change_its_argument():
    cfg = dict(type='gc', nested=dict(a=1))
    out = normalize_attention_cfg(cfg)
    assert cfg == dict(type='gc', nested=dict(a=1))
    out['nested']['a'] = 2
    assert cfg['nested']['a'] == 1


@pytest.mark.parametrize('given, message', [
    (3, r'^attention must be a name or a dict with "type", got 3$'),
    (dict(ratio=4), r'''^attention must be a name or a dict with "type", got \{'ratio': 4\}$'''),
    (dict(type=7), r'^attention type must be a string, got 7$'),
])
def test_malformed_attention_cfg(given, message):
    with pytest.raises(TypeError, match=message):
        normalize_attention_cfg(given)


@pytest.mark.parametrize('name', ['sk', 'SK', 'sknet', 'SKFusion', 'selective_kernel',
                                  'SelectiveKernel', 'resvariants.SKFusion'])
def test_sk_names_point_to_the_sk_argument(name):
    with pytest.raises(KeyError) as info:
        normalize_attention_cfg(name)
    message = info.value.args[0]
    assert message == (
        f'attention={name!r}: SK (selective kernel) is not an attention module that goes '
        f'after a block; it replaces the bottleneck 3x3 conv. Use sk=dict(groups=32, '
        f'ratio=16) on resvariants.ResNet (depth 50/101/152) instead of attention=. Valid '
        f'attention names: {VALID}')


def test_unknown_attention_message():
    with pytest.raises(KeyError) as info:
        normalize_attention_cfg('sgee')
    assert info.value.args[0] == (f"unknown attention 'sgee'; valid names: {VALID} (SK is "
                                  f"sk=dict(groups=32, ratio=16), not an attention= name)")


def test_build_attention():
    assert build_attention(None, 64) is None
    module = build_attention(dict(type='se', postfix='_after_conv3', ratio=8), 64)
    assert type(module) is attention_types()['SEModule'] and module.in_channels == 64
    assert module.conv1.conv.out_channels == 8
    gc = build_attention('gc', 64)
    assert gc.channel_add_conv[0].out_channels == 4  # the 1/16 default was filled in


def test_find_plugin_type():
    assert factory.find_plugin_type(factory) is factory  # a class (not a name) is returned
    assert factory.find_plugin_type('SGE') is attention_types()['SGE']
    assert factory.find_plugin_type('NoSuchPlugin') is None
    from mmcv.cnn import ContextBlock
    assert factory.find_plugin_type('ContextBlock', scope='mmdet') is ContextBlock


def test_scope_name(monkeypatch):
    assert factory._scope_name('mmdet') == 'mmdet'
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        assert factory._scope_name(None) == 'mmpretrain'
    monkeypatch.setattr(DefaultScope, 'get_current_instance', classmethod(lambda cls: None))
    assert factory._scope_name(None) == 'mmengine'


def _plugin(**kwargs):
    return dict(dict(cfg=dict(type='SGE', groups=8), position='after_conv3'), **kwargs)


def test_valid_plugins_pass():
    check_plugin_cfgs(None)
    check_plugin_cfgs([])
    check_plugin_cfgs([_plugin(), _plugin(stages=(False, True, True, True))])
    check_plugin_cfgs([_plugin(stages=(True, True))], num_stages=2)


@pytest.mark.parametrize('plugins, message', [
    (['SGE'], r"^plugins\[0\] must be dict\(cfg=dict\(type=\.\.\.\), position=\.\.\., "
              r"stages=\.\.\.\), got 'SGE'$"),
    ([dict(cfg='SGE')], r'^plugins\[0\] must be dict'),
    ([_plugin(), dict(cfg=dict(groups=8))],
     r"^plugins\[1\]\.cfg has no \"type\": \{'groups': 8\}$"),
    ([_plugin(stages=(False, True, True))],
     r'^plugins\[0\] \(SGE\): stages=\(False, True, True\) has 3 entries; it needs one per '
     r'stage, num_stages=4 \(e\.g\. stages=\(False, True, True, True\)\), or stages=None '
     r'for all$'),
])
def test_malformed_plugins(plugins, message):
    with pytest.raises(ValueError, match=message):
        check_plugin_cfgs(plugins)


def test_plugin_stage_count_follows_num_stages():
    with pytest.raises(ValueError, match=r'num_stages=3 \(e\.g\. stages=\(False, True, True\)\)'):
        check_plugin_cfgs([_plugin(stages=(True, ) * 4)], num_stages=3, where='dcn')
    with pytest.raises(ValueError, match=r'^dcn\[0\]'):
        check_plugin_cfgs([_plugin(stages=(True, ) * 4)], num_stages=3, where='dcn')


def test_unknown_plugin_type_message():
    with pytest.raises(KeyError) as info:
        check_plugin_cfgs([_plugin(), dict(cfg=dict(type='SGEE'))], scope='mmdet')
    message = info.value.args[0]
    assert message.startswith(
        "plugins[1]: unknown plugin type 'SGEE' (not registered in the 'mmdet' scope nor in "
        "mmengine's root registry). resvariants' attention modules: BAM, CBAM, GCBlock, "
        "SEModule, SGE, SKFusion, SRM; mmcv's: ContextBlock, GeneralizedAttention, NonLocal2d.")
    assert message.endswith(
        "NonLocal2d. Check the spelling, and import the package that registers it before the "
        "model is built (custom_imports=dict(imports=['resvariants.models']) in the config, or "
        "a prefixed type such as 'resvariants.SGE').")
