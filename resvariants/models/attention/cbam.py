"""CBAM (Woo et al., ECCV 2018, arXiv:1807.06521) as in PytorchInsight ``resnet_cbam.py``.

Channel gate: a shared MLP Linear(C, C/r, bias) -> ReLU -> Linear(C/r, C, bias) applied to the
global average- and max-pooled vectors; the two logits are summed -> sigmoid -> channel scale.
Spatial gate: [channel max, channel mean] (max first) -> 7x7 conv 2->1 (no bias) ->
BatchNorm(1, momentum 0.01, weight initialised to 0) -> sigmoid -> position scale.
At init (spatial BN weight and bias 0) the spatial gate is sigmoid(0) = 0.5 everywhere.

Fix over the reference: train mode with one value per channel in the spatial BN (batch 1 on a
1x1 map) works: that step normalises with the running statistics and leaves them unchanged.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from ._norm import safe_batch_norm
from .factory import register_attention


@register_attention(aliases=('cbam', ))
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

    def channel_gate(self, avg, peak):
        """Channel gate (B, C, 1, 1) from the average- and max-pooled vectors (B, C)."""
        logits = self.channel_fc2(F.relu(self.channel_fc1(torch.stack([avg, peak])))).sum(0)
        return torch.sigmoid(logits)[:, :, None, None]

    def spatial_gate(self, compressed):
        """Spatial gate (B, 1, H, W) from [max over C, mean over C] (B, 2, H, W)."""
        return torch.sigmoid(safe_batch_norm(self.spatial_bn, self.spatial_conv(compressed)))

    def forward(self, x):
        """Max gradients go to the first maximum, as the reference's ``max_pool2d`` /
        ``torch.max`` route them."""
        b, c = x.shape[:2]
        if torch.is_grad_enabled() and not torch.jit.is_tracing():
            peak_hw, peak_c = (lambda t: t.reshape(b, c, -1).max(dim=2)[0],
                               lambda t: t.max(dim=1, keepdim=True)[0])
        else:  # same values; amax is the faster kernel (and the op traced graphs count)
            peak_hw, peak_c = (lambda t: t.amax(dim=(2, 3)),
                               lambda t: t.amax(dim=1, keepdim=True))
        x = x * self.channel_gate(x.mean(dim=(2, 3)), peak_hw(x))
        compressed = torch.cat([peak_c(x), x.mean(dim=1, keepdim=True)], 1)
        return x * self.spatial_gate(compressed)
