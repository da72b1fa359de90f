"""Hooks for multi-GPU / multi-node training (torch.distributed through mmengine).

``RankSyncCheckHook`` verifies that every rank of a run steps together and holds the same
weights, and can record what each rank saw::

    custom_hooks = [dict(type='resvariants.RankSyncCheckHook', interval=50)]

``GlobalBatchLrRescaleHook`` makes ``auto_scale_lr`` hold when a run is resumed on another
world size (mmengine scales the lr when a run starts, but ``--resume`` then restores the
optimizer and scheduler state, i.e. the lr of the old world size)::

    custom_hooks = [dict(type='resvariants.GlobalBatchLrRescaleHook')]
"""
import json
import os.path as osp

import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from resvariants.registry import HOOKS


def parameter_fingerprint(model) -> float:
    """Sum of all parameters in float64: equal on all ranks while DDP keeps them in sync."""
    with torch.no_grad():
        return float(sum(p.detach().double().sum() for p in model.parameters()))


def global_batch_size(runner) -> int:
    """Images per optimizer step over all ranks (``world_size x train batch_size``)."""
    loader = runner.train_dataloader
    batch = loader.batch_size if hasattr(loader, 'batch_size') else loader['batch_size']
    return runner.world_size * int(batch)


@HOOKS.register_module()
class RankSyncCheckHook(Hook):
    """Checks that all ranks are at the same iteration with the same weights.

    Every ``interval`` training iterations each rank contributes (iteration, its local loss,
    a fingerprint of its parameters after the update); the values are gathered from all ranks.
    A rank at another iteration, or whose parameters differ from rank 0's by more than
    ``rtol`` (relative), raises a RuntimeError naming the ranks: a node resumed from another
    checkpoint, parameters outside DDP, a diverged process. With ``record_file`` set, rank 0
    appends one JSON line per check to ``work_dir/record_file``:
    ``{"iter": i, "world_size": n, "ranks": [{"rank", "iter", "loss", "fingerprint"}, ...]}``.

    Args:
        interval (int): Check every ``interval`` iterations. Defaults to 1.
        rtol (float): Allowed relative difference of the fingerprints. Defaults to 1e-6.
        record_file (str | None): JSON-lines file in the work dir. Defaults to
            ``'rank_sync.jsonl'``; None records nothing.
    """

    priority = 'LOW'

    def __init__(self, interval=1, rtol=1e-6, record_file='rank_sync.jsonl'):
        if int(interval) < 1:
            raise ValueError(f'interval must be a positive integer, got {interval}')
        if rtol < 0:
            raise ValueError(f'rtol must be >= 0, got {rtol}')
        self.interval = int(interval)
        self.rtol = float(rtol)
        self.record_file = record_file

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if not self.every_n_train_iters(runner, self.interval):
            return
        loss = (outputs or {}).get('loss', None)
        mine = dict(rank=get_rank(), iter=runner.iter + 1,
                    loss=None if loss is None else float(torch.as_tensor(loss).detach()),
                    fingerprint=parameter_fingerprint(runner.model))
        ranks = all_gather_object(mine)
        self._check(ranks)
        if self.record_file and is_main_process():
            record = dict(iter=mine['iter'], world_size=get_world_size(), ranks=ranks)
            with open(osp.join(runner.work_dir, self.record_file), 'a') as f:
                f.write(json.dumps(record) + '\n')

    def _check(self, ranks):
        reference = ranks[0]
        off_iter = [r['rank'] for r in ranks if r['iter'] != reference['iter']]
        if off_iter:
            raise RuntimeError(
                f'ranks {off_iter} are not at iteration {reference["iter"]} of rank 0: '
                f'{[(r["rank"], r["iter"]) for r in ranks]}')
        scale = max(abs(reference['fingerprint']), 1e-12)
        diverged = [r['rank'] for r in ranks
                    if abs(r['fingerprint'] - reference['fingerprint']) > self.rtol * scale]
        if diverged:
            raise RuntimeError(
                f'parameters of ranks {diverged} differ from rank 0 at iteration '
                f'{reference["iter"]} (fingerprints '
                f'{[(r["rank"], r["fingerprint"]) for r in ranks]})')


@HOOKS.register_module()
class GlobalBatchLrRescaleHook(Hook):
    """Keeps the learning rate proportional to the global batch across a world-size change.

    Checkpoints get ``meta.global_batch_size`` (world size x per-GPU batch). When a run is
    resumed with another global batch and ``auto_scale_lr.enable`` is True, the restored
    optimizer lrs and scheduler base values are multiplied by new / old global batch, as
    ``auto_scale_lr`` does for a fresh run (linear scaling rule). With ``auto_scale_lr``
    disabled the restored lr is kept and a warning says so. Checkpoints without the meta
    field (written without this hook) are resumed unchanged; loading weights only
    (``load_from`` without ``resume``, ``tools/test.py``) is left alone.
    """

    priority = 'NORMAL'
    META_KEY = 'global_batch_size'

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint.setdefault('meta', {})[self.META_KEY] = global_batch_size(runner)

    def after_load_checkpoint(self, runner, checkpoint):
        if not runner.cfg.get('resume', False):
            return  # evaluation or load_from: no optimizer state is restored
        saved = checkpoint.get('meta', {}).get(self.META_KEY)
        current = global_batch_size(runner)
        if saved is None or int(saved) == current:
            return
        auto_scale = runner.cfg.get('auto_scale_lr') or {}
        if not auto_scale.get('enable', False):
            print_log(f'the checkpoint was trained with a global batch of {saved}, this run '
                      f'has {current}; the restored lr is kept (enable auto_scale_lr, e.g. '
                      f'--auto-scale-lr, to rescale it)', logger='current', level=30)
            return
        ratio = current / int(saved)
        self.rescale_checkpoint_lr(checkpoint, ratio)
        print_log(f'global batch {saved} -> {current}: restored lr scaled by {ratio:g}',
                  logger='current')

    @staticmethod
    def rescale_checkpoint_lr(checkpoint, ratio):
        """Multiply the lrs stored in ``checkpoint`` (optimizer and schedulers) by ``ratio``."""
        optim_states = checkpoint.get('optimizer')
        if optim_states is not None:
            # one optimizer, or a dict of them (OptimWrapperDict)
            states = ([optim_states] if 'param_groups' in optim_states
                      else list(optim_states.values()))
            for state in states:
                for group in state['param_groups']:
                    for key in ('lr', 'initial_lr'):
                        if key in group:
                            group[key] *= ratio
        schedulers = checkpoint.get('param_schedulers')
        if isinstance(schedulers, dict):
            schedulers = [s for group in schedulers.values() for s in group]
        for state in schedulers or []:
            if state.get('param_name') != 'lr':
                continue
            for key in ('base_values', '_last_value'):
                if key in state:
                    state[key] = [v * ratio for v in state[key]]
