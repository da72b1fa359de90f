"""mmengine hooks of epsilon-ResNet: epsilon schedule, discard bookkeeping, adaptive LR.

* :class:`EpsilonResNetHook` sets the gates' epsilon every epoch (0 before ``begin_epoch``,
  then the configured value: the source's CIFAR schedule is 0 for epochs 0-149, then 2.5),
  decides at each epoch end which blocks are discarded (gate 0 on every training step of the
  epoch, summed over all ranks), logs the count and ratio to the logger and to every
  visualiser backend (``epsilon/discarded_cnt``, ``epsilon/discarded_ratio``,
  ``epsilon/epsilon``, one point per epoch), and stores the decisions in
  ``checkpoint['meta']['epsilon_resnet']``, from where test runs and the compact export
  restore them.
* :class:`EpsilonAdaptiveLRHook` is the source's CIFAR learning-rate rule (docs/architectures.md
  2.4): when the discarded count rose by at least one over the last epoch, the schedule
  restarts from the next epoch (0.1, 0.01 at +41, 0.001 at +61, 0.0002 at +150); otherwise
  the current schedule goes on (initially 0.1, 0.01 at 82, 0.001 at 123, 0.0002 at 300). It
  logs ``epsilon/lr`` per epoch; ``tools/analysis/plot_epsilon.py`` plots both curves.
"""
import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict

from resvariants.registry import HOOKS

DISCARDED_CNT_KEY = 'epsilon/discarded_cnt'
META_KEY = 'epsilon_resnet'
SOURCE_SCHEDULE = ((0, 0.1), (82, 0.01), (123, 0.001), (300, 0.0002))
SOURCE_RESTART_SCHEDULE = ((0, 0.1), (41, 0.01), (61, 0.001), (150, 0.0002))


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


def _model_gates(runner):
    from resvariants.models.backbones.strict_identity import find_strict_identity_gates
    gates = find_strict_identity_gates(_unwrap(runner.model))
    if not gates:
        raise RuntimeError('the model has no strict-identity gates: epsilon hooks need an '
                           'epsilon backbone (resvariants.EpsilonResNet, or '
                           'resvariants.PreActResNetCIFAR with epsilon=...)')
    return gates


