# mmdet's default runtime plus what every resvariants config adds: our modules registered
# (they are also reachable as 'resvariants.X' without this) and checkpoints written atomically
# (temporary file + rename), so a crash while saving never leaves a truncated checkpoint.
_base_ = 'mmdet::_base_/default_runtime.py'
custom_imports = dict(imports=['resvariants.models'], allow_failed_imports=False)
default_hooks = dict(checkpoint=dict(backend_args=dict(backend='atomic_local')))
