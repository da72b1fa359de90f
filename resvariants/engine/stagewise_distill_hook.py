"""Phase schedule of ``StagewiseDistiller`` ("ResNet with No Res", docs/architectures.md 4.2).

    custom_hooks = [dict(type='resvariants.StagewiseDistillHook',
                         phase_lengths=[30, 30, 30, 30], phase_lrs=[0.1, 0.1, 0.1, 0.001])]

Phase ``k`` covers ``phase_lengths[k - 1]`` epochs (or iterations with ``by_epoch=False``).
When a phase starts, the hook switches the model to it (which parameters train, which loss),
sets the learning rate to the phase's rate (keeping per-group ``lr_mult`` ratios) and clears
the optimizer state (momentum), as the source does by building a new optimizer per phase.
Decays inside a phase are ordinary mmengine schedulers, e.g. one ``MultiStepLR`` per phase with
``begin`` / ``end`` at the phase bounds and milestones relative to ``begin``. Resuming in the
middle of a phase restores the phase without touching the restored learning rate.
"""
import bisect
import itertools

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop

from resvariants.registry import HOOKS


@HOOKS.register_module()
class StagewiseDistillHook(Hook):
    """Drives the phases of a ``StagewiseDistiller`` by epoch or iteration.

    Args:
        phase_lengths (list[int]): Length of each phase: one per distilled stage, then the
            fine-tuning phase (``model.num_phases`` entries).
        phase_lrs (list[float] | None): Learning rate at the start of each phase; None keeps
            the optimizer's rate.
        by_epoch (bool): Lengths in epochs (True) or iterations (False). Defaults to True.
    """

    # before RuntimeInfoHook (VERY_HIGH), which logs the learning rate of the coming iteration
    priority = 'HIGHEST'

    def __init__(self, phase_lengths, phase_lrs=None, by_epoch=True):
        phase_lengths = [int(n) for n in phase_lengths]
        if not phase_lengths or min(phase_lengths) < 1:
            raise ValueError(f'phase_lengths must be positive, got {phase_lengths}')
        if phase_lrs is not None and len(phase_lrs) != len(phase_lengths):
            raise ValueError(f'phase_lrs has {len(phase_lrs)} entries, phase_lengths '
                             f'{len(phase_lengths)}')
        self.phase_lengths = phase_lengths
        self.phase_lrs = list(phase_lrs) if phase_lrs is not None else None
        self.by_epoch = by_epoch
        self.phase_starts = [0] + list(itertools.accumulate(phase_lengths))[:-1]

    def phase_at(self, step):
        """1-based phase of epoch / iteration ``step`` (the last phase continues past its end)."""
        return bisect.bisect_right(self.phase_starts, step)

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_train(self, runner):
        model = self._model(runner)
        if not hasattr(model, 'set_phase') or not hasattr(model, 'num_phases'):
            raise TypeError(f'StagewiseDistillHook drives a StagewiseDistiller, got '
                            f'{type(model).__name__}')
        if len(self.phase_lengths) != model.num_phases:
            raise ValueError(f'phase_lengths has {len(self.phase_lengths)} entries but the '
                             f'model has {model.num_phases} phases ({model.num_stages} stages '
                             f'+ fine-tuning)')
        if self.by_epoch and isinstance(getattr(runner, 'train_loop', None),
                                        IterBasedTrainLoop):
            raise ValueError('StagewiseDistillHook(by_epoch=True) needs an epoch-based train '
                             'loop; with IterBasedTrainLoop give phase_lengths in iterations '
                             'and by_epoch=False')
        total = sum(self.phase_lengths)
        budget = runner.max_epochs if self.by_epoch else runner.max_iters
        if budget < total:
            unit = 'max_epochs' if self.by_epoch else 'max_iters'
            raise ValueError(f'the phases need {total} {"epochs" if self.by_epoch else "iters"} '
                             f'(phase_lengths={self.phase_lengths}) but train_cfg.{unit} is '
                             f'{budget}')

    def before_train_epoch(self, runner):
        if self.by_epoch:
            self._enter(runner, runner.epoch)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if not self.by_epoch:
            self._enter(runner, runner.iter)

    def _enter(self, runner, step):
        model = self._model(runner)
        phase = self.phase_at(step)
        if model.phase != phase:
            model.set_phase(phase)
        if step != self.phase_starts[phase - 1]:
            return  # inside a phase (e.g. resumed): keep the restored optimizer state
        optimizer = runner.optim_wrapper.optimizer
        optimizer.state.clear()
        if self.phase_lrs is not None:
            base = optimizer.defaults.get('lr') or 1.0
            for group in optimizer.param_groups:
                ratio = group.get('initial_lr', group['lr']) / base
                group['lr'] = self.phase_lrs[phase - 1] * ratio
        task = (f'distilling stage {phase} (L1 to the teacher)' if model.distilling else
                'fine-tuning the whole student (head loss)')
        lr = optimizer.param_groups[0]['lr']
        unit = 'epoch' if self.by_epoch else 'iter'
        print_log(f'StagewiseDistillHook: phase {phase}/{model.num_phases} from {unit} {step}: '
                  f'{task}, lr {lr:g}, '
                  f'{sum(p.numel() for p in model.parameters() if p.requires_grad):,} '
                  f'trainable parameters', logger='current')
