"""epsilon_compact.py piece by piece: the plan, the configs, the key mapping, every refusal
and what the export writes. Found by mutation testing (docs/testing.md)."""
import math

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope

from resvariants.converters import epsilon_compact as ec
from resvariants.models import EpsilonResNet, PreActResNetCIFAR, ResNet
from resvariants.models.backbones.strict_identity import find_strict_identity_gates


@pytest.fixture(scope='module')
def cifar110():
    return PreActResNetCIFAR(depth=110, epsilon=2.0, base_channels=4)


@pytest.fixture(scope='module')
def trunk18():
    return EpsilonResNet(depth=18, epsilon=2.0, base_channels=8)


def test_plan_refuses_ungated_backbones():
    with pytest.raises(TypeError, match=r'^ResNet is not a gated epsilon backbone '
                                        r'\(EpsilonResNet, or PreActResNetCIFAR with epsilon\)$'):
        ec.plan_compaction(ResNet(depth=18, base_channels=8), [])
    with pytest.raises(TypeError, match=r'^PreActResNetCIFAR is not a gated epsilon backbone'):
        ec.plan_compaction(PreActResNetCIFAR(depth=20, epsilon=None, base_channels=4), [])


def test_plan_refuses_unknown_blocks(trunk18):
    with pytest.raises(KeyError) as info:
        ec.plan_compaction(trunk18, ['layer1.0', 'layer5.0', 'layer1.9'])
    assert info.value.args[0] == "discarded blocks not in EpsilonResNet: ['layer1.9', 'layer5.0']"


def test_plan_orders_the_removed_blocks_numerically(cifar110):
    plan = ec.plan_compaction(cifar110, ['layer2.0', 'layer1.10', 'layer1.2', 'layer3.17'])
    assert plan.removed == ['layer1.2', 'layer1.10', 'layer2.0', 'layer3.17']
    assert plan.total_blocks == 54 and plan.stage_blocks == (16, 17, 17)
    assert plan.removed_ratio == 4 / 54
    # layer2.0 (a down-sampling block) leaves its shortcut as the stage's index 0
    assert plan.shortcut_only_stages == (False, True, False)
    assert plan.block_map['layer1.2.'] == 'layer1.3.' and plan.block_map['layer1.9.'] == \
        'layer1.11.'
    assert plan.block_map['layer2.1.'] == 'layer2.1.' and 'layer2.0.' not in plan.block_map


@pytest.mark.parametrize('discarded, preact', [([], False), (['layer1.0'], True),
                                               (['layer2.0'], False),
                                               (['layer1.1', 'layer3.0'], False)])
def test_first_block_preact_only_when_the_cifar_first_block_goes(discarded, preact):
    cifar = PreActResNetCIFAR(depth=20, epsilon=2.0, base_channels=4)
    assert ec.plan_compaction(cifar, discarded).first_block_preact is preact


def test_trunk_plans_never_keep_a_preactivation(trunk18):
    assert not ec.plan_compaction(trunk18, ['layer1.0']).first_block_preact


def test_plan_defaults():
    plan = ec.CompactPlan(stage_blocks=(), shortcut_only_stages=(), first_block_preact=False,
                          removed=[], total_blocks=0)
    assert plan.block_map == {} and plan.removed_ratio == 0.0
    other = ec.CompactPlan((), (), False, [], 0)
    assert other.block_map is not plan.block_map


def _plan(**kwargs):
    return ec.CompactPlan(**dict(dict(stage_blocks=(1, 2), shortcut_only_stages=(True, False),
                                      first_block_preact=True, removed=['layer1.0'],
                                      total_blocks=4), **kwargs))


