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
from torch.autograd import Function

from ._fused import _higher_order
from ._norm import batch_norm_again, safe_batch_norm, uses_batch_statistics
from .factory import register_attention



@register_attention(aliases=('cbam', ))
class CBAM(BaseModule):
    """Convolutional block attention module (channel gate then spatial gate).

    Args:
        in_channels (int): Channels of the input (and output).
        ratio (int): Reduction of the channel MLP. Defaults to 16.
        kernel_size (int): Spatial gate kernel. Defaults to 7.
        fused (bool): Train with one autograd function whose backward needs fewer full-size
            allocations (default); False runs the plain formula (:meth:`plain_forward`, same
            values and gradients). Inference and traced graphs always take the plain formula.
    """
    _abbr_ = 'cbam'

    def __init__(self, in_channels, ratio=16, kernel_size=7, init_cfg=None, fused=True):
        super().__init__(init_cfg)
        self.in_channels = in_channels
        self.fused = fused
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

    def spatial_gate(self, compressed, norm=None):
        """Spatial gate (B, 1, H, W) from [max over C, mean over C] (B, 2, H, W); ``norm``
        replaces the BN call (default :func:`safe_batch_norm` of ``spatial_bn``)."""
        logits = self.spatial_conv(compressed)
        logits = safe_batch_norm(self.spatial_bn, logits) if norm is None else norm(logits)
        return torch.sigmoid(logits)

    def plain_forward(self, x, norm=None):
        """The plain formula (max gradients routed to the first maximum, as the reference's
        ``max_pool2d`` / ``torch.max``); ``norm`` as in :meth:`spatial_gate`."""
        b, c = x.shape[:2]
        if torch.is_grad_enabled() and not torch.jit.is_tracing():
            peak_hw, peak_c = (lambda t: t.reshape(b, c, -1).max(dim=2)[0],
                               lambda t: t.max(dim=1, keepdim=True)[0])
        else:  # same values; amax is the faster kernel (and the op traced graphs count)
            peak_hw, peak_c = (lambda t: t.amax(dim=(2, 3)),
                               lambda t: t.amax(dim=1, keepdim=True))
        x = x * self.channel_gate(x.mean(dim=(2, 3)), peak_hw(x))
        compressed = torch.cat([peak_c(x), x.mean(dim=1, keepdim=True)], 1)
        return x * self.spatial_gate(compressed, norm)

    def forward(self, x):
        if self.fused and torch.is_grad_enabled() and not torch.jit.is_tracing():
            # training: one autograd function whose backward writes the input gradient with
            # two allocations (see _CBAMFunction); the gates' small graphs run inside it
            return _CBAMFunction.apply(x, self, *self.parameters())
        # inference (and traced graphs, which the FLOP counter reads): the plain formula
        return self.plain_forward(x)


def _grads(output, grad, inputs):
    """Gradients of ``output`` for ``inputs`` (None where an input needs none or is unused).

    The small sub-graph is kept (``retain_graph``), so the outer graph can be backpropagated
    again (``retain_graph=True`` there); it is freed with the outer graph.
    """
    wanted = [i for i, t in enumerate(inputs) if t.requires_grad]
    found = torch.autograd.grad(output, [inputs[i] for i in wanted], grad.to(output.dtype),
                                retain_graph=True, allow_unused=True)
    result = [None] * len(inputs)
    for i, g in zip(wanted, found):
        result[i] = g
    return result


class _CBAMFunction(Function):
    """CBAM forward and backward; the two gates' small sub-graphs (MLP; conv + BN) are run
    with autograd inside, on detached pooled inputs.

    ``y = x * Mc(avg_hw x, max_hw x)``, ``out = y * Ms([max_c y, mean_c y])``. The backward
    computes ``dy = grad * Ms`` once, adds the channel-pooling gradients to it in place, takes
    ``dMc`` as a dot product over H*W, then turns ``dy`` into ``dx`` in place: two full-size
    allocations (the first also serves as scratch space) instead of autograd's five, and no
    accumulation passes. Max gradients go to
    the first maximum, as ``torch.max`` / ``max_pool2d`` route them in the reference.

    A backward recorded by autograd (``create_graph=True``) differentiates
    :meth:`CBAM.plain_forward` instead, with the BN statistics the forward used (running
    statistics not updated again), so higher-order gradients are exact.
    """

    @staticmethod
    def forward(ctx, x, module, *params):
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)
        peak, index_hw = flat.max(dim=2)
        with torch.enable_grad():
            avg_in = flat.mean(dim=2).requires_grad_()
            peak_in = peak.detach().requires_grad_()
            gate_c = module.channel_gate(avg_in, peak_in)
        y = x * gate_c.detach()
        peak_c, index_c = y.max(dim=1, keepdim=True)
        ctx.batch_statistics = uses_batch_statistics(module.spatial_bn, peak_c)
        with torch.enable_grad():
            compressed = torch.cat([peak_c, y.mean(dim=1, keepdim=True)], 1).requires_grad_()
            gate_s = module.spatial_gate(compressed)
        out = y * gate_s.detach()
        ctx.save_for_backward(x, y, index_hw, index_c)
        ctx.graphs = (avg_in, peak_in, gate_c, compressed, gate_s)
        ctx.module, ctx.params = module, params
        return out

    @staticmethod
    def backward(ctx, grad):
        x, y, index_hw, index_c = ctx.saved_tensors
        if torch.is_grad_enabled():
            bn = ctx.module.spatial_bn
            batch_statistics = ctx.batch_statistics

            def plain(x, module, *params):
                return module.plain_forward(
                    x, norm=lambda t: batch_norm_again(bn, t, batch_statistics))

            return _higher_order(ctx, plain, (x, ctx.module, *ctx.params), (grad, ))
        avg_in, peak_in, gate_c, compressed, gate_s = ctx.graphs
        params = list(ctx.params)
        b, c, h, w = x.shape
        n = h * w
        # spatial gate: d gate_s = sum_c grad * y; its sub-graph gives d compressed
        dy = grad * y  # scratch first, then reused for dy (one allocation, not two)
        d_gate_s = dy.sum(dim=1, keepdim=True)
        d_compressed, *d_params = _grads(gate_s, d_gate_s, [compressed] + params)
        torch.mul(grad, gate_s.detach().to(grad.dtype), out=dy)
        dy += (d_compressed[:, 1:] / c).to(dy.dtype)  # mean over C
        dy.scatter_add_(1, index_c, d_compressed[:, :1].to(dy.dtype))  # max over C
        # channel gate: d gate_c = sum_hw dy * x; its sub-graph gives d avg, d max
        dy_flat, x_flat = dy.view(b, c, n), x.reshape(b, c, n)
        if dy_flat.dtype == x_flat.dtype:
            d_gate_c = torch.linalg.vecdot(dy_flat, x_flat, dim=2)
        else:
            d_gate_c = (dy_flat * x_flat).sum(dim=2)
        d_avg, d_peak, *d_params_c = _grads(gate_c, d_gate_c.view(b, c, 1, 1),
                                             [avg_in, peak_in] + params)
        dx = dy_flat.mul_(gate_c.detach().view(b, c, 1).to(dy.dtype))  # in place: dy is ours
        dx += (d_avg / n).unsqueeze(2).to(dx.dtype)
        dx.scatter_add_(2, index_hw.unsqueeze(2), d_peak.unsqueeze(2).to(dx.dtype))
        d_params = [a if b_ is None else (b_ if a is None else a + b_)
                    for a, b_ in zip(d_params, d_params_c)]
        return (dx.view(b, c, h, w), None, *d_params)
