"""RankSyncCheckHook (ranks step together, same weights) and GlobalBatchLrRescaleHook (lr
follows the global batch when a run is resumed on another world size), without processes;
tests/test_integration/test_multinode.py runs both in a real 2-node training."""
import json
import types

import pytest
import torch
from mmengine.config import Config
from mmengine.optim.scheduler import LinearLR, MultiStepLR
from mmengine.registry import DefaultScope

from resvariants.engine.distributed_hooks import (GlobalBatchLrRescaleHook, RankSyncCheckHook,
                                                  global_batch_size, parameter_fingerprint)
from resvariants.registry import HOOKS


def rank(r, it, fingerprint, loss=1.0):
    return dict(rank=r, iter=it, loss=loss, fingerprint=fingerprint)


def test_hooks_are_registered_in_our_scope():
    # whatever default scope earlier tests left behind: our scope, and the prefixed name
    with DefaultScope.overwrite_default_scope('resvariants'):
        assert isinstance(HOOKS.build(dict(type='RankSyncCheckHook')), RankSyncCheckHook)
        assert isinstance(HOOKS.build(dict(type='GlobalBatchLrRescaleHook')),
                          GlobalBatchLrRescaleHook)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        assert isinstance(HOOKS.build(dict(type='resvariants.RankSyncCheckHook')),
                          RankSyncCheckHook)


def test_ranks_in_step_pass_and_diverged_ranks_are_named():
    hook = RankSyncCheckHook(rtol=1e-6)
    hook._check([rank(0, 5, 10.0), rank(1, 5, 10.0 + 1e-7)])
    with pytest.raises(RuntimeError, match=r'ranks \[2\] are not at iteration 5'):
        hook._check([rank(0, 5, 10.0), rank(1, 5, 10.0), rank(2, 4, 10.0)])
    with pytest.raises(RuntimeError, match=r'parameters of ranks \[1\] differ'):
        hook._check([rank(0, 5, 10.0), rank(1, 5, 10.1)])


@pytest.mark.parametrize('kwargs', [dict(interval=0), dict(rtol=-1)])
def test_bad_arguments_are_rejected(kwargs):
    with pytest.raises(ValueError):
        RankSyncCheckHook(**kwargs)


def test_single_process_records_loss_and_fingerprint(tmp_path):
    model = torch.nn.Linear(3, 2)
    hook = RankSyncCheckHook(interval=2)
    runner = types.SimpleNamespace(model=model, work_dir=str(tmp_path), iter=0)
    for it in range(4):
        runner.iter = it
        hook.after_train_iter(runner, it, outputs=dict(loss=torch.tensor(0.5 + it)))
    lines = [json.loads(x) for x in (tmp_path / 'rank_sync.jsonl').read_text().splitlines()]
    assert [line['iter'] for line in lines] == [2, 4]  # every 2nd iteration
    assert lines[1]['world_size'] == 1
    assert lines[1]['ranks'] == [dict(rank=0, iter=4, loss=3.5,
                                      fingerprint=parameter_fingerprint(model))]
    expected = sum(p.double().sum().item() for p in model.parameters())
    assert parameter_fingerprint(model) == pytest.approx(expected)


def optimizer_and_schedulers(lr):
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=lr, momentum=0.9)
    schedulers = [LinearLR(optimizer, start_factor=0.5, by_epoch=False, begin=0, end=4),
                  MultiStepLR(optimizer, milestones=[6], by_epoch=False)]
    return optimizer, schedulers


def fake_runner(world_size, batch_size, enable, resume=True):
    return types.SimpleNamespace(
        world_size=world_size, train_dataloader=types.SimpleNamespace(batch_size=batch_size),
        cfg=Config(dict(resume=resume, auto_scale_lr=dict(enable=enable, base_batch_size=16))))


def trained_checkpoint(world_size=8, batch_size=2, steps=2):
    """Checkpoint of a run at lr 0.02 x 16/16, 2 warm-up steps in, saved by the hook."""
    optimizer, schedulers = optimizer_and_schedulers(0.02)
    for _ in range(steps):
        optimizer.step()
        for s in schedulers:
            s.step()
    checkpoint = dict(meta=dict(iter=steps), optimizer=optimizer.state_dict(),
                      param_schedulers=[s.state_dict() for s in schedulers])
    GlobalBatchLrRescaleHook().before_save_checkpoint(fake_runner(world_size, batch_size, True),
                                                      checkpoint)
    return checkpoint, optimizer.param_groups[0]['lr']


def resume(checkpoint):
    """What Runner.resume does after the hook: load the states, then keep stepping."""
    optimizer, schedulers = optimizer_and_schedulers(123.0)  # built lr is overwritten
    optimizer.load_state_dict(checkpoint['optimizer'])
    for s, state in zip(schedulers, checkpoint['param_schedulers']):
        s.load_state_dict(state)
    lrs = [optimizer.param_groups[0]['lr']]
    for _ in range(6):
        optimizer.step()
        for s in schedulers:
            s.step()
        lrs.append(optimizer.param_groups[0]['lr'])
    return lrs


def test_checkpoint_meta_records_the_global_batch():
    checkpoint, _ = trained_checkpoint(world_size=8, batch_size=2)
    assert checkpoint['meta']['global_batch_size'] == 16
    assert global_batch_size(fake_runner(3, 4, False)) == 12


@pytest.mark.parametrize('world_size,batch_size', [(4, 2), (16, 2), (2, 4)])
def test_resume_on_another_world_size_scales_restored_lrs(world_size, batch_size):
    reference, lr_at_save = trained_checkpoint()
    expected = [lr * world_size * batch_size / 16 for lr in resume(reference)]
    checkpoint, _ = trained_checkpoint()
    GlobalBatchLrRescaleHook().after_load_checkpoint(
        fake_runner(world_size, batch_size, enable=True), checkpoint)
    lrs = resume(checkpoint)
    assert lrs == pytest.approx(expected)
    assert lrs[0] == pytest.approx(lr_at_save * world_size * batch_size / 16)
    assert lrs[-1] == pytest.approx(0.002 * world_size * batch_size / 16)  # after x0.1 at 6


def test_loading_weights_only_does_not_touch_the_train_loader():
    checkpoint, _ = trained_checkpoint()
    before = resume(checkpoint)
    runner = types.SimpleNamespace(cfg=Config(dict(resume=False)))  # tools/test.py, load_from
    GlobalBatchLrRescaleHook().after_load_checkpoint(runner, checkpoint)  # no train_dataloader
    assert resume(checkpoint) == before


@pytest.mark.parametrize('runner,meta', [(fake_runner(4, 2, enable=False), True),
                                         (fake_runner(8, 2, enable=True), True),
                                         (fake_runner(4, 2, enable=True), False)])
def test_lr_kept_without_auto_scale_same_batch_or_old_checkpoint(runner, meta):
    checkpoint, _ = trained_checkpoint()
    if not meta:
        del checkpoint['meta']['global_batch_size']
    before = resume(checkpoint)
    GlobalBatchLrRescaleHook().after_load_checkpoint(runner, checkpoint)
    assert resume(checkpoint) == before
