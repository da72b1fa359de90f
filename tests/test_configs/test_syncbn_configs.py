"""SyncBN detection configs (configs/syncbn/): one per zoo config, differing only in the
backbone norm (SyncBN, trained) and the lr-rescale-on-resume hook, building real SyncBatchNorm
layers, and an lr that auto_scale_lr scales with the global batch for any world size."""
import os.path as osp
import sys
import types

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from resvariants.engine.cli import _register_scope

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tools', 'misc'))
import make_syncbn_configs as gen  # noqa: E402

ZOO = gen.zoo_configs()
SYNCBN_NORM = dict(type='SyncBN', requires_grad=True)


def load(name, folder='configs'):
    return Config.fromfile(osp.join(REPO, folder, name))


def test_every_zoo_config_has_an_up_to_date_syncbn_variant():
    assert len(ZOO) >= 3 * 2 * 8  # three detectors, r50/r101, the zoo's variants
    assert gen.main(['--check']) == 0, 'run python tools/misc/make_syncbn_configs.py'
    for name in ZOO:
        assert osp.isfile(osp.join(REPO, 'configs', 'syncbn', gen.syncbn_name(name)))


# the generator check above proves every file is the template; one per detector suffices here
@pytest.mark.parametrize('zoo_name', ['faster_rcnn_se_r50_fpn.py', 'mask_rcnn_bam_r101_fpn.py',
                                      'cascade_rcnn_oct_r50_fpn.py'])
def test_syncbn_config_changes_only_the_backbone_norm(zoo_name):
    zoo = load(zoo_name).to_dict()
    syncbn = load(gen.syncbn_name(zoo_name), 'configs/syncbn').to_dict()
    backbone = syncbn['model']['backbone']
    assert backbone['norm_cfg'] == SYNCBN_NORM and backbone['norm_eval'] is False
    assert zoo['model']['backbone']['norm_eval'] is True
    assert 'custom_hooks' not in zoo
    assert syncbn.pop('custom_hooks') == [dict(type='resvariants.GlobalBatchLrRescaleHook')]
    for cfg in (zoo, syncbn):
        del cfg['model']['backbone']['norm_cfg'], cfg['model']['backbone']['norm_eval']
    assert syncbn == zoo
    # the lr of the zoo recipe (0.02) is for 8 GPUs x 2 images
    assert syncbn['auto_scale_lr'] == dict(enable=False, base_batch_size=16)
    assert syncbn['train_dataloader']['batch_size'] * 8 == 16


# one variant per way of building norms: the trunk (plain; se, cbam, gc, sge, srm, ws alike), SK's
# extra branch norm, Oct-ResNet's OctaveNorm, ED-ResNet's own blocks, attention-owned BN (BAM)
@pytest.mark.parametrize('variant', ['', 'sk_', 'oct_', 'ed_', 'bam_'])
def test_syncbn_backbone_builds_synchronized_norms(variant):
    name = f'faster_rcnn_{variant}r50_syncbn_fpn.py'
    cfg = load(name, 'configs/syncbn')
    cfg.model.backbone.init_cfg = None
    _register_scope('mmdet')
    from mmdet.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmdet'):
        backbone = MODELS.build(cfg.model.backbone)
    backbone.train()
    norms = {n: m for n, m in backbone.named_modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    # BN created from norm_cfg is SyncBN; only the attention modules' own BN layers are not
    plain = [n for n, m in norms.items() if not isinstance(m, torch.nn.SyncBatchNorm)]
    attention_owned = [n for n in plain if not any(
        n.endswith(s) for s in ('.bn1', '.bn2', '.bn3', 'norm1', 'norm2', 'norm3', 'norm2g',
                                'downsample.1', '.norm_h', '.norm_l'))]
    assert plain == attention_owned, plain
    assert sum(isinstance(m, torch.nn.SyncBatchNorm) for m in norms.values()) >= 53
    # trained: beyond the frozen stem and stage 1, SyncBN layers are in train mode
    layer4 = [m for n, m in norms.items() if n.startswith('layer4')
              and isinstance(m, torch.nn.SyncBatchNorm)]
    assert layer4 and all(m.training and m.weight.requires_grad for m in layer4)
    assert not backbone.layer1[0].training  # frozen_stages=1 kept


@pytest.mark.parametrize('world_size,per_gpu_batch', [(1, 2), (2, 2), (8, 2), (16, 2), (4, 4)])
def test_auto_scale_lr_follows_the_global_batch(world_size, per_gpu_batch):
    cfg = load('faster_rcnn_se_r50_syncbn_fpn.py', 'configs/syncbn')
    base_lr = cfg.optim_wrapper.optimizer.lr
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=base_lr)
    runner = types.SimpleNamespace(  # the attributes Runner.scale_lr reads
        world_size=world_size, param_schedulers=None,
        _train_dataloader=dict(cfg.train_dataloader, batch_size=per_gpu_batch),
        logger=types.SimpleNamespace(info=lambda msg: None))
    Runner.scale_lr(runner, OptimWrapper(optimizer), dict(cfg.auto_scale_lr, enable=True))
    expected = base_lr * world_size * per_gpu_batch / cfg.auto_scale_lr.base_batch_size
    assert optimizer.param_groups[0]['lr'] == pytest.approx(expected)
