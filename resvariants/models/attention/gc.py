"""Global context block (GCNet, Cao et al., arXiv:1904.11492): mmcv's ``ContextBlock``, faster.

Same parameters, state-dict keys (``conv_mask``, ``channel_add_conv.0/1/3``), initialisation
and maths as ``mmcv.cnn.ContextBlock`` (which is structurally PytorchInsight's
``ContextBlock2d``); the attention pooling runs as one autograd function
(``_fused.attention_pool``) whose backward writes the input gradient once instead of
materialising two outer products and adding them. Traced graphs (the FLOP counter) and
``fused=False`` take mmcv's own ops, so the counted FLOPs do not change.

Initialisation (docs/architectures.md 1.7): mask conv kaiming-normal fan_in (bias 0), the
transform's first conv and LayerNorm at PyTorch's defaults, the **last conv of each transform
zero-initialised**, so the block is the identity at init. mmcv's ``ContextBlock`` sets this only
in its constructor, which a trunk's ``init_cfg`` (Kaiming for every Conv2d) then overwrites;
``init_weights`` here re-applies it after the trunk's init.
"""
import torch
from mmcv.cnn import ContextBlock

from ._fused import attention_pool, fast_path
from .factory import register_attention


@register_attention(aliases=('gc', 'contextblock'), defaults=dict(ratio=1. / 16))
class GCBlock(ContextBlock):
    """mmcv ``ContextBlock`` with a fused attention pooling; a drop-in replacement.

    Args:
        in_channels (int): Channels of the input (and output).
        ratio (float): Bottleneck ratio of the transform. Defaults to 1/16.
        pooling_type (str): ``'att'`` (default) or ``'avg'``.
        fusion_types (tuple[str]): ``('channel_add', )`` (default) and/or ``'channel_mul'``.
        fused (bool): Run the attention pooling as the fused autograd function (default);
            False runs mmcv's plain formula (same values).
    """

    def __init__(self, in_channels, ratio=1. / 16, pooling_type='att',
                 fusion_types=('channel_add', ), fused=True):
        super().__init__(in_channels, ratio, pooling_type=pooling_type,
                         fusion_types=fusion_types)
        self.fused = fused

    def init_weights(self):
        """GCNet's initialisation (see the module docstring), whatever ran before it.

        mmengine calls a child's ``init_weights`` after the parent's ``init_cfg``, so this
        runs after the trunk's Kaiming init and restores the identity-at-init block.
        """
        for transform in (self.channel_add_conv, self.channel_mul_conv):
            if transform is not None:
                for layer in transform:
                    if hasattr(layer, 'reset_parameters'):
                        layer.reset_parameters()
        self.reset_parameters()  # mmcv: mask conv kaiming fan_in, last convs zero

    def spatial_pool(self, x):
        if self.pooling_type != 'att' or not fast_path(self):
            return super().spatial_pool(x)
        return attention_pool(x, self.conv_mask.weight, self.conv_mask.bias)
