"""epsilon-ResNet hooks: epsilon schedule, discard decisions, adaptive learning-rate rule."""
import itertools
import logging
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper

from resvariants.engine.epsilon_hooks import (SOURCE_RESTART_SCHEDULE, SOURCE_SCHEDULE,
                                              AdaptiveLRSchedule, EpsilonAdaptiveLRHook,
                                              EpsilonResNetHook)
from resvariants.models import PreActResNetCIFAR
from resvariants.models.backbones.strict_identity import find_strict_identity_gates


def _replay(rule, counts):
    """Feed one count per epoch; return the lr used in each epoch."""
    lrs = []
    for epoch, count in enumerate(counts):
        lrs.append(rule.lr_at(epoch))
        rule.observe(epoch, count)
    return lrs


def test_schedule_without_discards_is_the_base_schedule():
    rule = AdaptiveLRSchedule()
    lrs = _replay(rule, [0] * 320)
    assert rule.restarts == []
    assert lrs[0] == lrs[81] == 0.1
    assert lrs[82] == lrs[122] == 0.01
    assert lrs[123] == lrs[299] == 0.001
    assert lrs[300] == 0.0002


def test_schedule_restarts_when_the_count_rises():
    # counts per epoch: 0 until epoch 99, 3 from epoch 100, 2 at 120, 3 again at 121, then flat
    counts = [0] * 100 + [3] * 20 + [2] + [3] * 250
    rule = AdaptiveLRSchedule()
    lrs = _replay(rule, counts)
    assert rule.restarts == [101, 122]  # the epoch after each rise (a fall does not restart)
    assert lrs[82] == lrs[100] == 0.01   # base schedule until the first rise
    assert lrs[101] == lrs[121] == 0.1   # restarted at 101 (0.01 would come at 142)
    assert lrs[122] == lrs[162] == 0.1   # restarted again at 122
    assert lrs[163] == lrs[182] == 0.01  # 122 + 41
    assert lrs[183] == lrs[271] == 0.001  # 122 + 61
    assert lrs[272] == lrs[-1] == 0.0002  # 122 + 150


def test_schedule_rise_threshold_gap_and_state():
    rule = AdaptiveLRSchedule(schedule=((0, 1.0), (5, 0.5)), restart_schedule=((0, 2.0),
                                                                              (2, 0.2)),
                              min_rise=2, min_gap=3)
    lrs = _replay(rule, [1, 2, 4, 6, 9, 9, 9])
    # +1 at epoch 1 is below min_rise; +2 at epoch 2 restarts at 3; the rises at epochs 3 and
    # 4 would restart at 4 and 5, less than min_gap=3 epochs after 3
    assert rule.restarts == [3]
    assert lrs == [1.0, 1.0, 1.0, 2.0, 2.0, 0.2, 0.2]
    clone = AdaptiveLRSchedule(schedule=((0, 1.0), (5, 0.5)),
                               restart_schedule=((0, 2.0), (2, 0.2)))
    clone.load_state_dict(rule.state_dict())
    assert [clone.lr_at(e) for e in range(8)] == [rule.lr_at(e) for e in range(8)]
    with pytest.raises(ValueError, match='increasing'):
        AdaptiveLRSchedule(schedule=((1, 0.1), ))
    assert SOURCE_SCHEDULE[1] == (82, 0.01) and SOURCE_RESTART_SCHEDULE[3] == (150, 0.0002)


class _Visualizer:
    def __init__(self):
        self.points = []

    def add_scalars(self, scalars, step):
        self.points.append((step, dict(scalars)))


_HUB_IDS = itertools.count()


def _runner(model, lr=0.1, param_schedulers=None):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return SimpleNamespace(model=model, epoch=0, message_hub=MessageHub.get_instance(
        f'epsilon-test-{next(_HUB_IDS)}'), visualizer=_Visualizer(),
        logger=logging.getLogger('epsilon-test'), optim_wrapper=OptimWrapper(optimizer),
        param_schedulers=param_schedulers)


def _train_steps(model, x, steps=2):
    model.train()
    for _ in range(steps):
        model(x)


