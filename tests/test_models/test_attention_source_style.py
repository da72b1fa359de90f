"""Every attention module of the sources against a re-implementation written the way its
source writes it (PytorchInsight ``resnet_*.py``, Jongchan's CBAM / BAM, the official SRM code,
GCNet's ``ContextBlock2d``), run on the module's own parameters: same outputs, same gradients of
the inputs and of every parameter, same BN running statistics, in train and eval mode (float64,
so rounding sits many orders of magnitude below a wrong term). Where a module has a fast path
(``fused``, the default) both it and the plain formula (``fused=False``) are checked. Registry-driven contracts of
every module follow (in-place use of the output, bfloat16 autocast).
"""
import copy

import pytest
import torch
import torch.nn.functional as F

from _attention_cases import (FUSED_TYPES, SOURCE_TYPES, TYPES, build, call, make_inputs,
                              randomise)
from resvariants.models.attention import attention_types

# The source-style formulas (independent of the library's code).


def source_se(m, x):
    """SE as PytorchInsight: AdaptiveAvgPool -> Linear -> ReLU -> Linear -> Sigmoid ->
    ``x * y.expand_as(x)`` (our 1x1 convs hold the Linear weights)."""
    b, c, _, _ = x.size()
    y = F.adaptive_avg_pool2d(x, 1).view(b, c)
    y = F.relu(F.linear(y, m.conv1.conv.weight.flatten(1), m.conv1.conv.bias))
    y = torch.sigmoid(F.linear(y, m.conv2.conv.weight.flatten(1), m.conv2.conv.bias))
    return x * y.view(b, c, 1, 1).expand_as(x)


def source_cbam(m, x):
    """CBAM as Jongchan's code: avg_pool2d / max_pool2d with the whole map as kernel, a shared
    MLP per pool, summed; then ChannelPool = cat(max over C, mean over C) -> conv -> BN."""
    h, w = x.shape[2:]
    att = None
    for pool in (F.avg_pool2d, F.max_pool2d):
        pooled = pool(x, (h, w), stride=(h, w))
        raw = m.channel_fc2(F.relu(m.channel_fc1(pooled.view(pooled.size(0), -1))))
        att = raw if att is None else att + raw
    x = x * torch.sigmoid(att).unsqueeze(2).unsqueeze(3).expand_as(x)
    compressed = torch.cat((torch.max(x, 1)[0].unsqueeze(1), torch.mean(x, 1).unsqueeze(1)),
                           dim=1)
    return x * torch.sigmoid(m.spatial_bn(m.spatial_conv(compressed)))


def source_bam(m, x):
    """BAM as Jongchan's code: both gates ``expand_as(x)``, ``att = 1 + sigmoid(c * s)``,
    ``att * x`` (BAM's ChannelGate pools with a kernel of the map size)."""
    h, w = x.shape[2:]
    y = F.avg_pool2d(x, (h, w), stride=(h, w))
    y = F.relu(m.channel_bn(m.channel_fc1(y.view(y.size(0), -1))))
    channel = m.channel_fc2(y).unsqueeze(2).unsqueeze(3).expand_as(x)
    s = F.relu(m.spatial_reduce_bn(m.spatial_reduce(x)))
    for conv, bn in zip(m.spatial_dilated, m.spatial_dilated_bn):
        s = F.relu(bn(conv(s)))
    spatial = m.spatial_final(s).expand_as(x)
    att = 1 + torch.sigmoid(channel * spatial)
    return att * x


def source_sge(m, x):
    """SpatialGroupEnhance as PytorchInsight ``resnet_sge.py``."""
    b, c, h, w = x.size()
    x = x.view(b * m.groups, -1, h, w)
    xn = x * F.adaptive_avg_pool2d(x, 1)
    xn = xn.sum(dim=1, keepdim=True)
    t = xn.view(b * m.groups, -1)
    t = t - t.mean(dim=1, keepdim=True)
    std = t.std(dim=1, keepdim=True) + 1e-5
    t = t / std
    t = t.view(b, m.groups, h, w)
    t = t * m.weight + m.bias
    t = t.view(b * m.groups, 1, h, w)
    x = x * torch.sigmoid(t)
    return x.view(b, c, h, w)


def source_srm(m, x):
    """SRM as the official code: ``_style_pooling`` (mean, sqrt(var + eps)) then
    ``_style_integration`` (``t * cfc`` summed, BN, sigmoid)."""
    n, c, _, _ = x.size()
    channel_mean = x.view(n, c, -1).mean(dim=2, keepdim=True)
    channel_var = x.view(n, c, -1).var(dim=2, keepdim=True) + 1e-5
    t = torch.cat((channel_mean, channel_var.sqrt()), dim=2)
    z = torch.sum(t * m.cfc[None, :, :], dim=2)[:, :, None, None]
    return x * torch.sigmoid(m.bn(z))


