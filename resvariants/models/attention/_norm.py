"""Batch norm that stays defined for a single value per channel (batch 1 in train mode)."""
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm


def is_synchronised(bn):
    """True for a SyncBN in a multi-process group: it normalises over every process's values,
    so one value per channel on this process is not a problem."""
    return ('Sync' in type(bn).__name__ and dist.is_available() and dist.is_initialized()
            and dist.get_world_size() > 1)


def one_value_per_channel(x):
    """True when ``x`` (N, C, ...) holds a single value per channel, so that its batch
    statistics are undefined (e.g. a (1, C, 1, 1) gate in a batch of 1)."""
    return x.numel() == x.shape[1]


def safe_batch_norm(bn: _BatchNorm, x):
    """Apply ``bn`` to ``x``; use running statistics when batch statistics are undefined.

    In train mode a BN over a single value per channel (e.g. BatchNorm1d on a batch of 1)
    raises in PyTorch. Here such a step normalises with the running statistics and does not
    update them; every other call is exactly ``bn(x)``.
    """
    if not bn.training or not one_value_per_channel(x) or is_synchronised(bn):
        return bn(x)
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                        training=False, eps=bn.eps)