@pytest.mark.parametrize('init, kept', [
    (dict(type='Pretrained', checkpoint='a.pth'), False),
    (dict(type='StrictPretrained', checkpoint='a.pth'), False),
    (dict(type='Kaiming', layer='Conv2d'), True),
    (None, True),
])
def test_compact_backbone_cfg_of_a_trunk(init, kept):
    cfg = dict(type='EpsilonResNet', depth=18, epsilon=2.0, norm_cfg=dict(type='BN'),
               init_cfg=init)
    out = ec.compact_backbone_cfg(cfg, _plan())
    assert out == dict(type='resvariants.CompactResNet', depth=18, norm_cfg=dict(type='BN'),
                       init_cfg=init if kept else None, stage_blocks=(1, 2),
                       shortcut_only_stages=(True, False))
    out['norm_cfg']['type'] = 'GN'
    assert cfg['norm_cfg'] == dict(type='BN') and cfg['epsilon'] == 2.0  # a deep copy


def test_compact_backbone_cfg_of_a_cifar_net():
    cfg = dict(type='resvariants.PreActResNetCIFAR', depth=20, epsilon=2.5)
    assert ec.compact_backbone_cfg(cfg, _plan()) == dict(
        type='resvariants.PreActResNetCIFAR', depth=20, epsilon=None, first_block_preact=True,
        stage_blocks=(1, 2), shortcut_only_stages=(True, False))
    no_first = ec.compact_backbone_cfg(cfg, _plan(first_block_preact=False))
    assert no_first['first_block_preact'] is False


@pytest.mark.parametrize('cfg, named', [(dict(depth=18), 'None'),
                                        (dict(type='mmdet.ResNet'), "'mmdet.ResNet'")])
def test_compact_backbone_cfg_refuses_other_types(cfg, named):
    with pytest.raises(TypeError, match=rf'^cannot compact a backbone of type {named}$'):
        ec.compact_backbone_cfg(cfg, _plan())


def _state(shapes):
    return {k: torch.full(s, float(i)) for i, (k, s) in enumerate(shapes.items())}


class _Target(torch.nn.Module):
    def __init__(self, shapes):
        super().__init__()
        for key, shape in shapes.items():
            self.register_buffer(key.replace('.', '_'), torch.zeros(shape))
        self.shapes = shapes

    def state_dict(self, *args, **kwargs):
        return {k: torch.zeros(s) for k, s in self.shapes.items()}


def test_compact_state_dict_maps_through_the_block_map():
    plan = _plan(block_map={'layer1.0.': 'layer1.1.', 'layer1.1.': 'layer1.3.'})
    gated = _state({'backbone.conv1.weight': (2, ), 'backbone.layer1.1.conv1.weight': (3, ),
                    'backbone.layer1.3.conv1.weight': (4, ), 'head.fc.weight': (5, ),
                    'backbone.layer1.2.conv1.weight': (4, )})
    target = _Target({'backbone.conv1.weight': (2, ), 'backbone.layer1.0.conv1.weight': (3, ),
                      'backbone.layer1.1.conv1.weight': (4, ), 'head.fc.weight': (5, )})
    mapped = ec.compact_state_dict(gated, target, plan)  # default prefix 'backbone.'
    assert set(mapped) == set(target.shapes)
    assert mapped['backbone.layer1.0.conv1.weight'] is gated['backbone.layer1.1.conv1.weight']
    assert mapped['backbone.layer1.1.conv1.weight'] is gated['backbone.layer1.3.conv1.weight']
    assert mapped['head.fc.weight'] is gated['head.fc.weight']


def test_compact_state_dict_lists_every_problem():
    plan = _plan(block_map={'layer1.0.': 'layer1.1.'})
    gated = _state({'backbone.layer1.1.w': (3, ), 'backbone.b': (2, )})
    target = _Target({'backbone.layer1.0.w': (4, ), 'backbone.c': (1, ), 'backbone.b': (2, )})
    with pytest.raises(KeyError) as info:
        ec.compact_state_dict(gated, target, plan)
    assert info.value.args[0] == (
        'cannot map the gated weights onto the compact network:\n'
        '  backbone.layer1.0.w <- backbone.layer1.1.w: shape (3,) vs (4,)\n'
        '  backbone.c <- backbone.c: not in the gated checkpoint')


