"""Squeeze-and-Excitation (Hu et al., CVPR 2018, arXiv:1709.01507), PytorchInsight placement.

GAP -> 1x1 conv C->C/r (bias) -> ReLU -> 1x1 conv C/r->C (bias) -> sigmoid -> channel scale.
Reuses mmpretrain's ``SELayer`` (1x1 convs are the same maths as PytorchInsight's Linear
layers) and keeps its key layout (``se_layer.conv1.conv.weight``), so mmpretrain SE-ResNet
checkpoints load unchanged. The squeeze width is ``C // ratio`` with no rounding (``divisor=1``),
as in PytorchInsight (SE-R50 28,088,024 parameters). Initialisation: PyTorch's default Linear
init for both layers (docs/architectures.md 1.1: the reference initialises only Conv2d and BN
layers), re-applied by ``init_weights`` after a trunk's Kaiming init.
"""
from mmpretrain.models.utils import SELayer

from .factory import register_attention


@register_attention(aliases=('se', ))
class SEModule(SELayer):
    """SE channel attention usable as an mmdet ResNet plugin (mmpretrain's ``SELayer``
    forward).

    Args:
        in_channels (int): Channels of the input (and output).
        ratio (int): Squeeze ratio; hidden width ``in_channels // ratio``. Defaults to 16.
        divisor (int): Round the hidden width to a multiple of this. 1 (default) keeps the
            reference width; 8 reproduces mmpretrain's ``SELayer`` default.
    """
    _abbr_ = 'se_layer'

    def __init__(self, in_channels, ratio=16, divisor=1, init_cfg=None, **kwargs):
        super().__init__(in_channels, ratio=ratio, divisor=divisor, init_cfg=init_cfg, **kwargs)
        self.in_channels = in_channels

    def init_weights(self):
        """PyTorch's default Linear init (the reference leaves its SE Linear layers at it)."""
        if self.init_cfg is not None:
            return super().init_weights()
        for conv_module in (self.conv1, self.conv2):
            conv_module.conv.reset_parameters()
