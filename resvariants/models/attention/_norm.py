"""Batch norm that stays defined for a single value per channel (batch 1 in train mode)."""
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm


def is_synchronised(bn):
    """True for a SyncBN in a multi-process group: it normalises over every process's values,
    so one value per channel on this process is not a problem."""
    return ('Sync' in type(bn).__name__ and dist.is_available() and dist.is_initialized()
            and dist.get_world_size() > 1)


def uses_batch_statistics(bn: _BatchNorm, x):
    """Whether ``safe_batch_norm(bn, x)`` normalises with the statistics of ``x``."""
    return (bn.training or bn.running_mean is None) and (
        x.numel() // x.shape[1] > 1 or is_synchronised(bn))


def safe_batch_norm(bn: _BatchNorm, x):
    """Apply ``bn`` to ``x``; use running statistics when batch statistics are undefined.

    In train mode a BN over a single value per channel (e.g. BatchNorm1d on a batch of 1)
    raises in PyTorch. Here such a step normalises with the running statistics and does not
    update them; every other call is exactly ``bn(x)``.
    """
    values_per_channel = x.numel() // x.shape[1]
    if not bn.training or values_per_channel > 1 or is_synchronised(bn):
        return bn(x)
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                        False, 0.0, bn.eps)


def batch_norm_again(bn: _BatchNorm, x, batch_statistics):
    """The output ``safe_batch_norm(bn, x)`` gave, recomputed without touching the running
    statistics (for a backward pass that runs the forward formula again).

    Args:
        batch_statistics (bool): What :func:`uses_batch_statistics` said at the forward.
    """
    if batch_statistics:
        return F.batch_norm(x, None, None, bn.weight, bn.bias, True, 0.0, bn.eps)
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0,
                        bn.eps)