def test_compact_config_drops_the_epsilon_parts():
    cfg = Config(dict(model=dict(type='resvariants.EpsilonImageClassifier', backbone=dict(),
                                 side_head=dict(loss_weight=0.1), side_position=3,
                                 head=dict(type='LinearClsHead')),
                      custom_hooks=[dict(type='resvariants.EpsilonResNetHook'),
                                    dict(type='EpsilonAdaptiveLRHook'),
                                    dict(type='EMAHook')]))
    out = ec.compact_config(cfg, dict(type='resvariants.CompactResNet', depth=18))
    assert out.model == dict(type='mmpretrain.ImageClassifier', head=dict(type='LinearClsHead'),
                             backbone=dict(type='resvariants.CompactResNet', depth=18))
    assert out.custom_hooks == [dict(type='EMAHook')]
    assert cfg.model.type == 'resvariants.EpsilonImageClassifier'  # a copy
    detector = Config(dict(model=dict(type='mmdet.FasterRCNN', backbone=dict())))
    out = ec.compact_config(detector, dict(type='resvariants.CompactResNet'))
    assert out.model.type == 'mmdet.FasterRCNN' and out.custom_hooks == []


def test_plain_turns_config_dicts_into_literals():
    value = ec._plain(ConfigDict(a=[ConfigDict(b=(1, 2))], c=3))
    assert value == {'a': [{'b': (1, 2)}], 'c': 3}
    assert type(value) is dict and type(value['a'][0]) is dict and type(value['a']) is list
    assert type(value['a'][0]['b']) is tuple


TINY = """
default_scope = 'mmpretrain'
model = dict(
    type='resvariants.EpsilonImageClassifier',
    backbone=dict(type='resvariants.EpsilonResNet', depth=18, base_channels=8,
                  out_indices=(3, ), epsilon=2.0, norm_eval=False),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=4, in_channels=64),
    side_head=dict(loss_weight=0.1))
custom_hooks = [dict(type='resvariants.EpsilonResNetHook')]
"""


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """A tiny gated classifier with 4 of 8 blocks discarded, saved, then exported."""
    root = tmp_path_factory.mktemp('eps')
    cfg_path = root / 'eps_tiny.py'
    cfg_path.write_text(TINY)
    gated = ec._build_model(Config.fromfile(str(cfg_path)))
    gated.init_weights()
    discarded = ['backbone.layer2.0', 'backbone.layer3.1', 'backbone.layer4.0',
                 'backbone.layer4.1']
    record = dict(blocks=list(find_strict_identity_gates(gated)), discarded=discarded,
                  decided=True)
    torch.save(dict(state_dict=gated.state_dict(), meta=dict(epsilon_resnet=record)),
               root / 'gated.pth')
    result = ec.export_compact(str(cfg_path), str(root / 'gated.pth'), str(root / 'out'),
                               shape=(32, 32))
    return root, gated, record, result


def test_export_result(exported):
    root, gated, _, result = exported
    side = sum(p.numel() for p in gated.side_head.parameters())
    assert side > 0
    assert result.params_before == sum(p.numel() for p in gated.parameters()) - side
    assert result.shape == (32, 32) and result.flops_of == 'model'
    assert result.plan.removed == ['layer2.0', 'layer3.1', 'layer4.0', 'layer4.1']
    assert result.config_path == str(root / 'out' / 'eps_tiny_compact.py')
    assert result.checkpoint_path == str((root / 'out' / 'eps_tiny_compact.pth').resolve())
    assert 0 < result.gflops_after < result.gflops_before


