"""Utilities: weights-only checkpoint loading, strict pretrained init."""
from .safe_load import (UnsafeCheckpointError, allow_mmengine_checkpoint_types,
                        load_checkpoint_safely, read_checkpoint, state_dict_of)

__all__ = ['UnsafeCheckpointError', 'allow_mmengine_checkpoint_types', 'load_checkpoint_safely',
           'read_checkpoint', 'state_dict_of']
