# What every resvariants config adds to the mmdet / mmpretrain runtime.
# Registers our modules (also reachable as 'resvariants.X' without this) and writes
# checkpoints atomically (temporary file + rename), so a crash while saving loses nothing.
custom_imports = dict(imports=['resvariants.models'], allow_failed_imports=False)
default_hooks = dict(checkpoint=dict(backend_args=dict(backend='atomic_local')))
