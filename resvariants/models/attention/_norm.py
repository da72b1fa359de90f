"""Batch norm that stays defined for a single value per channel (batch 1 in train mode)."""
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm


def safe_batch_norm(bn: _BatchNorm, x):
    """Apply ``bn`` to ``x``; use running statistics when batch statistics are undefined.

    In train mode a BN over a single value per channel (e.g. BatchNorm1d on a batch of 1)
    raises in PyTorch. Here such a step normalises with the running statistics and does not
    update them; every other call is exactly ``bn(x)``.
    """
    values_per_channel = x.numel() // x.shape[1]
    if not bn.training or values_per_channel > 1:
        return bn(x)
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                        False, 0.0, bn.eps)
