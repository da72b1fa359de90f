"""Weights-only checkpoint loading that still reads mmengine Runner checkpoints.

torch >= 2.6 loads with ``weights_only=True`` by default; mmengine 0.10.7 calls ``torch.load``
without the argument, so its own checkpoints (``message_hub`` holds ``HistoryBuffer`` objects
with numpy arrays) fail to load on resume and in ``tools/test.py``. Instead of switching the
safety off, this module allow-lists exactly the types such a checkpoint holds. Anything else (a
pickle that would import ``os.system``, say) is still refused by torch.
"""
import os
import pickle
import zipfile
from collections import OrderedDict

import numpy as np
import torch

_ALLOWED = False


def _numpy_types():
    core = getattr(np, '_core', None) or np.core
    types = [core.multiarray.scalar, core.multiarray._reconstruct, np.ndarray, np.dtype]
    for name in ('float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64', 'uint8',
                 'bool_'):
        types.append(type(np.dtype(getattr(np, name))))
    return types


def allow_mmengine_checkpoint_types():
    """Allow-list (once per process) the non-tensor types of an mmengine checkpoint."""
    global _ALLOWED
    if _ALLOWED:
        return
    if os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'):
        raise RuntimeError('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set: it lets any checkpoint run '
                           'code on load. Unset it; resvariants loads mmengine checkpoints with '
                           'weights-only loading on.')
    from mmengine.config.config import ConfigDict
    from mmengine.logging.history_buffer import HistoryBuffer
    torch.serialization.add_safe_globals(
        [HistoryBuffer, ConfigDict, (_history_buffer_getattr, 'builtins.getattr')]
        + _numpy_types())
    _ALLOWED = True


def _history_buffer_getattr(obj, name):
    """The only ``getattr`` an mmengine checkpoint needs: ``HistoryBuffer`` pickles its
    statistics methods as ``getattr(HistoryBuffer, 'mean')``. Any other use is refused, so
    allowing this name does not open the general ``getattr`` to a checkpoint."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and name in ('min', 'max', 'current', 'mean'):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({getattr(obj, "__name__", type(obj).__name__)}, '
        f'{name!r}); only HistoryBuffer statistics methods are allowed')


class UnsafeCheckpointError(RuntimeError):
    """torch's weights-only unpickler refused the file: it pickles objects beyond tensors and
    the allow-listed mmengine types, which could run code on load."""


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)


def read_checkpoint(path, what='checkpoint', map_location='cpu', mmap=False):
    """``torch.load(path, weights_only=True)`` with errors that name ``what`` and the cause.

    ``mmap=True`` memory-maps the tensor data of a zip-format file (reading keys and shapes
    then costs no data reads); legacy files are read normally.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the weights-only unpickler refused it (nothing was run).
        RuntimeError: anything else that prevents reading (truncated, not a checkpoint).
    """
    allow_mmengine_checkpoint_types()
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    try:
        return torch.load(path, map_location=map_location, weights_only=True,
                          mmap=mmap and zipfile.is_zipfile(path))
    except pickle.UnpicklingError as exc:  # what torch raises for every weights-only refusal
        raise UnsafeCheckpointError(
            f'refusing to load {what} {path}: it is not a plain weights checkpoint (it pickles '
            f'objects that could run code on load). Details: {_first_line(exc)}') from None
    except Exception as exc:
        raise RuntimeError(f'cannot read {what} {path} (truncated or not a checkpoint): '
                           f'{_first_line(exc)}') from None


def load_checkpoint_safely(path, map_location='cpu'):
    """The checkpoint at ``path``, loaded weights-only (see :func:`read_checkpoint`)."""
    return read_checkpoint(path, 'checkpoint file', map_location)


def strip_prefix(state, prefix='module.'):
    """Remove a (DataParallel) prefix from every key that has it."""
    return OrderedDict((k[len(prefix):] if k.startswith(prefix) else k, v)
                       for k, v in state.items())


def state_dict_of(checkpoint, source='checkpoint'):
    """The tensors of a loaded checkpoint: ``checkpoint['state_dict']`` (mmengine, timm,
    PytorchInsight), ``checkpoint['model']`` (torchvision's reference scripts) or the bare
    dict, with a DataParallel ``module.`` prefix removed from its keys.

    Raises:
        KeyError: no dict, or a dict without tensors (the message names ``source``).
    """
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise KeyError(f'{source} holds no state dict (got {type(checkpoint).__name__})')
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    tensors = {k: v for k, v in checkpoint.items() if torch.is_tensor(v)}
    if not tensors:
        raise KeyError(f'{source} holds no tensors; top-level keys: {sorted(checkpoint)[:10]}')
    return strip_prefix(tensors)
