"""Squeeze-and-Excitation (Hu et al., CVPR 2018, arXiv:1709.01507), PytorchInsight placement.

GAP -> 1x1 conv C->C/r (bias) -> ReLU -> 1x1 conv C/r->C (bias) -> sigmoid -> channel scale.
Reuses mmpretrain's ``SELayer`` (1x1 convs are the same maths as PytorchInsight's Linear
layers) and keeps its key layout (``se_layer.conv1.conv.weight``), so mmpretrain SE-ResNet
checkpoints load unchanged. The squeeze width is ``C // ratio`` with no rounding (``divisor=1``),
as in PytorchInsight (SE-R50 28,088,024 parameters). Initialisation: PyTorch's default Linear
init for both layers (docs/architectures.md 1.1: the reference initialises only Conv2d and BN
layers), re-applied by ``init_weights`` after a trunk's Kaiming init.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.utils import SELayer

from ._fused import channel_scale, mean_hw
from .factory import register_attention


@register_attention(aliases=('se', ))
class SEModule(SELayer):
    """SE channel attention usable as an mmdet ResNet plugin.

    Args:
        in_channels (int): Channels of the input (and output).
        ratio (int): Squeeze ratio; hidden width ``in_channels // ratio``. Defaults to 16.
        divisor (int): Round the hidden width to a multiple of this. 1 (default) keeps the
            reference width; 8 reproduces mmpretrain's ``SELayer`` default.
        fused (bool): Pool and scale with the cheap-backward functions of ``_fused.py``
            (default); False runs mmpretrain's plain ``SELayer.forward`` (same values).
    """
    _abbr_ = 'se_layer'

    def __init__(self, in_channels, ratio=16, divisor=1, init_cfg=None, fused=True, **kwargs):
        super().__init__(in_channels, ratio=ratio, divisor=divisor, init_cfg=init_cfg, **kwargs)
        self.in_channels = in_channels
        self.fused = fused

    def init_weights(self):
        """PyTorch's default Linear init (the reference leaves its SE Linear layers at it)."""
        if self.init_cfg is not None:
            return super().init_weights()
        for conv_module in (self.conv1, self.conv2):
            conv_module.conv.reset_parameters()

    def _default_layers(self):
        """True when both ConvModules are conv(+bias) -> activation, ReLU then Sigmoid."""
        conv1, conv2 = self.conv1, self.conv2
        return (not conv1.with_norm and not conv2.with_norm
                and conv1.conv.bias is not None and conv2.conv.bias is not None
                and isinstance(conv1.activate, nn.ReLU)
                and isinstance(conv2.activate, nn.Sigmoid))

    def forward(self, x):
        if not self.fused or torch.jit.is_tracing() or not self._default_layers():
            return super().forward(x)  # traced graphs keep the counted 1x1 convs
        # SELayer.forward's maths; the pooled vector goes through the 1x1 convs' weights as
        # Linear layers (the reference's form, cheaper than 1x1 convs on a 1x1 map), and the
        # pooling and the scaling have cheap backward passes (_fused.py)
        b, c = x.shape[:2]
        conv1, conv2 = self.conv1.conv, self.conv2.conv
        hidden = F.relu(F.linear(mean_hw(x).view(b, c), conv1.weight.flatten(1), conv1.bias))
        gate = torch.sigmoid(F.linear(hidden, conv2.weight.flatten(1), conv2.bias))
        gate = gate.view(b, c, 1, 1)
        return gate if self.return_weight else channel_scale(x, gate)
