"""``tools/train.py CONFIG --sync-bn``: mmdet's ``-syncbn`` recipe as one flag on any zoo config
(resvariants/engine/recipes.py). It changes only ``sync_bn``, the backbone's ``norm_eval`` and
the lr-rescale-on-resume hook; mmengine's conversion then makes every BatchNorm of a variant
(trunk, SK's branch norm, OctaveNorm, ED blocks, attention-owned BN) synchronized; the lr that
auto_scale_lr derives follows the global batch for any world size."""
import os.path as osp
import sys
import types

import pytest
import torch
from mmengine.config import Config
from mmengine.model import convert_sync_batchnorm
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from resvariants.engine.config_loading import load_config, register_scope
from resvariants.engine.recipes import SYNC_BN_HOOK, apply_sync_bn

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)
from tools.train import parse_args  # noqa: E402


def load(name):
    return Config.fromfile(osp.join(REPO, 'configs', name))


@pytest.mark.parametrize('zoo_name', ['faster_rcnn_se_r50_fpn.py', 'mask_rcnn_bam_r101_fpn.py',
                                      'cascade_rcnn_oct_r50_fpn.py'])
def test_sync_bn_changes_only_the_norm_settings_and_the_hook(zoo_name):
    zoo = load(zoo_name).to_dict()
    synced = apply_sync_bn(load(zoo_name)).to_dict()
    assert zoo['model']['backbone']['norm_eval'] is True and 'custom_hooks' not in zoo
    assert 'sync_bn' not in zoo
    assert synced.pop('sync_bn') == 'torch'
    assert synced.pop('custom_hooks') == [dict(type=SYNC_BN_HOOK)]
    assert synced['model']['backbone'].pop('norm_eval') is False
    del zoo['model']['backbone']['norm_eval']
    assert synced == zoo
    # the lr of the zoo recipe (0.02) is for 8 GPUs x 2 images
    assert synced['auto_scale_lr'] == dict(enable=False, base_batch_size=16)


def test_sync_bn_keeps_other_hooks_and_adds_its_own_once():
    cfg = load('faster_rcnn_se_r50_fpn.py')
    cfg.custom_hooks = [dict(type='EMAHook')]
    apply_sync_bn(apply_sync_bn(cfg), 'mmcv')
    assert cfg.custom_hooks == [dict(type='EMAHook'), dict(type=SYNC_BN_HOOK)]
    assert cfg.sync_bn == 'mmcv'
    with pytest.raises(ValueError) as info:
        apply_sync_bn(cfg, 'nccl')
    assert info.value.args[0] == ('--sync-bn takes "torch" or "mmcv" (mmengine\'s sync_bn), '
                                  "got 'nccl'")


def test_the_flag_reaches_the_config_before_cfg_options():
    args = parse_args(['configs/faster_rcnn_se_r50_fpn.py', '--sync-bn', '--cfg-options',
                       'model.backbone.norm_eval=True'])
    assert args.sync_bn == 'torch'
    cfg = load_config(args)
    assert cfg.sync_bn == 'torch' and cfg.custom_hooks == [dict(type=SYNC_BN_HOOK)]
    assert cfg.model.backbone.norm_eval is True  # --cfg-options still win
    assert parse_args(['configs/faster_rcnn_se_r50_fpn.py', '--sync-bn', 'mmcv']).sync_bn == \
        'mmcv'
    assert parse_args(['configs/faster_rcnn_se_r50_fpn.py']).sync_bn is None


# one variant per way of building norms: the trunk (plain; se, cbam, gc, sge, srm, ws alike), SK's
# extra branch norm, Oct-ResNet's OctaveNorm, ED-ResNet's own blocks, attention-owned BN (BAM)
@pytest.mark.parametrize('variant', ['', 'sk_', 'oct_', 'ed_', 'bam_'])
def test_sync_bn_makes_every_backbone_norm_synchronized(variant):
    cfg = apply_sync_bn(load(f'faster_rcnn_{variant}r50_fpn.py'))
    cfg.model.backbone.init_cfg = None
    register_scope('mmdet')
    from mmdet.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmdet'):
        backbone = MODELS.build(cfg.model.backbone)
    count = sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in backbone.modules())
    backbone = convert_sync_batchnorm(backbone, cfg.sync_bn)  # what the Runner does under DDP
    norms = {n: m for n, m in backbone.named_modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    assert len(norms) == count >= 53
    assert all(isinstance(m, torch.nn.SyncBatchNorm) for m in norms.values())
    backbone.train()
    # trained: beyond the frozen stem and stage 1, the norms are in train mode
    layer4 = [m for n, m in norms.items() if n.startswith('layer4')]
    assert layer4 and all(m.training and m.weight.requires_grad for m in layer4)
    assert not backbone.layer1[0].training  # frozen_stages=1 kept
    assert not any(p.requires_grad for p in backbone.layer1.parameters())


@pytest.mark.parametrize('world_size,per_gpu_batch', [(1, 2), (2, 2), (8, 2), (16, 2), (4, 4)])
def test_auto_scale_lr_follows_the_global_batch(world_size, per_gpu_batch):
    cfg = apply_sync_bn(load('faster_rcnn_se_r50_fpn.py'))
    base_lr = cfg.optim_wrapper.optimizer.lr
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=base_lr)
    runner = types.SimpleNamespace(  # the attributes Runner.scale_lr reads
        world_size=world_size, param_schedulers=None,
        _train_dataloader=dict(cfg.train_dataloader, batch_size=per_gpu_batch),
        logger=types.SimpleNamespace(info=lambda msg: None))
    Runner.scale_lr(runner, OptimWrapper(optimizer), dict(cfg.auto_scale_lr, enable=True))
    expected = base_lr * world_size * per_gpu_batch / cfg.auto_scale_lr.base_batch_size
    assert optimizer.param_groups[0]['lr'] == pytest.approx(expected)
