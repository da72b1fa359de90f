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


@pytest.mark.parametrize('cfg, name', [(dict(type='resvariants.EpsilonResNet'), 'EpsilonResNet'),
                                       (dict(type='EpsilonResNet'), 'EpsilonResNet'),
                                       (dict(type='a.b.C'), 'C'), (dict(type=None), ''),
                                       (dict(), '')])
def test_short_type(cfg, name):
    assert ec._short_type(cfg) == name


def test_unprefixed_types_are_understood():
    out = ec.compact_backbone_cfg(dict(type='PreActResNetCIFAR', depth=20, epsilon=1.0),
                                  _plan())
    assert out['type'] == 'resvariants.PreActResNetCIFAR'
    cfg = Config(dict(model=dict(type='EpsilonImageClassifier', side_head=dict()),
                      custom_hooks=[dict(type='EpsilonResNetHook'), dict(priority=1)]))
    out = ec.compact_config(cfg, dict())
    assert out.model.type == 'mmpretrain.ImageClassifier'
    assert out.custom_hooks == [dict(priority=1)]


def test_state_dict_problems_are_cut_at_twenty():
    gated = {}
    target = _Target({f'backbone.k{i:02d}': (1, ) for i in range(21)})
    with pytest.raises(KeyError) as info:
        ec.compact_state_dict(gated, target, _plan())
    lines = info.value.args[0].split('\n')
    assert len(lines) == 21 and lines[-1] == '  backbone.k19 <- backbone.k19: not in the gated ' \
                                             'checkpoint'


def test_build_model_uses_the_config_scope():
    from mmdet.models.backbones import ResNet as MMDetResNet
    from mmpretrain.models.backbones import ResNet as MMPretrainResNet
    model = dict(type='ResNet', depth=18)
    assert type(ec._build_model(Config(dict(model=model)))) is MMPretrainResNet  # default
    built = ec._build_model(Config(dict(model=model, default_scope='mmdet')))
    assert type(built) is MMDetResNet
    cfg = Config(dict(model=dict(type='ImageClassifier', backbone=dict(type='ResNet', depth=18),
                                 neck=dict(type='GlobalAveragePooling'),
                                 head=dict(type='LinearClsHead', num_classes=3,
                                           in_channels=512))))
    before = cfg.model.to_dict()
    ec._build_model(cfg)
    ec._build_model(cfg)
    assert cfg.model.to_dict() == before


class _FakeModel(torch.nn.Module):
    def __init__(self, with_head):
        super().__init__()
        self.backbone = torch.nn.Identity()
        self.head = lambda feats: feats[0].sum()
        self.with_head = with_head

    def extract_feat(self, x):
        return (x * 2, )


def test_tensor_outputs_of_classifiers_and_detectors():
    x = torch.ones(1, 2)
    feats, final = ec._tensor_outputs(_FakeModel(with_head=True), x)
    assert torch.equal(feats[0], torch.ones(2)) and final == (torch.tensor(4.0), )
    model = _FakeModel(with_head=False)
    feats, final = ec._tensor_outputs(model, x)
    assert isinstance(final, tuple) and torch.equal(final[0], x * 2)
    no_head = torch.nn.Module()
    no_head.backbone = torch.nn.Identity()
    no_head.extract_feat = lambda t: [t + 1]
    feats, final = ec._tensor_outputs(no_head, x)
    assert isinstance(final, tuple) and torch.equal(final[0], x + 1)
    assert ec._complexity_target(no_head) is no_head.backbone
    assert ec._complexity_target(model) is model


def test_deploy_params_leave_out_the_side_head():
    model = torch.nn.Linear(3, 2)
    assert ec._deploy_params(model) == 8
    model.side_head = torch.nn.Linear(2, 2)
    assert ec._deploy_params(model) == 8


def test_export_result_counts_flops_of_the_model_by_default():
    result = ec.ExportResult(None, 'c', 'k', 's', 0.0, 1, 1, 0.0, 0.0, (32, 32))
    assert result.flops_of == 'model'


def test_export_default_tolerance(exported, tmp_path, monkeypatch):
    root, _, _, _ = exported
    monkeypatch.setattr(ec, 'max_abs_diff', lambda a, b: 1.5e-5)
    with pytest.raises(RuntimeError, match=r'differs from the gated one by 1\.5e-05 '
                                           r'\(tolerance 1e-05\)$'):
        ec.export_compact(str(root / 'eps_tiny.py'), str(root / 'gated.pth'), str(tmp_path),
                          shape=(32, 32), count_flops=False)
    result = ec.export_compact(str(root / 'eps_tiny.py'), str(root / 'gated.pth'),
                               str(tmp_path), shape=(32, 32), count_flops=False,
                               tolerance=2e-5)
    assert result.max_abs_diff == 1.5e-5


def test_record_without_a_decision_flag_is_refused(exported, tmp_path):
    root, gated, record, _ = exported
    undecided = {k: v for k, v in record.items() if k != 'decided'}
    torch.save(dict(state_dict=gated.state_dict(), meta=dict(epsilon_resnet=undecided)),
               tmp_path / 'old.pth')
    with pytest.raises(ValueError, match='saved before any epoch ended'):
        ec.export_compact(str(root / 'eps_tiny.py'), str(tmp_path / 'old.pth'), str(tmp_path))


def test_mapped_weights_are_loaded_strictly(exported, tmp_path, monkeypatch):
    root, _, _, _ = exported
    monkeypatch.setattr(ec, 'compact_state_dict', lambda *args: {})
    with pytest.raises(KeyError, match='mapped gated weights'):
        ec.export_compact(str(root / 'eps_tiny.py'), str(root / 'gated.pth'), str(tmp_path),
                          shape=(32, 32), count_flops=False)


