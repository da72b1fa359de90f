"""Test-only hook: after the checkpoint of iteration ``PAUSE_AFTER_ITER`` is published, write the
marker file ``PAUSE_MARKER`` and sleep, so a crash test can SIGKILL the run at a known point
(rank 0 sleeps; the other ranks wait for it in their next all-reduce)."""
import os
import time

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class PauseAfterCheckpointHook(Hook):
    priority = 'LOWEST'  # after CheckpointHook has saved and published last_checkpoint

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        target = os.environ.get('PAUSE_AFTER_ITER')
        if target and runner.iter + 1 == int(target) and runner.rank == 0:
            open(os.environ['PAUSE_MARKER'], 'w').close()
            time.sleep(600)
