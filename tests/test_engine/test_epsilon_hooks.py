"""epsilon-ResNet hooks: epsilon schedule, discard decisions, adaptive learning-rate rule."""
import itertools
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper, OptimWrapperDict

import resvariants.engine.epsilon_hooks as epsilon_hooks
from resvariants.engine.epsilon_hooks import (AdaptiveLRSchedule, EpsilonAdaptiveLRHook,
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
    assert clone.restarts == [3] and clone.state_dict() == dict(origin=3, last_count=9,
                                                                restarts=[3])


@pytest.mark.parametrize('name,bad', [
    ('schedule', ((1, 0.1), )), ('schedule', ()),
    ('restart_schedule', ((0, 0.1), (5, 0.2), (5, 0.3))),
    ('restart_schedule', ((0, 0.1), (5, 0.2), (3, 0.3))),
])
def test_schedule_must_start_at_0_and_increase(name, bad):
    with pytest.raises(ValueError) as error:
        AdaptiveLRSchedule(**{name: bad})
    assert str(error.value) == (f'{name} must be ((0, lr0), (epoch1, lr1), ...) with increasing '
                                f'epochs starting at 0, got {tuple(bad)}')


def test_schedule_edge_cases():
    rule = AdaptiveLRSchedule(schedule=((0, 0.5), ), restart_schedule=((0, 0.7), ))
    assert [rule.lr_at(e) for e in range(3)] == [0.5] * 3
    # a first count of 1 is a rise over the initial 0; rises in consecutive epochs restart each
    # time (min_gap 1); observe() is True exactly when the schedule restarts
    lrs, restarted = [], []
    for epoch, count in enumerate([1, 2, 2, 3, 3]):
        lrs.append(rule.lr_at(epoch))
        restarted.append(rule.observe(epoch, count))
    assert restarted == [True, True, False, True, False]
    assert rule.restarts == [1, 2, 4] and rule.origin == 4
    assert lrs == [0.5, 0.7, 0.7, 0.7, 0.7]


def _drive(hook, runner, counts):
    """Run the hook's epoch calls for one count per epoch; return the lr of every epoch."""
    lrs = []
    for epoch, count in enumerate(counts):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        lrs.append(runner.optim_wrapper.optimizer.param_groups[0]['lr'])
        runner.message_hub.update_info('epsilon/discarded_cnt', count)
        hook.after_train_epoch(runner)
    return lrs


def test_default_adaptive_lr_hook_follows_the_source_rule():
    # docs/architectures.md 2.4, driven through the hook with its defaults: 0.1, 0.01 @82,
    # 0.001 @123, 0.0002 @300; a rise of the count by >= 1 in epoch N - 1 restarts at N with
    # 0.1, 0.01 @N+41, 0.001 @N+61, 0.0002 @N+150, at most once per epoch
    model = PreActResNetCIFAR(depth=8, epsilon=2.5, base_channels=4)
    hook = EpsilonAdaptiveLRHook()
    runner = _runner(model, lr=0.1)
    hook.before_train(runner)
    lrs = _drive(hook, runner, [0] * 310)
    assert [lrs[e] for e in (0, 81, 82, 122, 123, 299, 300, 309)] == [
        0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 0.0002, 0.0002]
    assert hook.rule.restarts == []
    hook = EpsilonAdaptiveLRHook()
    runner = _runner(model, lr=0.1)
    hook.before_train(runner)
    lrs = _drive(hook, runner, [1, 2] + [2] * 88 + [3] * 160)
    assert hook.rule.restarts == [1, 2, 91]
    assert [lrs[e] for e in (0, 1, 2, 42, 43, 62, 63, 90)] == [
        0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    assert [lrs[e] for e in (91, 131, 132, 151, 152, 240, 241, 249)] == [
        0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 0.0002, 0.0002]


class _Visualizer:
    def __init__(self):
        self.points = []

    def add_scalars(self, scalars, step):
        self.points.append((step, dict(scalars)))


class _Logger:
    def __init__(self):
        self.messages = []

    def info(self, message):
        self.messages.append(message)


_HUB_IDS = itertools.count()


def _runner(model, lr=0.1, param_schedulers=None):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return SimpleNamespace(model=model, epoch=0, message_hub=MessageHub.get_instance(
        f'epsilon-test-{next(_HUB_IDS)}'), visualizer=_Visualizer(),
        logger=_Logger(), optim_wrapper=OptimWrapper(optimizer),
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


BLOCKS14 = ['layer1.0', 'layer1.1', 'layer2.0', 'layer2.1', 'layer3.0', 'layer3.1']
NO_GATES = ('the model has no strict-identity gates: epsilon hooks need an epsilon backbone '
            '(resvariants.EpsilonResNet, or resvariants.PreActResNetCIFAR with epsilon=...)')


def test_epsilon_hook_logs_records_and_restores_exactly():
    model = PreActResNetCIFAR(depth=14, epsilon=1e6, base_channels=4)
    runner = _runner(model)
    hook = EpsilonResNetHook(begin_epoch=1)
    hook.before_train(runner)
    gates = find_strict_identity_gates(model)
    x = torch.randn(4, 3, 16, 16)
    for epoch in range(3):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        _train_steps(model, x, steps=1)  # one step is enough to decide
        if epoch == 2:
            gates['layer2.1'].epsilon = 0.0
            model(x)
        hook.after_train_epoch(runner)
    assert runner.logger.messages == [
        'epsilon-ResNet epoch 1: 0/6 blocks discarded (0.00%), epsilon=0',
        'epsilon-ResNet epoch 2: 6/6 blocks discarded (100.00%), epsilon=1e+06; discarded: '
        + ', '.join(BLOCKS14),
        'epsilon-ResNet epoch 3: 5/6 blocks discarded (83.33%), epsilon=1e+06; discarded: '
        'layer1.0, layer1.1, layer2.0, layer3.0, layer3.1']
    history = [dict(epoch=1, discarded_cnt=0, discarded_ratio=0.0, epsilon=0.0),
               dict(epoch=2, discarded_cnt=6, discarded_ratio=1.0, epsilon=1e6),
               dict(epoch=3, discarded_cnt=5, discarded_ratio=5 / 6, epsilon=1e6)]
    assert hook.history == history
    assert runner.visualizer.points == [
        (h['epoch'], {'epsilon/discarded_cnt': h['discarded_cnt'],
                      'epsilon/discarded_ratio': h['discarded_ratio'],
                      'epsilon/epsilon': h['epsilon']}) for h in history]
    checkpoint = {}
    hook.before_save_checkpoint(runner, checkpoint)
    assert checkpoint == {'meta': {'epsilon_resnet': dict(
        blocks=BLOCKS14, discarded=[b for b in BLOCKS14 if b != 'layer2.1'], decided=True,
        epsilon={b: 1e6 for b in BLOCKS14}, begin_epoch=1, history=history)}}
    # restoring: the decisions, the history and the count the adaptive LR hook reads
    fresh = PreActResNetCIFAR(depth=14, epsilon=1e6, base_channels=4)
    hook2, runner2 = EpsilonResNetHook(), _runner(fresh)
    hook2.after_load_checkpoint(runner2, checkpoint)
    assert [g.discarded for g in find_strict_identity_gates(fresh).values()] == [
        True, True, True, False, True, True]
    assert hook2.history == history
    assert runner2.message_hub.get_info('epsilon/discarded_cnt') == 5
    # a checkpoint of a run without the hook changes nothing
    other = PreActResNetCIFAR(depth=14, epsilon=1e6, base_channels=4)
    hook3, runner3 = EpsilonResNetHook(), _runner(other)
    for empty in ({}, {'meta': {}}):
        hook3.after_load_checkpoint(runner3, empty)
    assert all(g.discarded is None for g in find_strict_identity_gates(other).values())
    assert hook3.history == [] and runner3.message_hub.get_info('epsilon/discarded_cnt') is None
    with pytest.raises(RuntimeError) as error:
        EpsilonResNetHook().before_save_checkpoint(_runner(torch.nn.Conv2d(3, 3, 1)), {})
    assert str(error.value) == NO_GATES


def test_epsilon_hook_arguments():
    model = PreActResNetCIFAR(depth=8, epsilon=2.5, base_channels=4)
    gates = find_strict_identity_gates(model)
    # defaults: from epoch 0 on, each gate keeps the epsilon it was built with
    runner = _runner(model)
    hook = EpsilonResNetHook()
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    assert [g.epsilon for g in gates.values()] == [2.5] * 3
    # a configured epsilon (0 and values below 1 are valid) replaces the built one
    for epsilon in (0.5, 0.0):
        hook = EpsilonResNetHook(epsilon=epsilon, begin_epoch=2)
        hook.before_train(runner)
        for epoch, expected in ((0, 0.0), (1, 0.0), (2, epsilon), (3, epsilon)):
            runner.epoch = epoch
            hook.before_train_epoch(runner)
            assert [g.epsilon for g in gates.values()] == [expected] * 3, (epsilon, epoch)
    for kwargs, message in ((dict(epsilon=-0.1), 'epsilon must be >= 0, got -0.1'),
                            (dict(begin_epoch=-1), 'begin_epoch must be >= 0, got -1')):
        with pytest.raises(ValueError) as error:
            EpsilonResNetHook(**kwargs)
        assert str(error.value) == message
    with pytest.raises(RuntimeError) as error:
        EpsilonResNetHook().before_train(_runner(torch.nn.Conv2d(3, 3, 1)))
    assert str(error.value) == NO_GATES


def test_epsilon_hook_keeps_its_targets_across_train_calls():
    # before_train again (a second runner.train()) must not take the scheduled 0 as the target
    model = PreActResNetCIFAR(depth=8, epsilon=2.5, base_channels=4)
    runner = _runner(model)
    hook = EpsilonResNetHook(begin_epoch=1)
    hook.before_train(runner)
    hook.before_train_epoch(runner)  # epoch 0: epsilon 0
    hook.before_train(runner)
    runner.epoch = 1
    hook.before_train_epoch(runner)
    assert [g.epsilon for g in find_strict_identity_gates(model).values()] == [2.5] * 3
    # another model (other gated blocks): new targets
    runner.model = PreActResNetCIFAR(depth=14, epsilon=1.5, base_channels=4)
    hook.before_train(runner)
    assert hook.target == {b: 1.5 for b in BLOCKS14}


def test_discard_decision_needs_a_step_and_sums_over_ranks(monkeypatch):
    model = PreActResNetCIFAR(depth=8, epsilon=1e6, base_channels=4)
    runner = _runner(model)
    hook = EpsilonResNetHook()
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    hook.after_train_epoch(runner)  # no training step in the epoch: nothing is discarded
    assert [g.discarded for g in find_strict_identity_gates(model).values()] == [False] * 3
    # a second rank (simulated by the reduction) saw the gate of layer2.0 open once
    other_rank = torch.tensor([[3, 3], [3, 2], [3, 3]])
    reductions = []

    def all_reduce(tensor, op='sum'):
        reductions.append(op)
        if op == 'sum':
            tensor += other_rank
        elif op == 'mean':
            tensor.copy_((tensor + other_rank) // 2)

    monkeypatch.setattr(epsilon_hooks, 'all_reduce', all_reduce)
    hook.before_train_epoch(runner)
    _train_steps(model, torch.randn(2, 3, 16, 16), steps=1)
    hook.after_train_epoch(runner)
    assert reductions == ['sum']
    assert [g.discarded for g in find_strict_identity_gates(model).values()] == [
        True, False, True]


def test_adaptive_lr_hook_keeps_group_ratios():
    model = PreActResNetCIFAR(depth=8, epsilon=2.5, base_channels=4)
    params = list(model.parameters())
    hook = EpsilonAdaptiveLRHook(schedule=((0, 0.1), (1, 0.01)))
    cases = [
        # (optimizer, lrs of the two groups at epochs 0 and 1)
        (torch.optim.SGD([dict(params=params[:2], lr=0.05), dict(params=params[2:])], lr=0.1),
         [[0.05, 0.1], [0.005, 0.01]]),  # lr_mult 0.5 on group 0 (base = defaults lr)
        (torch.optim.SGD([dict(params=params[:2], lr=0.1), dict(params=params[2:], lr=0.2)],
                         lr=0.0), [[0.1, 0.2], [0.01, 0.02]]),  # base lr 0: group 0 is the base
        (torch.optim.SGD(params, lr=0.0), [[0.1], [0.01]]),  # all 0: the schedule itself
    ]
    for optimizer, expected in cases:
        runner = _runner(model)
        runner.optim_wrapper = OptimWrapper(optimizer)
        hook.before_train(runner)
        lrs = []
        for epoch in range(2):
            runner.epoch = epoch
            hook.before_train_epoch(runner)
            lrs.append([g['lr'] for g in optimizer.param_groups])
        assert sum(lrs, []) == pytest.approx(sum(expected, []), rel=1e-12), expected
    # every optimizer of an OptimWrapperDict
    first = torch.optim.SGD(params[:2], lr=0.3)
    second = torch.optim.SGD(params[2:], lr=0.6)
    runner = _runner(model)
    runner.optim_wrapper = OptimWrapperDict(a=OptimWrapper(first), b=OptimWrapper(second))
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    assert (first.param_groups[0]['lr'], second.param_groups[0]['lr']) == (0.1, 0.1)


def test_adaptive_lr_hook_logs_plots_and_checkpoints():
    model = PreActResNetCIFAR(depth=8, epsilon=2.5, base_channels=4)
    hook = EpsilonAdaptiveLRHook(schedule=((0, 0.1), (2, 0.01)),
                                 restart_schedule=((0, 0.05), (1, 0.005)))
    runner = _runner(model)
    hook.before_train(runner)
    _drive(hook, runner, [0, 0, 1, 1])
    assert runner.visualizer.points == [
        (1, {'epsilon/lr': 0.1, 'epsilon/lr_restart': 0}),
        (2, {'epsilon/lr': 0.1, 'epsilon/lr_restart': 0}),
        (3, {'epsilon/lr': 0.01, 'epsilon/lr_restart': 1}),
        (4, {'epsilon/lr': 0.05, 'epsilon/lr_restart': 0})]
    assert runner.logger.messages == [
        'epsilon-ResNet: the discarded count rose to 1 in epoch 3; the learning-rate schedule '
        'restarts at epoch 4 (lr 0.05)']
    checkpoint = {}
    hook.before_save_checkpoint(runner, checkpoint)
    state = dict(origin=3, last_count=1, restarts=[3])
    assert checkpoint == {'meta': {'epsilon_adaptive_lr': state}}
    resumed = EpsilonAdaptiveLRHook(schedule=((0, 0.1), (2, 0.01)),
                                    restart_schedule=((0, 0.05), (1, 0.005)))
    resumed.after_load_checkpoint(runner, checkpoint)
    assert resumed.rule.state_dict() == state and resumed.rule.lr_at(4) == 0.005
    for empty in ({}, {'meta': {}}):
        untouched = EpsilonAdaptiveLRHook()
        untouched.after_load_checkpoint(runner, empty)
        assert untouched.rule.state_dict() == dict(origin=None, last_count=0, restarts=[])


def test_adaptive_lr_hook_refuses_schedulers_and_a_missing_count():
    model = PreActResNetCIFAR(depth=8, epsilon=2.5, base_channels=4)
    hook = EpsilonAdaptiveLRHook()
    for schedulers in (None, [], {'main': []}):
        hook.before_train(_runner(model, param_schedulers=schedulers))
    for schedulers in ([object()], {'main': [object()]}):
        with pytest.raises(ValueError) as error:
            hook.before_train(_runner(model, param_schedulers=schedulers))
        assert str(error.value) == (
            'EpsilonAdaptiveLRHook sets the learning rate itself: remove the learning-rate '
            'schedulers from param_scheduler (schedulers with another param_name, e.g. '
            'weight_decay, may stay)')
    # a scheduler of another parameter (the CIFAR recipe's weight-decay staircase) may stay
    from mmengine.optim import StepParamScheduler, StepLR
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=2e-4)
    wd = StepParamScheduler(optimizer, 'weight_decay', step_size=3, gamma=0.2, by_epoch=False)
    hook.before_train(_runner(model, param_schedulers=[wd]))
    hook.before_train(_runner(model, param_schedulers={'main': [wd]}))
    with pytest.raises(ValueError, match='learning-rate schedulers'):
        hook.before_train(_runner(model, param_schedulers=[wd, StepLR(optimizer, step_size=3)]))
    with pytest.raises(RuntimeError) as error:
        hook.after_train_epoch(_runner(model))
    assert str(error.value) == ('EpsilonAdaptiveLRHook needs EpsilonResNetHook in custom_hooks '
                                '(it supplies the discarded-block count)')


def test_hooks_build_from_configs_in_order():
    from mmengine.hooks import CheckpointHook, ParamSchedulerHook
    from mmengine.registry import HOOKS
    from mmengine.runner.priority import get_priority
    epsilon_hook = HOOKS.build(dict(type='resvariants.EpsilonResNetHook', epsilon=2.5,
                                    begin_epoch=150))
    lr_hook = HOOKS.build(dict(type='resvariants.EpsilonAdaptiveLRHook', min_rise=2))
    assert isinstance(epsilon_hook, EpsilonResNetHook) and epsilon_hook.begin_epoch == 150
    assert isinstance(lr_hook, EpsilonAdaptiveLRHook) and lr_hook.rule.min_rise == 2
    # the decisions (and the count) exist before the LR hook reads them and before checkpoints
    assert get_priority(EpsilonResNetHook.priority) < get_priority(EpsilonAdaptiveLRHook.priority)
    assert get_priority(EpsilonAdaptiveLRHook.priority) < get_priority(CheckpointHook.priority)
    assert get_priority(EpsilonAdaptiveLRHook.priority) <= get_priority(
        ParamSchedulerHook.priority)