def test_export_with_nothing_removed(exported, tmp_path):
    root, gated, record, _ = exported
    torch.save(dict(state_dict=gated.state_dict(),
                    meta=dict(epsilon_resnet=dict(record, discarded=[]))), tmp_path / 'all.pth')
    result = ec.export_compact(str(root / 'eps_tiny.py'), str(tmp_path / 'all.pth'),
                               str(tmp_path / 'out'), shape=(32, 32), count_flops=False)
    assert result.plan.removed == [] and result.params_after == result.params_before
    assert '# 0/8 blocks removed: none\n' in open(result.config_path).read()


CIFAR = """
default_scope = 'mmpretrain'
model = dict(
    type='resvariants.EpsilonImageClassifier',
    backbone=dict(type='resvariants.PreActResNetCIFAR', depth=20, base_channels=4,
                  epsilon=2.0),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=4, in_channels=16))
"""


def test_cifar_export_checks_at_32(tmp_path):
    cfg_path = tmp_path / 'eps_cifar.py'
    cfg_path.write_text(CIFAR)
    gated = ec._build_model(Config.fromfile(str(cfg_path)))
    gated.init_weights()
    record = dict(blocks=list(find_strict_identity_gates(gated)), decided=True,
                  discarded=['backbone.layer1.0', 'backbone.layer2.1'])
    torch.save(dict(state_dict=gated.state_dict(), meta=dict(epsilon_resnet=record)),
               tmp_path / 'gated.pth')
    result = ec.export_compact(str(cfg_path), str(tmp_path / 'gated.pth'),
                               str(tmp_path / 'out'), count_flops=False)
    assert result.shape == (32, 32) and result.max_abs_diff < 1e-5
    assert result.plan.first_block_preact
    snippet = Config.fromfile(result.backbone_snippet_path)
    assert 'style' not in snippet.compact_det_backbone  # only CompactResNet has a style
    assert snippet.compact_fpn_in_channels == [4, 8, 16]


DETECTOR = """
default_scope = 'mmdet'
model = dict(
    type='FasterRCNN',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[0., 0., 0.], std=[1., 1., 1.],
                           bgr_to_rgb=False, pad_size_divisor=32),
    backbone=dict(type='resvariants.EpsilonResNet', depth=18, base_channels=8, epsilon=2.0,
                  out_indices=(0, 1, 2, 3)),
    neck=dict(type='FPN', in_channels=[8, 16, 32, 64], out_channels=8, num_outs=5),
    rpn_head=dict(type='RPNHead', in_channels=8, feat_channels=8,
                  anchor_generator=dict(type='AnchorGenerator', scales=[8], ratios=[1.0],
                                        strides=[4, 8, 16, 32, 64]),
                  bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                                  target_stds=[1.0] * 4)),
    roi_head=dict(type='StandardRoIHead',
                  bbox_roi_extractor=dict(type='SingleRoIExtractor',
                                          roi_layer=dict(type='RoIAlign', output_size=7,
                                                         sampling_ratio=0),
                                          out_channels=8, featmap_strides=[4, 8, 16, 32]),
                  bbox_head=dict(type='Shared2FCBBoxHead', in_channels=8, fc_out_channels=16,
                                 roi_feat_size=7, num_classes=2,
                                 bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                                                 target_means=[0.0] * 4,
                                                 target_stds=[0.1, 0.1, 0.2, 0.2]))),
    train_cfg=None,
    test_cfg=dict(rpn=dict(nms_pre=100, max_per_img=100, nms=dict(type='nms', iou_threshold=0.7),
                           min_bbox_size=0),
                  rcnn=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                            max_per_img=10)))
"""


def test_detector_export_compares_the_backbone_and_neck(tmp_path):
    cfg_path = tmp_path / 'eps_det.py'
    cfg_path.write_text(DETECTOR)
    gated = ec._build_model(Config.fromfile(str(cfg_path)))
    gated.init_weights()
    record = dict(blocks=list(find_strict_identity_gates(gated)), decided=True,
                  discarded=['backbone.layer3.1'])
    torch.save(dict(state_dict=gated.state_dict(), meta=dict(epsilon_resnet=record)),
               tmp_path / 'gated.pth')
    result = ec.export_compact(str(cfg_path), str(tmp_path / 'gated.pth'),
                               str(tmp_path / 'out'), shape=(64, 64), count_flops=False)
    assert result.flops_of == 'backbone' and result.max_abs_diff < 1e-5
    compact_cfg = Config.fromfile(result.config_path)
    assert compact_cfg.model.type == 'FasterRCNN'
    assert compact_cfg.model.backbone.type == 'resvariants.CompactResNet'


def test_backbone_snippet_restores_the_out_indices():
    compact = ec._build_model(Config(dict(model=dict(
        type='ImageClassifier',
        backbone=dict(type='resvariants.CompactResNet', depth=18, base_channels=8,
                      out_indices=(3, ), stage_blocks=(2, 2, 2, 2),
                      shortcut_only_stages=(False, ) * 4),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=64)))))
    text = ec._backbone_snippet(dict(type='resvariants.CompactResNet', depth=18), 'w.pth',
                                compact, '# header\n')
    assert compact.backbone.out_indices == (3, )
    assert text.startswith('# header\n# Use it in a detector config:\n')
    assert "compact_checkpoint = 'w.pth'\n" in text
    assert text.endswith('compact_fpn_in_channels = [8, 16, 32, 64]\n')
