"""mmpretrain's DenseNet with a ``conv_cfg``, for PytorchInsight's WS-DenseNet-201 row
(docs/architectures.md 1.10).

mmpretrain builds the DenseNet convs (stem, the two convs of every dense layer, the
transition convs) as ``nn.Conv2d`` directly and takes no ``conv_cfg``. This subclass builds
mmpretrain's network unchanged and then rebuilds each of those convs from ``conv_cfg`` with the
same arguments and weights (``conv_cfg=dict(type='ConvWS')``: mmcv's weight-standardised
conv). Shapes, names and the parameter count stay mmpretrain's (DenseNet-201: 20,013,928
with a 1000-class fc).
"""
import torch.nn as nn
from mmcv.cnn import build_conv_layer
from mmpretrain.models.backbones import DenseNet as MMPretrainDenseNet

from resvariants.registry import MODELS


def rebuild_convs(module, conv_cfg):
    """Replace every plain ``nn.Conv2d`` inside ``module`` by ``build_conv_layer(conv_cfg, ...)``
    with the same arguments, weights and ``requires_grad``; returns the names replaced."""
    replaced = []
    for parent_name, parent in list(module.named_modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not nn.Conv2d:
                continue
            if child.padding_mode != 'zeros':
                raise ValueError(f'{parent_name}.{name}: padding_mode={child.padding_mode!r} '
                                 f'cannot be passed on to conv_cfg={conv_cfg!r}')
            conv = build_conv_layer(
                conv_cfg, child.in_channels, child.out_channels, child.kernel_size,
                stride=child.stride, padding=child.padding, dilation=child.dilation,
                groups=child.groups, bias=child.bias is not None)
            conv.load_state_dict(child.state_dict())
            for new, old in zip(conv.parameters(), child.parameters()):
                new.requires_grad_(old.requires_grad)
            setattr(parent, name, conv)
            replaced.append(f'{parent_name}.{name}' if parent_name else name)
    return replaced


@MODELS.register_module()
class DenseNet(MMPretrainDenseNet):
    """mmpretrain's ``DenseNet`` whose convs are built from ``conv_cfg``.

    Args:
        arch (str | dict): As mmpretrain's (``'121'``, ``'169'``, ``'201'``, ``'161'`` or a
            dict). Defaults to ``'121'``.
        conv_cfg (dict | None): Conv layer config of every conv, e.g. ``dict(type='ConvWS')``.
            None keeps mmpretrain's ``nn.Conv2d``. Defaults to None.
        **kwargs: As mmpretrain's ``DenseNet`` (``out_indices``, ``frozen_stages``,
            ``norm_cfg``, ``memory_efficient``, ...).

    Example:
        >>> import torch
        >>> m = DenseNet(arch=dict(growth_rate=8, depths=[1, 1, 1, 1], init_channels=16),
        ...              conv_cfg=dict(type='ConvWS')).eval()
        >>> tuple(m(torch.rand(1, 3, 64, 64))[0].shape)
        (1, 17, 2, 2)
    """

    def __init__(self, arch='121', conv_cfg=None, **kwargs):
        super().__init__(arch, **kwargs)
        self.conv_cfg = conv_cfg
        if conv_cfg is not None:
            rebuild_convs(self, conv_cfg)
            self._freeze_stages()

    def train(self, mode=True):
        """As mmpretrain's (frozen stages stay frozen), but returns ``self`` like nn.Module."""
        super().train(mode)
        return self
