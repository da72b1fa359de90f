# mmpretrain's default runtime plus what every resvariants config adds: our modules registered
# (they are also reachable as 'resvariants.X' without this) and checkpoints written atomically
# (temporary file + rename), so a crash while saving never leaves a truncated checkpoint.
# Reliability hooks (resvariants/engine/reliability_hooks.py): stop at the first NaN/inf loss
# before a diverged checkpoint is written, fail clearly on an empty dataset or an image below
# the backbone stride, and keep the RNG states in checkpoints so a resume is exact.
# Best-epoch checkpointing: the sources' tables report the best validation epoch, so every run
# that validates also keeps best_accuracy_top1_<epoch or iter>.pth (the highest top-1 so far).
_base_ = 'mmpretrain::_base_/default_runtime.py'
custom_imports = dict(imports=['resvariants.models'], allow_failed_imports=False)
default_hooks = dict(
    checkpoint=dict(backend_args=dict(backend='atomic_local'), save_best='accuracy/top1',
                    rule='greater'),
    finite_loss=dict(type='resvariants.FiniteLossHook'),
    input_check=dict(type='resvariants.InputCheckHook'),
    rng_state=dict(type='resvariants.RNGStateHook'))