def test_export_writes_config_checkpoint_and_snippet(exported):
    from resvariants.utils.safe_load import load_checkpoint_safely
    root, _, _, result = exported
    text = open(result.config_path).read()
    assert text.startswith(
        '# Compact network exported by tools/model_converters/epsilon_compact.py\n'
        f'# from {root / "eps_tiny.py"} + {root / "gated.pth"}\n'
        '# 4/8 blocks removed: layer2.0, layer3.1, layer4.0, layer4.1\n'
        f'# weights: {result.checkpoint_path}\n')
    meta = load_checkpoint_safely(result.checkpoint_path)['meta']
    assert meta == dict(compacted_from=str(root / 'gated.pth'),
                        source_config=str(root / 'eps_tiny.py'),
                        removed_blocks=['layer2.0', 'layer3.1', 'layer4.0', 'layer4.1'],
                        removed_ratio=0.5, stage_blocks=(2, 1, 1, 0),
                        shortcut_only_stages=(False, True, False, True),
                        max_abs_diff=result.max_abs_diff, params_before=result.params_before,
                        params_after=result.params_after)
    snippet = Config.fromfile(result.backbone_snippet_path)
    assert open(result.backbone_snippet_path).read().startswith(text[:60])
    assert snippet.compact_checkpoint == result.checkpoint_path
    det = snippet.compact_det_backbone
    assert det.out_indices == (0, 1, 2, 3) and det.frozen_stages == 1 and det.norm_eval is True
    assert det.style == 'pytorch' and det._delete_ is True
    assert det.init_cfg == dict(type='StrictPretrained', checkpoint=result.checkpoint_path,
                                prefix='backbone.')
    assert snippet.compact_backbone.out_indices == (3, )  # the classifier's own, unchanged
    assert snippet.compact_backbone.type == 'resvariants.CompactResNet'


def test_export_refusals(exported, tmp_path):
    root, gated, record, _ = exported
    cfg_path = str(root / 'eps_tiny.py')
    with pytest.raises(FileNotFoundError, match='^config file not found: nope.py$'):
        ec.export_compact('nope.py', str(root / 'gated.pth'), str(tmp_path))
    torch.save(dict(state_dict=gated.state_dict(), meta={}), tmp_path / 'none.pth')
    with pytest.raises(KeyError) as info:
        ec.export_compact(cfg_path, str(tmp_path / 'none.pth'), str(tmp_path))
    assert info.value.args[0] == (f'{tmp_path / "none.pth"} holds no discard record '
                                  '(meta["epsilon_resnet"]): train with '
                                  'resvariants.EpsilonResNetHook in custom_hooks')
    torch.save(dict(state_dict=gated.state_dict(), meta=dict(epsilon_resnet=dict(
        record, decided=False))), tmp_path / 'early.pth')
    with pytest.raises(ValueError, match=r'early\.pth was saved before any epoch ended: no '
                                         r'block has a discard decision yet$'):
        ec.export_compact(cfg_path, str(tmp_path / 'early.pth'), str(tmp_path))
    with pytest.raises(RuntimeError, match=r'^the compact network differs from the gated one '
                                           r'by .* \(tolerance 0\)$'):
        ec.export_compact(cfg_path, str(root / 'gated.pth'), str(tmp_path / 'x'),
                          shape=(32, 32), tolerance=0, count_flops=False)


def test_export_without_flops_and_at_the_default_size(exported, tmp_path):
    root, _, _, _ = exported
    result = ec.export_compact(str(root / 'eps_tiny.py'), str(root / 'gated.pth'),
                               str(tmp_path), count_flops=False)
    assert result.shape == (224, 224)  # an ImageNet trunk
    assert math.isnan(result.gflops_before) and math.isnan(result.gflops_after)
    assert result.max_abs_diff < 1e-5


def test_epsilon_hooks_named():
    assert ec.EPSILON_HOOKS == ('EpsilonResNetHook', 'EpsilonAdaptiveLRHook')
    assert ec.META_KEY == 'epsilon_resnet'


def test_max_abs_diff():
    a = (torch.zeros(2), torch.tensor([1.0, -3.0]))
    b = (torch.ones(2), torch.zeros(2))
    assert ec.max_abs_diff(a, b) == 3.0
