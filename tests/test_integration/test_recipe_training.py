"""Real training steps of each recipe on cls_small (narrow models, a few iterations).

The cls_small demo configs inherit the ImageNet recipe configs unchanged (optimizer, loss,
batch augments, schedulers); only the width, the batch and the number of iterations shrink here.
"""
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

from .utils import DATA, REPO, python_tool

pytestmark = pytest.mark.integration
ITERS = 3
SPREAD = list(range(0, 2000, 2000 // (8 * ITERS)))[:8 * ITERS]  # 24 images of all 10 classes


def _train(config, tmp_path, **overrides):
    """Build the config's Runner in this process, train ITERS iterations, return the runner."""
    from mmengine.runner import Runner

    from resvariants.engine.config_loading import (apply_mmpretrain_loader_defaults,
                                                   register_scope)
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo', config))
    cfg.merge_from_dict({
        'train_dataloader.batch_size': 8, 'train_dataloader.num_workers': 0,
        'train_dataloader.dataset.indices': SPREAD, 'train_dataloader.dataset.data_root':
        osp.join(DATA, 'cls_small'), 'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.interval': 100, 'train_cfg.max_epochs': 1,
        'randomness.seed': 0, **overrides})
    cfg.train_dataloader.dataset.classes = osp.join(DATA, 'cls_small', 'meta', 'classes.txt')
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.work_dir = str(tmp_path)
    cfg.experiment_name = f'{osp.splitext(config)[0]}_{tmp_path.name}'
    apply_mmpretrain_loader_defaults(cfg)
    register_scope(cfg.default_scope)
    runner = Runner.from_cfg(cfg)
    before = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}
    runner.train()
    runner.weights_before = before
    return runner


def _losses(runner):
    return runner.message_hub.get_scalar('train/loss').data[0]


def _assert_trained(runner):
    losses = _losses(runner)
    assert len(losses) == ITERS and all(torch.isfinite(torch.tensor(losses)))
    changed = [k for k, v in runner.model.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, runner.weights_before[k])]
    assert any('backbone' in k for k in changed) and any('head' in k for k in changed)


NARROW_RESNET = {'model.backbone.base_channels': 8, 'model.head.in_channels': 256}


@pytest.mark.parametrize('mixing,probs', [('none', [0., 0.]), ('mixup', [1., 0.]),
                                          ('cutmix', [0., 1.])])
def test_tricks_recipe_trains(tmp_path, mixing, probs):
    runner = _train('resnet50_tricks_cls-small.py', tmp_path,
                    **NARROW_RESNET, **{'model.train_cfg.probs': probs})
    _assert_trained(runner)
    # per-iteration linear warmup over the first epoch (here 3 iterations), from 0.1 / 63
    lrs = runner.message_hub.get_scalar('train/lr').data[0]
    start = 0.1 / 63
    assert lrs == pytest.approx([start, start + (0.1 - start) / 2, 0.1])
    preprocessor = runner.model.data_preprocessor
    batch = next(iter(runner.train_dataloader))
    scores = torch.stack([s.gt_score for s in preprocessor(batch, True)['data_samples']])
    soft = ((scores > 0) & (scores < 1)).any().item()
    assert soft == (mixing != 'none')
    torch.testing.assert_close(scores.sum(1), torch.ones(len(scores)))


def test_ws_eshift_recipe_trains_with_the_regulariser(tmp_path):
    from mmcv.cnn.bricks.conv_ws import ConvWS2d

    from resvariants.engine.eshift_l2 import add_eshift_l2_gradients
    runner = _train('ws_resnet50_eshift_cls-small.py', tmp_path, **NARROW_RESNET)
    _assert_trained(runner)
    optimizer = runner.optim_wrapper.optimizer
    assert add_eshift_l2_gradients in optimizer._optimizer_step_pre_hooks.values()
    backbone = runner.model.backbone
    tagged = {id(p) for g in optimizer.param_groups if g.get('eshift_lambda') == 1e-4
              for p in g['params']}
    convs = [m for m in backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(isinstance(m, ConvWS2d) and id(m.weight) in tagged for m in convs)


def test_shufflenet_mobile_recipe_trains(tmp_path):
    runner = _train('shufflenetv2_1x_cls-small.py', tmp_path,
                    **{'model.backbone.widen_factor': 0.5})
    _assert_trained(runner)
    groups = runner.optim_wrapper.optimizer.param_groups
    assert {g['weight_decay'] for g in groups} == {0., 4e-5}


def test_oct_resnet_trains(tmp_path):
    runner = _train('oct_resnet50_cls-small.py', tmp_path, **NARROW_RESNET)
    _assert_trained(runner)
    assert type(runner.model.backbone).__name__ == 'OctResNet'


def test_tricks_recipe_with_cutmix_from_the_command_line(tmp_path):
    code, out = python_tool(
        'tools/train.py', 'configs/demo/resnet50_tricks_cls-small.py', '--work-dir',
        str(tmp_path), '--cfg-options', 'model.train_cfg.probs=[0.0,1.0]',
        'model.backbone.base_channels=8', 'model.head.in_channels=256',
        'train_dataloader.batch_size=8', 'train_dataloader.num_workers=0',
        'train_dataloader.dataset.indices=16', 'val_dataloader.num_workers=0',
        'val_dataloader.dataset.indices=16', 'train_cfg.max_epochs=1',
        'default_hooks.logger.interval=1', timeout=600)
    assert code == 0, out[-4000:]
    losses = re.findall(r'Epoch\(train\)\s+\[1\]\[\s*\d+/2\].*? loss: ([0-9.]+)', out)
    assert len(losses) == 2, out[-3000:]
    assert re.search(r'accuracy/top1: [0-9.]+', out), out[-3000:]
    assert osp.isfile(osp.join(tmp_path, 'epoch_1.pth'))