def test_epsilon_schedule_and_discard_decisions():
    model = PreActResNetCIFAR(depth=14, epsilon=1e6, base_channels=4)
    runner = _runner(model)
    hook = EpsilonResNetHook(begin_epoch=1)
    hook.before_train(runner)
    gates = find_strict_identity_gates(model)
    x = torch.randn(4, 3, 16, 16)
    hook.before_train_epoch(runner)  # epoch 0: epsilon 0, nothing discarded
    assert all(g.epsilon == 0.0 for g in gates.values())
    _train_steps(model, x)
    hook.after_train_epoch(runner)
    assert runner.message_hub.get_info('epsilon/discarded_cnt') == 0
    runner.epoch = 1  # epoch 1: epsilon 1e6 closes every gate
    hook.before_train_epoch(runner)
    assert all(g.epsilon == 1e6 for g in gates.values())
    _train_steps(model, x)
    hook.after_train_epoch(runner)
    assert runner.message_hub.get_info('epsilon/discarded_cnt') == len(gates) == 6
    assert [p[1]['epsilon/discarded_cnt'] for p in runner.visualizer.points] == [0, 6]
    assert runner.visualizer.points[-1] == (2, {'epsilon/discarded_cnt': 6,
                                                'epsilon/discarded_ratio': 1.0,
                                                'epsilon/epsilon': 1e6})
    # a block whose gate opened on one step of the epoch is kept
    runner.epoch = 2
    hook.before_train_epoch(runner)
    _train_steps(model, x)
    gates['layer2.1'].epsilon = 0.0
    model(x)
    hook.after_train_epoch(runner)
    assert [n for n, g in gates.items() if not g.discarded] == ['layer2.1']
    checkpoint = {'meta': {}}
    hook.before_save_checkpoint(runner, checkpoint)
    record = checkpoint['meta']['epsilon_resnet']
    assert record['decided'] and 'layer2.1' not in record['discarded']
    assert [h['discarded_cnt'] for h in record['history']] == [0, 6, 5]
    # a fresh model (test run / resume) gets the decisions back
    fresh = PreActResNetCIFAR(depth=14, epsilon=1e6, base_channels=4)
    hook2 = EpsilonResNetHook(begin_epoch=1)
    runner2 = _runner(fresh)
    hook2.after_load_checkpoint(runner2, checkpoint)
    assert {n: g.discarded for n, g in find_strict_identity_gates(fresh).items()} == \
        {n: g.discarded for n, g in gates.items()}
    assert runner2.message_hub.get_info('epsilon/discarded_cnt') == 5
    with pytest.raises(RuntimeError, match='no strict-identity gates'):
        EpsilonResNetHook().before_train(_runner(torch.nn.Conv2d(3, 3, 1)))


def test_adaptive_lr_hook_sets_group_lrs_and_checks_config():
    model = PreActResNetCIFAR(depth=8, epsilon=2.5, base_channels=4)
    runner = _runner(model, lr=0.2)
    runner.optim_wrapper.optimizer.param_groups[0]['lr'] = 0.2
    hook = EpsilonAdaptiveLRHook(schedule=((0, 0.1), (2, 0.01)),
                                 restart_schedule=((0, 0.05), (1, 0.005)))
    hook.before_train(runner)
    lrs = []
    for epoch, count in enumerate([0, 0, 1, 1]):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        lrs.append(runner.optim_wrapper.optimizer.param_groups[0]['lr'])
        runner.message_hub.update_info('epsilon/discarded_cnt', count)
        hook.after_train_epoch(runner)
    assert lrs == [0.1, 0.1, 0.01, 0.05]
    assert [p[1]['epsilon/lr_restart'] for p in runner.visualizer.points] == [0, 0, 1, 0]
    checkpoint = {'meta': {}}
    hook.before_save_checkpoint(runner, checkpoint)
    assert checkpoint['meta']['epsilon_adaptive_lr']['origin'] == 3
    with pytest.raises(ValueError, match='param_scheduler'):
        hook.before_train(_runner(model, param_schedulers=[object()]))
    lonely = _runner(model)
    with pytest.raises(RuntimeError, match='EpsilonResNetHook'):
        EpsilonAdaptiveLRHook().after_train_epoch(lonely)
