"""Spatial Group-wise Enhance (Li, Hu, Yang, arXiv:1905.09646), PytorchInsight ``resnet_sge.py``.

Per sample and channel group g: similarity a = sum_c x_gc * mean_hw(x_gc); a is normalised
over the H*W positions (minus mean, divided by unbiased std + 1e-5); gate = sigmoid(w_g*a + b_g)
with learnable w (init 0) and b (init 1) of shape (1, G, 1, 1); x_g <- x_g * gate.

Fix over the reference: on a 1x1 map the unbiased std is undefined and the reference returns
NaN; here the centred similarity is 0 there, so the gate is sigmoid(b_g) and the output finite.
Everywhere else the output equals the reference formula (to float rounding: the similarity is
a batched matrix product and the std a two-pass reduction, see ``_fused.py``).
Initialisation (docs/architectures.md 1.6): w = 0, b = 1, so the gate is sigmoid(1) everywhere
at init.
"""
import torch
import torch.nn as nn
from mmengine.model import BaseModule

from ._fused import fast_path, sge, sge_plain
from .factory import register_attention


@register_attention(aliases=('sge', ))
class SGE(BaseModule):
    """Spatial group-wise enhance: one spatial gate per channel group, no extra convs.

    Args:
        in_channels (int): Channels of the input; must be divisible by ``groups``.
        groups (int): Number of channel groups. Defaults to 64 (the paper's setting).
        eps (float): Added to the std. Defaults to 1e-5.
        fused (bool): One fused autograd function (default); False runs the plain formula
            (``_fused.sge_plain``, same values).
    """
    _abbr_ = 'sge'

    def __init__(self, in_channels, groups=64, eps=1e-5, init_cfg=None, fused=True):
        super().__init__(init_cfg)
        if in_channels % groups:
            raise ValueError(f'SGE: in_channels={in_channels} is not divisible by '
                             f'groups={groups}')
        self.in_channels = in_channels
        self.groups = groups
        self.eps = eps
        self.fused = fused
        self.weight = nn.Parameter(torch.zeros(1, groups, 1, 1))
        self.bias = nn.Parameter(torch.ones(1, groups, 1, 1))

    def init_weights(self):
        if self.init_cfg is not None:
            return super().init_weights()
        nn.init.zeros_(self.weight)
        nn.init.ones_(self.bias)

    def forward(self, x):
        if not fast_path(self):
            return sge_plain(x, self.weight, self.bias, self.groups, self.eps)
        # one fused autograd function (_fused.sge): the similarity is a batched matrix product,
        # the std a two-pass reduction, and the backward touches each full-size tensor once
        return sge(x, self.weight, self.bias, self.groups, self.eps)
