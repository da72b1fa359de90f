"""CBAM (Woo et al., ECCV 2018, arXiv:1807.06521) as in PytorchInsight ``resnet_cbam.py``.

Channel gate: a shared MLP Linear(C, C/r, bias) -> ReLU -> Linear(C/r, C, bias) applied to the
global average- and max-pooled vectors; the two logits are summed -> sigmoid -> channel scale.
Spatial gate: [channel max, channel mean] (max first) -> 7x7 conv 2->1 (no bias) ->
BatchNorm(1, momentum 0.01, weight initialised to 0) -> sigmoid -> position scale.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from resvariants.registry import PLUGIN_MODELS
from ._fused import avg_max_hw, channel_scale, max_mean_c


@PLUGIN_MODELS.register_module()
class CBAM(BaseModule):
    """Convolutional block attention module (channel gate then spatial gate).

    Args:
        in_channels (int): Channels of the input (and output).
        ratio (int): Reduction of the channel MLP. Defaults to 16.
        kernel_size (int): Spatial gate kernel. Defaults to 7.
    """
    _abbr_ = 'cbam'

    def __init__(self, in_channels, ratio=16, kernel_size=7, init_cfg=None):
        super().__init__(init_cfg)
        self.in_channels = in_channels
        hidden = in_channels // ratio
        self.channel_fc1 = nn.Linear(in_channels, hidden)
        self.channel_fc2 = nn.Linear(hidden, in_channels)
        self.spatial_conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.spatial_bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)

    def init_weights(self):
        """Reference (name-based) init: the spatial conv kaiming-normal fan_out, every bias 0,
        the spatial-gate BN weight 0; the MLP weights keep PyTorch's default Linear init."""
        if self.init_cfg is not None:
            return super().init_weights()
        for fc in (self.channel_fc1, self.channel_fc2):
            fc.reset_parameters()
            nn.init.zeros_(fc.bias)
        nn.init.kaiming_normal_(self.spatial_conv.weight, mode='fan_out', nonlinearity='relu')
        nn.init.zeros_(self.spatial_bn.weight)
        nn.init.zeros_(self.spatial_bn.bias)

    def forward(self, x):
        b, c = x.shape[:2]
        avg, peak = avg_max_hw(x)  # pooled in one function, gradients written in one pass
        pooled = torch.stack([avg.view(b, c), peak.view(b, c)])  # 2 x B x C
        logits = self.channel_fc2(F.relu(self.channel_fc1(pooled))).sum(0)
        x = channel_scale(x, torch.sigmoid(logits).view(b, c, 1, 1))
        compressed = max_mean_c(x)  # [max over C, mean over C]
        return x * torch.sigmoid(self.spatial_bn(self.spatial_conv(compressed)))
