"""Bottleneck Attention Module (Park et al., BMVC 2018, arXiv:1807.06514), between stages.

out = x * (1 + sigmoid(Mc(x) * Ms(x))) with the two maps broadcast to C x H x W; the channel
and spatial maps are *multiplied*, following the official code that PytorchInsight uses.
Mc: GAP -> Linear(C, C/r, bias) -> BatchNorm1d -> ReLU -> Linear(C/r, C, bias).
Ms: 1x1 conv C->C/r (bias) -> BN -> ReLU -> 2 x [3x3 conv, dilation 4 (bias) -> BN -> ReLU]
-> 1x1 conv C/r->1 (bias). BAM-R50 (after stages 1-3) has 25,915,099 parameters.

Fixes over the reference: adaptive pooling (non-square and any-size inputs), and batch size 1
in train mode works (its BN falls back to running statistics for that step).
Initialisation (docs/architectures.md 1.1, the reference's name-based rule): convs
kaiming-normal fan_out, BN weights 1, every bias 0, Linear weights at PyTorch's default.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from ._norm import safe_batch_norm
from .factory import register_attention


@register_attention(aliases=('bam', ), placement='stage')
class BAM(BaseModule):
    """Channel x spatial attention applied to a stage output.

    Args:
        in_channels (int): Channels of the input (and output).
        ratio (int): Reduction of both branches. Defaults to 16.
        dilation (int): Dilation of the two 3x3 spatial convs. Defaults to 4.
        num_dilated (int): Number of dilated 3x3 convs. Defaults to 2.
    """
    _abbr_ = 'bam'

    def __init__(self, in_channels, ratio=16, dilation=4, num_dilated=2, init_cfg=None):
        super().__init__(init_cfg)
        self.in_channels = in_channels
        hidden = in_channels // ratio
        self.channel_fc1 = nn.Linear(in_channels, hidden)
        self.channel_bn = nn.BatchNorm1d(hidden)
        self.channel_fc2 = nn.Linear(hidden, in_channels)
        self.spatial_reduce = nn.Conv2d(in_channels, hidden, 1)
        self.spatial_reduce_bn = nn.BatchNorm2d(hidden)
        self.spatial_dilated = nn.ModuleList(
            nn.Conv2d(hidden, hidden, 3, padding=dilation, dilation=dilation)
            for _ in range(num_dilated))
        self.spatial_dilated_bn = nn.ModuleList(nn.BatchNorm2d(hidden)
                                                for _ in range(num_dilated))
        self.spatial_final = nn.Conv2d(hidden, 1, 1)

    def init_weights(self):
        """Reference (name-based) init: convs kaiming-normal fan_out, BN weight 1, biases 0,
        Linear weights at PyTorch's default."""
        if self.init_cfg is not None:
            return super().init_weights()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, nn.Linear):
                m.reset_parameters()
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.reset_parameters()
            if getattr(m, 'bias', None) is not None:
                nn.init.zeros_(m.bias)

    def channel_map(self, x):
        hidden = self.channel_fc1(x.mean(dim=(2, 3)))
        hidden = F.relu(safe_batch_norm(self.channel_bn, hidden))
        return self.channel_fc2(hidden)[:, :, None, None]

    def spatial_map(self, x):
        y = F.relu(safe_batch_norm(self.spatial_reduce_bn, self.spatial_reduce(x)))
        for conv, bn in zip(self.spatial_dilated, self.spatial_dilated_bn):
            y = F.relu(safe_batch_norm(bn, conv(y)))
        return self.spatial_final(y)

    def forward(self, x):
        return x * (1 + torch.sigmoid(self.channel_map(x) * self.spatial_map(x)))
