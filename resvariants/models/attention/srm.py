"""Style-based Recalibration Module (Lee, Kim, Nam, ICCV 2019, arXiv:1903.10829).

Style pooling t_c = [mean_hw(x_c), sqrt(var_hw(x_c) + 1e-5)] (unbiased variance, as the
official code); channel-wise fully connected z_c = cfc_c . t_c (cfc of shape [C, 2], init 0);
BatchNorm2d(C) on z; gate sigmoid; x * gate. SRM-R50 has 25,617,448 parameters.
At init (cfc = 0, BN weight 1 / bias 0) the gate is sigmoid(0) = 0.5 everywhere.

Fixes over the reference: a 1x1 map (unbiased variance undefined, NaN) uses the biased
variance; batch 1 in train mode works (the BN over the (1, C, 1, 1) style vector has one value
per channel, which PyTorch refuses: that step normalises with the running statistics and
leaves them unchanged, as BAM and SK do).
"""
import torch
import torch.nn as nn
from mmengine.model import BaseModule

from ._fused import channel_scale, fast_path, mean_std_hw, style_pool_plain
from ._norm import safe_batch_norm
from .factory import register_attention


@register_attention(aliases=('srm', ))
class SRM(BaseModule):
    """Style-based recalibration: mean/std style pooling, channel-wise FC, BN, sigmoid gate.

    Args:
        in_channels (int): Channels of the input (and output).
        eps (float): Added to the variance before the square root. Defaults to 1e-5.
        fused (bool): Style pooling and scaling with the cheap-backward functions of
            ``_fused.py`` (default); False runs the plain formula (same values).
    """
    _abbr_ = 'srm'

    def __init__(self, in_channels, eps=1e-5, init_cfg=None, fused=True):
        super().__init__(init_cfg)
        self.in_channels = in_channels
        self.eps = eps
        self.fused = fused
        self.cfc = nn.Parameter(torch.zeros(in_channels, 2))
        self.bn = nn.BatchNorm2d(in_channels)

    def init_weights(self):
        if self.init_cfg is not None:
            return super().init_weights()
        nn.init.zeros_(self.cfc)
        self.bn.reset_parameters()

    def style(self, x):
        """Per-channel (mean, std) over H x W, each (B, C)."""
        if fast_path(self):
            # two-pass statistics (torch.var's Welford kernel is slow on the CPU), fused backward
            b, c, h, w = x.shape
            return mean_std_hw(x, self.eps, unbiased=h * w > 1)
        return style_pool_plain(x, self.eps)

    def forward(self, x):
        b, c = x.shape[:2]
        mean, std = self.style(x)
        z = mean * self.cfc[:, 0] + std * self.cfc[:, 1]
        gate = torch.sigmoid(safe_batch_norm(self.bn, z.view(b, c, 1, 1)))
        return channel_scale(x, gate) if fast_path(self) else x * gate