@HOOKS.register_module()
class EpsilonResNetHook(Hook):
    """Schedules epsilon and records, logs and checkpoints the discarded blocks.

    Args:
        epsilon (float | None): Value from ``begin_epoch`` on; None keeps the value each gate
            was built with (the backbone's ``epsilon``). Defaults to None.
        begin_epoch (int): Epochs (0-based) before it run with epsilon 0, i.e. no discarding.
            Defaults to 0.
    """

    priority = 'ABOVE_NORMAL'  # decisions must exist before the LR and checkpoint hooks run

    def __init__(self, epsilon=None, begin_epoch=0):
        if epsilon is not None and epsilon < 0:
            raise ValueError(f'epsilon must be >= 0, got {epsilon}')
        if begin_epoch < 0:
            raise ValueError(f'begin_epoch must be >= 0, got {begin_epoch}')
        self.epsilon = epsilon
        self.begin_epoch = begin_epoch
        self.target = None  # block name -> epsilon from begin_epoch on
        self.history = []   # one dict per finished epoch

    def epsilon_at(self, epoch, configured):
        return 0.0 if epoch < self.begin_epoch else configured

    def before_train(self, runner):
        gates = _model_gates(runner)
        if self.target is None or set(self.target) != set(gates):
            self.target = {name: (self.epsilon if self.epsilon is not None else gate.epsilon)
                           for name, gate in gates.items()}

    def before_train_epoch(self, runner):
        for name, gate in _model_gates(runner).items():
            gate.epsilon = self.epsilon_at(runner.epoch, self.target[name])
            gate.reset_statistics()

    def after_train_epoch(self, runner):
        gates = _model_gates(runner)
        counts = torch.stack([torch.stack([g.steps_seen, g.steps_discarded])
                              for g in gates.values()])
        all_reduce(counts, op='sum')
        counts = counts.cpu().tolist()
        discarded = []
        for (name, gate), (seen, zero) in zip(gates.items(), counts):
            gate.discarded = seen > 0 and zero == seen
            if gate.discarded:
                discarded.append(name)
        epsilon = max(gate.epsilon for gate in gates.values())
        entry = dict(epoch=runner.epoch + 1, discarded_cnt=len(discarded),
                     discarded_ratio=len(discarded) / len(gates), epsilon=epsilon)
        self.history.append(entry)
        runner.message_hub.update_info(DISCARDED_CNT_KEY, len(discarded))
        runner.visualizer.add_scalars(
            {'epsilon/discarded_cnt': entry['discarded_cnt'],
             'epsilon/discarded_ratio': entry['discarded_ratio'],
             'epsilon/epsilon': epsilon}, step=entry['epoch'])
        runner.logger.info(
            f'epsilon-ResNet epoch {entry["epoch"]}: {len(discarded)}/{len(gates)} blocks '
            f'discarded ({entry["discarded_ratio"]:.2%}), epsilon={epsilon:g}'
            + (f'; discarded: {", ".join(discarded)}' if discarded else ''))

    def before_save_checkpoint(self, runner, checkpoint):
        from resvariants.models.backbones.strict_identity import discard_record
        _model_gates(runner)
        record = discard_record(_unwrap(runner.model))
        record.update(epsilon=dict(self.target or {}) or None, begin_epoch=self.begin_epoch,
                      history=list(self.history))
        checkpoint.setdefault('meta', {})[META_KEY] = record

    def after_load_checkpoint(self, runner, checkpoint):
        record = checkpoint.get('meta', {}).get(META_KEY)
        if record is None:
            return
        from resvariants.models.backbones.strict_identity import apply_discard_record
        apply_discard_record(_unwrap(runner.model), record)
        self.history = list(record.get('history', []))
        if self.history:
            runner.message_hub.update_info(DISCARDED_CNT_KEY,
                                           self.history[-1]['discarded_cnt'])


class AdaptiveLRSchedule:
    """The source's adaptive rule as plain logic (no runner), epochs 0-based.

    ``lr_at(e)`` follows ``schedule`` until the first restart, then ``restart_schedule``
    relative to the latest restart epoch. ``observe(e, count)`` is called after epoch ``e``
    with its discarded-block count; a rise of at least ``min_rise`` over the previous epoch's
    count (0 before the first epoch) restarts the schedule at epoch ``e + 1``, provided
    ``min_gap`` epochs passed since the previous restart.
    """

    def __init__(self, schedule=SOURCE_SCHEDULE, restart_schedule=SOURCE_RESTART_SCHEDULE,
                 min_rise=1, min_gap=1):
        self.schedule = self._check(schedule, 'schedule')
        self.restart_schedule = self._check(restart_schedule, 'restart_schedule')
        self.min_rise, self.min_gap = min_rise, min_gap
        self.origin = None       # epoch of the latest restart
        self.last_count = 0
        self.restarts = []

    @staticmethod
    def _check(schedule, name):
        schedule = tuple((int(e), float(lr)) for e, lr in schedule)
        epochs = [e for e, _ in schedule]
        if not schedule or epochs[0] != 0 or epochs != sorted(set(epochs)):
            raise ValueError(f'{name} must be ((0, lr0), (epoch1, lr1), ...) with increasing '
                             f'epochs starting at 0, got {schedule}')
        return schedule

    @staticmethod
    def _lookup(schedule, epoch):
        """The lr of the latest step started by ``epoch`` >= 0 (every schedule starts at 0)."""
        return next(value for start, value in reversed(schedule) if epoch >= start)

    def lr_at(self, epoch):
        if self.origin is None or epoch < self.origin:
            return self._lookup(self.schedule, epoch)
        return self._lookup(self.restart_schedule, epoch - self.origin)

    def observe(self, epoch, count):
        """Record epoch ``epoch``'s count; return True when the schedule restarts."""
        rose = count >= self.last_count + self.min_rise
        self.last_count = count
        start = epoch + 1
        if rose and (self.origin is None or start - self.origin >= self.min_gap):
            self.origin = start
            self.restarts.append(start)
            return True
        return False

    def state_dict(self):
        return dict(origin=self.origin, last_count=self.last_count,
                    restarts=list(self.restarts))

    def load_state_dict(self, state):
        self.origin = state['origin']
        self.last_count = state['last_count']
        self.restarts = list(state.get('restarts', []))


