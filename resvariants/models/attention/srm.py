"""Style-based Recalibration Module (Lee, Kim, Nam, ICCV 2019, arXiv:1903.10829).

Style pooling t_c = [mean_hw(x_c), sqrt(var_hw(x_c) + 1e-5)] (unbiased variance, as the
official code); channel-wise fully connected z_c = cfc_c . t_c (cfc of shape [C, 2], init 0);
BatchNorm2d(C) on z; gate sigmoid; x * gate. SRM-R50 has 25,617,448 parameters.
Fix over the reference: a 1x1 map (unbiased variance undefined, NaN) uses the biased variance.
"""
import torch
import torch.nn as nn
from mmengine.model import BaseModule

from resvariants.registry import PLUGIN_MODELS
from ._fused import channel_scale, mean_std_hw


@PLUGIN_MODELS.register_module()
class SRM(BaseModule):
    """Style-based recalibration: mean/std style pooling, channel-wise FC, BN, sigmoid gate.

    Args:
        in_channels (int): Channels of the input (and output).
        eps (float): Added to the variance before the square root. Defaults to 1e-5.
    """
    _abbr_ = 'srm'

    def __init__(self, in_channels, eps=1e-5, init_cfg=None):
        super().__init__(init_cfg)
        self.in_channels = in_channels
        self.eps = eps
        self.cfc = nn.Parameter(torch.zeros(in_channels, 2))
        self.bn = nn.BatchNorm2d(in_channels)

    def init_weights(self):
        if self.init_cfg is not None:
            return super().init_weights()
        nn.init.zeros_(self.cfc)
        self.bn.reset_parameters()

    def forward(self, x):
        b, c, h, w = x.shape
        # two-pass statistics (torch.var's Welford kernel is slow on the CPU), fused backward
        mean, std = mean_std_hw(x, self.eps, unbiased=int(h) * int(w) > 1)
        z = mean * self.cfc[:, 0] + std * self.cfc[:, 1]
        return channel_scale(x, torch.sigmoid(self.bn(z.view(b, c, 1, 1))))
