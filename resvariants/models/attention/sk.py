"""Selective-kernel fusion of PytorchInsight's modified SKNet (``resnet_sk.py``, "SK-ResNet*").

The bottleneck's 3x3 conv is replaced by two parallel 3x3 branches on the conv1 output, both
with the block stride: A = dense conv2/bn2/ReLU (the ResNet weights fit it) and B = 32-group
conv2g/bn2g/ReLU. This module fuses them: s = GAP(A) + GAP(B) -> 1x1 conv p->p/16 (no bias)
-> BN -> ReLU -> 1x1 conv p/16->2p (no bias) -> softmax over the two branches -> a*A + b*B.
The reduction has no floor (4 hidden units in layer1), as the reference. SK-R50* has
26,154,496 parameters. The branches live in the block (``Bottleneck(sk=...)``).
Initialisation (docs/architectures.md 1.1): both 1x1 convs kaiming-normal fan_out, the BN
weight 1 and bias 0.
"""
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from ._norm import safe_batch_norm
from .factory import register_attention


@register_attention(aliases=('sk', 'sknet', 'selective_kernel', 'selectivekernel'),
                    placement='branches')
class SKFusion(BaseModule):
    """Softmax selection between branch outputs (the "fuse" and "select" of SKNet).

    Args:
        in_channels (int): Channels of each branch output.
        ratio (int): Reduction of the squeeze conv. Defaults to 16.
        num_branches (int): Number of branches to select between. Defaults to 2.
    """
    _abbr_ = 'sk'

    def __init__(self, in_channels, ratio=16, num_branches=2, init_cfg=None):
        super().__init__(init_cfg)
        self.in_channels = in_channels
        self.num_branches = num_branches
        hidden = in_channels // ratio
        self.conv_fc1 = nn.Conv2d(in_channels, hidden, 1, bias=False)
        self.bn_fc1 = nn.BatchNorm2d(hidden)
        self.conv_fc2 = nn.Conv2d(hidden, num_branches * in_channels, 1, bias=False)

    def init_weights(self):
        """The reference's init (see the module docstring), whatever ran before it."""
        if self.init_cfg is not None:
            return super().init_weights()
        for conv in (self.conv_fc1, self.conv_fc2):
            nn.init.kaiming_normal_(conv.weight, mode='fan_out', nonlinearity='relu')
        self.bn_fc1.reset_parameters()

    def forward(self, branches):
        b, c = branches[0].shape[:2]
        squeezed = sum(branch.mean(dim=(2, 3), keepdim=True) for branch in branches)
        hidden = F.relu(safe_batch_norm(self.bn_fc1, self.conv_fc1(squeezed)))
        weights = self.conv_fc2(hidden).view(b, self.num_branches, c, 1, 1).softmax(dim=1)
        return sum(weights[:, i] * branch for i, branch in enumerate(branches))
