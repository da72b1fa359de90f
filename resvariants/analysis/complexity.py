"""Parameters and FLOPs in PytorchInsight's convention, on mmengine's FLOP analyzer.

PytorchInsight's README "GFLOPs" column comes from its ptflops-style counter: conv / linear
multiply-accumulates, plus one add per output element of a biased conv, 2 per BatchNorm
element, 1 per ReLU output element and 1 per pooling input element; sigmoid, products and
softmax are not counted (docs/architectures.md, ``_units`` of reference_figures.json). We count the
same operators on mmengine's jit-traced ``FlopAnalyzer`` (fvcore's handles: conv/linear MACs,
2 per BN element in eval, adaptive pooling input), adding handles for ReLU, max/avg pooling
and conv biases. ``gmacs`` is the plain conv + linear multiply-accumulate count.
"""
from dataclasses import dataclass

import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import conv_flop_jit, elementwise_flop_counter, get_shape


def _prod(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def _conv_with_bias(inputs, outputs):
    flops = conv_flop_jit(inputs, outputs)  # a Counter({'conv': MACs})
    if get_shape(inputs[2]) is not None:  # bias: one add per output element
        flops['conv_bias'] += _prod(get_shape(outputs[0]))
    return flops


_PI_EXTRA_HANDLES = {
    'aten::_convolution': _conv_with_bias,
    'aten::relu': elementwise_flop_counter(0, 1),
    'aten::relu_': elementwise_flop_counter(0, 1),
    'aten::max_pool2d': elementwise_flop_counter(1, 0),
    'aten::avg_pool2d': elementwise_flop_counter(1, 0),
}
_MAC_OPS = ('conv', 'linear', 'addmm', 'matmul', 'mm', 'bmm', 'einsum')  # by_operator keys


@dataclass
class Complexity:
    params: int
    gflops: float  # PytorchInsight counter convention (their README column)
    gmacs: float   # conv + linear multiply-accumulates only
    shape: tuple


class _TensorForward(torch.nn.Module):
    """Wraps an mmpretrain classifier / mmdet detector / backbone so forward(x) is a tensor op."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        model = self.model
        if hasattr(model, 'extract_feat') and hasattr(model, 'head'):  # classifier
            return model.head(model.extract_feat(x)) if model.with_head else model.extract_feat(x)
        if hasattr(model, 'extract_feat'):  # detector: backbone (+ neck)
            return model.extract_feat(x)
        return model(x)


def count_complexity(model, shape=(224, 224), batch=1) -> Complexity:
    """Count parameters and FLOPs of ``model`` on a ``batch x 3 x H x W`` input (eval mode)."""
    was_training = model.training
    model.eval()
    wrapped = _TensorForward(model)
    inputs = (torch.randn(batch, 3, *shape), )
    try:
        with torch.no_grad():
            analyzer = FlopAnalyzer(wrapped, inputs)
            analyzer.set_op_handle(**_PI_EXTRA_HANDLES)
            analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            analyzer.tracer_warnings('none')
            by_op = analyzer.by_operator()
    finally:
        model.train(was_training)
    total = sum(by_op.values())
    mac_total = sum(by_op.get(op, 0) for op in _MAC_OPS)
    params = sum(p.numel() for p in model.parameters())
    return Complexity(params=params, gflops=total / 1e9, gmacs=mac_total / 1e9,
                      shape=tuple(shape))