def source_sk(m, branches):
    """SK fusion as PytorchInsight ``resnet_sk.py`` (after its two 3x3 branches)."""
    d1, d2 = branches
    planes = d1.size(1)
    d = F.adaptive_avg_pool2d(d1, 1) + F.adaptive_avg_pool2d(d2, 1)
    d = F.relu(m.bn_fc1(m.conv_fc1(d)))
    d = m.conv_fc2(d)
    d = torch.unsqueeze(d, 1).view(-1, 2, planes, 1, 1)
    d = F.softmax(d, 1)
    return d1 * d[:, 0, :, :, :].squeeze(1) + d2 * d[:, 1, :, :, :].squeeze(1)


def source_gc(m, x):
    """GCNet ``ContextBlock2d`` (att pooling, channel_add fusion) as its source writes it."""
    batch, channel, height, width = x.size()
    input_x = x.view(batch, channel, height * width).unsqueeze(1)
    context_mask = m.conv_mask(x).view(batch, 1, height * width)
    context_mask = F.softmax(context_mask, dim=2).unsqueeze(3)
    context = torch.matmul(input_x, context_mask).view(batch, channel, 1, 1)
    return x + m.channel_add_conv(context)


#: type name -> the source-style formula of that module
SOURCE_STYLE = {'SEModule': source_se, 'SKFusion': source_sk, 'CBAM': source_cbam,
                'BAM': source_bam, 'GCBlock': source_gc, 'SGE': source_sge, 'SRM': source_srm}


def test_every_source_module_has_its_source_style_formula():
    assert set(SOURCE_STYLE) == set(SOURCE_TYPES)


def _source_module(name, channels):
    """The module with the source's settings (SGE: 64 groups; SK: ratio 16)."""
    kwargs = dict(groups=64) if name == 'SGE' else {}
    return attention_types()[name](channels, **kwargs)


def _close(a, b, what, name):
    """``max |a - b| <= 1e-12 + 1e-9 max |b|``: measured against the tensor's scale (a gradient
    through train-mode BN has cancelling terms near zero)."""
    assert a.shape == b.shape, (name, what)
    diff = (a - b).abs().max().item()
    assert diff <= 1e-12 + 1e-9 * b.abs().max().item(), (
        f'{name}: {what} differs from the source-style formula (max |diff| {diff:.3g})')


def _compare(name, channels, size, batch, train, fused, seed=0):
    ours = randomise(_source_module(name, channels), seed).double().train(train)
    if name in FUSED_TYPES:
        ours.fused = fused
    ref = copy.deepcopy(ours)
    inputs = make_inputs(ours, (batch, channels, *size), torch.float64, seed=seed)
    ref_inputs = [x.detach().clone().requires_grad_() for x in inputs]
    out = call(ours, inputs)
    ref_out = SOURCE_STYLE[name](ref, ref_inputs if len(ref_inputs) > 1 else ref_inputs[0])
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed + 1),
                       dtype=out.dtype)
    out.backward(grad)
    ref_out.backward(grad)
    _close(out, ref_out, 'output', name)
    for i, (x, r) in enumerate(zip(inputs, ref_inputs)):
        _close(x.grad, r.grad, f'input {i} grad', name)
    ref_params = dict(ref.named_parameters())
    for key, p in ours.named_parameters():
        assert (p.grad is None) == (ref_params[key].grad is None), key
        if p.grad is not None:
            _close(p.grad, ref_params[key].grad, f'{key} grad', name)
    ref_buffers = dict(ref.named_buffers())
    for key, b in ours.named_buffers():
        if b.dtype.is_floating_point:
            _close(b, ref_buffers[key], key, name)


@pytest.mark.parametrize('train', [True, False], ids=['train', 'eval'])
@pytest.mark.parametrize('name, fused', [(n, f) for n in SOURCE_TYPES
                                         for f in ((True, False) if n in FUSED_TYPES
                                                   else (False, ))])
def test_module_equals_its_source_style_formula(name, fused, train):
    _compare(name, channels=128, size=(9, 9), batch=3, train=train, fused=fused)


@pytest.mark.parametrize('name', SOURCE_TYPES)
def test_on_a_non_square_map_and_batch_2(name):
    _compare(name, channels=64, size=(5, 7), batch=2, train=True, fused=name in FUSED_TYPES,
             seed=3)


@pytest.mark.parametrize('name', TYPES)
def test_output_can_be_modified_in_place(name):
    """mmdet's stock Bottleneck adds the shortcut to the plugin output in place."""
    module = randomise(build(name, 32)).train()
    inputs = make_inputs(module, (2, 32, 6, 7))
    out = call(module, inputs)
    out += 1
    out.sum().backward()
    assert all(torch.isfinite(x.grad).all() for x in inputs)


@pytest.mark.parametrize('name', TYPES)
def test_bfloat16_autocast_runs_forward_and_backward(name):
    module = randomise(build(name, 32)).train()
    inputs = make_inputs(module, (2, 32, 6, 6))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = call(module, inputs)
    out.float().sum().backward()
    assert all(x.grad is not None and torch.isfinite(x.grad).all() for x in inputs)
