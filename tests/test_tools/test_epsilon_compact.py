"""Compact export of epsilon-ResNets: removed blocks, kept shortcuts, identical outputs."""
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from resvariants.converters.epsilon_compact import (compact_backbone_cfg, compact_state_dict,
                                                    plan_compaction)
from resvariants.models import EpsilonResNet, PreActResNetCIFAR
from resvariants.models.backbones.strict_identity import (apply_discard_record,
                                                          find_strict_identity_gates)
from resvariants.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _randomise_norms(model):
    """Non-trivial BN statistics and affine parameters, so eval outputs exercise every layer."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def _decide(model, discarded):
    apply_discard_record(model, dict(blocks=list(find_strict_identity_gates(model)),
                                     discarded=discarded, decided=True))


def _compact(gated, cfg, discarded):
    _decide(gated, discarded)
    plan = plan_compaction(gated, discarded)
    new_cfg = compact_backbone_cfg(cfg, plan)
    with DefaultScope.overwrite_default_scope('resvariants'):
        compact = MODELS.build(new_cfg)
    compact.load_state_dict(compact_state_dict(gated.state_dict(), compact, plan, prefix=''),
                            strict=True)
    return plan, compact.eval()


def _max_diff(a, b):
    assert len(a) == len(b)
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


def test_cifar_compact_equals_gated():
    cfg = dict(type='resvariants.PreActResNetCIFAR', depth=20, epsilon=2.5, base_channels=8,
               out_indices=(0, 1, 2))
    gated = PreActResNetCIFAR(**{k: v for k, v in cfg.items() if k != 'type'})
    _randomise_norms(gated)
    discarded = ['layer1.0', 'layer1.2', 'layer2.0', 'layer3.0', 'layer3.1', 'layer3.2']
    plan, compact = _compact(gated, cfg, discarded)
    assert plan.stage_blocks == (1, 2, 0)
    assert plan.shortcut_only_stages == (False, True, True)
    assert plan.first_block_preact  # the old layer1.1 keeps its pre-activation
    assert compact.layer1[0].preact and len(compact.layer3) == 1
    assert sum(p.numel() for p in compact.parameters()) < \
        sum(p.numel() for p in gated.parameters())
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert _max_diff(gated.eval()(x), compact(x)) < 1e-5


@pytest.mark.parametrize('depth', [18, 50])
def test_trunk_compact_equals_gated(depth):
    cfg = dict(type='resvariants.EpsilonResNet', depth=depth, epsilon=2.0, base_channels=8,
               out_indices=(0, 1, 2, 3))
    gated = EpsilonResNet(**{k: v for k, v in cfg.items() if k != 'type'})
    _randomise_norms(gated)
    discarded = ['layer1.0', 'layer1.1', 'layer2.0', 'layer3.0', 'layer3.1', 'layer4.1']
    if depth == 50:
        discarded += ['layer3.2', 'layer3.3', 'layer3.4', 'layer3.5']
    plan, compact = _compact(gated, cfg, discarded)
    assert len(plan.removed) == len(discarded)
    assert type(compact).__name__ == 'CompactResNet'
    # a discarded first block of a down-sampling stage leaves its projection shortcut;
    # layer1.0 of a basic-block network has none (8 -> 8, stride 1): its stage becomes empty
    assert plan.shortcut_only_stages == ((False, True, True, False) if depth == 18
                                         else (True, True, True, False))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert _max_diff(gated.eval()(x), compact(x)) < 1e-5
    with pytest.raises(KeyError, match='not in'):
        plan_compaction(gated, ['layer5.0'])


def _load_tool():
    path = osp.join(REPO, 'tools', 'model_converters', 'epsilon_compact.py')
    spec = importlib.util.spec_from_file_location('epsilon_compact_tool', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


TINY_CFG = """
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


def test_export_tool_writes_a_loadable_compact_classifier(tmp_path, capsys):
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS

    from resvariants.utils.safe_load import load_checkpoint_safely
    cfg_path = tmp_path / 'eps_r18_tiny.py'
    cfg_path.write_text(TINY_CFG)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        gated = PRETRAIN_MODELS.build(Config.fromfile(str(cfg_path)).model)
    _randomise_norms(gated)
    gated.init_weights()
    discarded = ['backbone.layer2.0', 'backbone.layer3.1', 'backbone.layer4.0',
                 'backbone.layer4.1']
    record = dict(blocks=list(find_strict_identity_gates(gated)), discarded=discarded,
                  decided=True)
    torch.save(dict(state_dict=gated.state_dict(), meta=dict(epsilon_resnet=record)),
               tmp_path / 'gated.pth')
    torch.save(dict(state_dict=gated.state_dict(), meta={}), tmp_path / 'no_record.pth')

    tool = _load_tool()
    result = tool.main([str(cfg_path), str(tmp_path / 'gated.pth'), str(tmp_path / 'out'),
                        '--shape', '32'])
    printed = capsys.readouterr().out
    assert 'Blocks removed: 4/8 (50.00%)' in printed
    assert result.params_after < result.params_before
    assert result.gflops_after < result.gflops_before
    assert result.max_abs_diff < 1e-5

    compact_cfg = Config.fromfile(result.config_path)
    assert compact_cfg.model.type == 'mmpretrain.ImageClassifier'
    assert 'side_head' not in compact_cfg.model and compact_cfg.custom_hooks == []
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        compact = PRETRAIN_MODELS.build(compact_cfg.model)
    state = load_checkpoint_safely(result.checkpoint_path)['state_dict']
    compact.load_state_dict(state, strict=True)
    assert not any(k.startswith('side_head') for k in state)
    apply_discard_record(gated, record)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        diff = (gated.eval()(x, mode='tensor') - compact.eval()(x, mode='tensor')).abs().max()
    assert diff < 1e-5
    snippet = Config.fromfile(result.backbone_snippet_path)
    assert snippet.compact_det_backbone.init_cfg.checkpoint == result.checkpoint_path
    assert snippet.compact_fpn_in_channels == [8, 16, 32, 64]

    with pytest.raises(KeyError, match='no discard record'):
        tool.main([str(cfg_path), str(tmp_path / 'no_record.pth'), str(tmp_path / 'x')])