@HOOKS.register_module()
class EpsilonAdaptiveLRHook(Hook):
    """Drives the learning rate by the discarded-block count (source's CIFAR rule).

    Needs ``EpsilonResNetHook`` (which supplies the count) and no learning-rate
    ``param_scheduler`` (schedulers of other parameters, such as the CIFAR recipe's
    ``param_name='weight_decay'`` staircase, are fine). The
    schedule values are absolute learning rates (``auto_scale_lr`` does not rescale them); every
    parameter group keeps its ratio to the optimizer's base lr (``paramwise_cfg`` lr_mult).

    Args:
        schedule (tuple[tuple[int, float]]): ``(epoch, lr)`` steps before any restart.
        restart_schedule (tuple[tuple[int, float]]): ``(epochs after the restart, lr)`` steps.
        min_rise (int): Count increase over one epoch that restarts. Defaults to 1.
        min_gap (int): Epochs between two restarts, at least. Defaults to 1.
    """

    priority = 'NORMAL'

    def __init__(self, schedule=SOURCE_SCHEDULE, restart_schedule=SOURCE_RESTART_SCHEDULE,
                 min_rise=1, min_gap=1):
        self.rule = AdaptiveLRSchedule(schedule, restart_schedule, min_rise, min_gap)

    @staticmethod
    def _param_groups(runner):
        wrapper = runner.optim_wrapper
        wrappers = wrapper.values() if isinstance(wrapper, OptimWrapperDict) else [wrapper]
        for w in wrappers:
            base = w.optimizer.defaults.get('lr') or w.optimizer.param_groups[0]['lr']
            for group in w.optimizer.param_groups:
                group.setdefault('epsilon_lr_scale', group['lr'] / base if base else 1.0)
                yield group

    def before_train(self, runner):
        schedulers = runner.param_schedulers or []
        if isinstance(schedulers, dict):
            schedulers = [s for group in schedulers.values() for s in group]
        if any(getattr(s, 'param_name', 'lr') == 'lr' for s in schedulers):
            raise ValueError('EpsilonAdaptiveLRHook sets the learning rate itself: remove the '
                             'learning-rate schedulers from param_scheduler (schedulers with '
                             'another param_name, e.g. weight_decay, may stay)')
        list(self._param_groups(runner))

    def before_train_epoch(self, runner):
        lr = self.rule.lr_at(runner.epoch)
        for group in self._param_groups(runner):
            group['lr'] = lr * group['epsilon_lr_scale']

    def after_train_epoch(self, runner):
        count = runner.message_hub.get_info(DISCARDED_CNT_KEY)
        if count is None:
            raise RuntimeError('EpsilonAdaptiveLRHook needs EpsilonResNetHook in custom_hooks '
                               '(it supplies the discarded-block count)')
        lr = self.rule.lr_at(runner.epoch)
        restarted = self.rule.observe(runner.epoch, count)
        runner.visualizer.add_scalars({'epsilon/lr': lr, 'epsilon/lr_restart': int(restarted)},
                                      step=runner.epoch + 1)
        if restarted:
            runner.logger.info(
                f'epsilon-ResNet: the discarded count rose to {count} in epoch '
                f'{runner.epoch + 1}; the learning-rate schedule restarts at epoch '
                f'{self.rule.origin + 1} (lr {self.rule.lr_at(self.rule.origin):g})')

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint.setdefault('meta', {})['epsilon_adaptive_lr'] = self.rule.state_dict()

    def after_load_checkpoint(self, runner, checkpoint):
        state = checkpoint.get('meta', {}).get('epsilon_adaptive_lr')
        if state is not None:
            self.rule.load_state_dict(state)
