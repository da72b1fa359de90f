"""Utilities: weights-only checkpoint loading, strict pretrained init."""
from .safe_load import allow_mmengine_checkpoint_types, load_checkpoint_safely

__all__ = ['allow_mmengine_checkpoint_types', 'load_checkpoint_safely']
