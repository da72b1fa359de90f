"""Global context block (GCNet, Cao et al., arXiv:1904.11492): mmcv's ``ContextBlock``, faster.

Same parameters, state-dict keys (``conv_mask``, ``channel_add_conv.0/1/3``), initialisation
and maths as ``mmcv.cnn.ContextBlock`` (which is structurally PytorchInsight's
``ContextBlock2d``); the attention pooling runs as one autograd function
(``_fused.attention_pool``) whose backward writes the input gradient once instead of
materialising two outer products and adding them. Traced graphs (the FLOP counter) take
mmcv's own ops, so the counted FLOPs do not change.
"""
import torch
from mmcv.cnn import ContextBlock

from resvariants.registry import PLUGIN_MODELS
from ._fused import attention_pool


@PLUGIN_MODELS.register_module()
class GCBlock(ContextBlock):
    """mmcv ``ContextBlock`` with a fused attention pooling; a drop-in replacement.

    Args:
        in_channels (int): Channels of the input (and output).
        ratio (float): Bottleneck ratio of the transform. Defaults to 1/16.
        pooling_type (str): ``'att'`` (default) or ``'avg'``.
        fusion_types (tuple[str]): ``('channel_add', )`` (default) and/or ``'channel_mul'``.
    """

    def __init__(self, in_channels, ratio=1. / 16, pooling_type='att',
                 fusion_types=('channel_add', )):
        super().__init__(in_channels, ratio, pooling_type=pooling_type,
                         fusion_types=fusion_types)

    def spatial_pool(self, x):
        if self.pooling_type != 'att' or torch.jit.is_tracing():
            return super().spatial_pool(x)
        return attention_pool(x, self.conv_mask.weight, self.conv_mask.bias)
