"""StagewiseDistillHook: phase switching by epoch / iteration, phase learning rates, resume."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.runner import IterBasedTrainLoop

from resvariants.engine import StagewiseDistillHook
from resvariants.models import StagewiseDistiller

HEAD = dict(type='LinearClsHead', num_classes=5, in_channels=64,
            loss=dict(type='CrossEntropyLoss'))


@pytest.fixture
def distiller():
    """A ResNet-20 teacher / plain ResNet-20 student pair (4 phases)."""
    teacher = dict(backbone=dict(type='resvariants.CifarResNet', depth=20),
                   neck=dict(type='GlobalAveragePooling'), head=HEAD)
    return StagewiseDistiller(backbone=dict(type='resvariants.PlainResNet', depth=20),
                              teacher=teacher, neck=dict(type='GlobalAveragePooling'),
                              head=HEAD)


def fake_runner(model, lr=0.5, epoch=0, max_epochs=8):
    optimizer = torch.optim.SGD(
        [dict(params=[p for n, p in model.named_parameters() if 'head' not in n]),
         dict(params=list(model.head.parameters()), lr=lr * 0.1)], lr=lr, momentum=0.9)
    for group in optimizer.param_groups:
        group['initial_lr'] = group['lr']
    return SimpleNamespace(model=model, optim_wrapper=OptimWrapper(optimizer), epoch=epoch,
                           iter=0, max_epochs=max_epochs, max_iters=100)


def test_hook_switches_phases_sets_rates_and_resets_momentum(distiller):
    hook = StagewiseDistillHook(phase_lengths=[2, 2, 1, 3], phase_lrs=[0.1, 0.2, 0.3, 0.001])
    runner = fake_runner(distiller)
    hook.before_train(runner)
    seen = []
    optimizer = runner.optim_wrapper.optimizer
    for epoch in range(8):
        runner.epoch = epoch
        optimizer.state[distiller.head.fc.weight]['momentum_buffer'] = torch.ones(1)
        hook.before_train_epoch(runner)
        seen.append((distiller.phase, round(optimizer.param_groups[0]['lr'], 6),
                     round(optimizer.param_groups[1]['lr'], 6), len(optimizer.state)))
        optimizer.param_groups[0]['lr'] *= 0.5  # a scheduler decaying inside the phase
    assert [s[0] for s in seen] == [1, 1, 2, 2, 3, 4, 4, 4]
    starts = {0: 0.1, 2: 0.2, 4: 0.3, 5: 0.001}
    for epoch, (phase, lr, head_lr, state) in enumerate(seen):
        if epoch in starts:  # phase start: new rate (lr_mult kept), fresh optimizer state
            assert lr == starts[epoch] and head_lr == round(starts[epoch] * 0.1, 6)
            assert state == 0
        else:  # inside a phase: the scheduler's rate and the momentum are kept
            assert lr == round(seen[epoch - 1][1] * 0.5, 6) and state == 1


def test_hook_resumed_inside_a_phase_keeps_the_optimizer(distiller):
    hook = StagewiseDistillHook(phase_lengths=[4, 4, 4, 4], phase_lrs=[0.1] * 3 + [0.001],
                                by_epoch=False)
    runner = fake_runner(distiller, lr=0.01)
    runner.iter = 6
    runner.optim_wrapper.optimizer.state[distiller.head.fc.weight]['x'] = 1
    hook.before_train(runner)
    hook.before_train_iter(runner, 0)
    assert distiller.phase == 2 and runner.optim_wrapper.optimizer.param_groups[0]['lr'] == 0.01
    assert len(runner.optim_wrapper.optimizer.state) == 1
    assert not any(p.requires_grad for p in distiller.backbone.layer1.parameters())


def test_hook_rejects_schedules_that_do_not_fit(distiller):
    with pytest.raises(ValueError, match='4 phases'):
        StagewiseDistillHook(phase_lengths=[1, 1, 1]).before_train(fake_runner(distiller))
    with pytest.raises(ValueError, match='max_epochs is 3'):
        StagewiseDistillHook(phase_lengths=[1, 1, 1, 1]).before_train(
            fake_runner(distiller, max_epochs=3))
    runner = fake_runner(distiller)
    runner.train_loop = object.__new__(IterBasedTrainLoop)
    with pytest.raises(ValueError, match='needs an epoch-based train loop'):
        StagewiseDistillHook(phase_lengths=[1, 1, 1, 1]).before_train(runner)
    with pytest.raises(ValueError, match='phase_lrs has 2 entries'):
        StagewiseDistillHook(phase_lengths=[1, 1, 1, 1], phase_lrs=[0.1, 0.1])
