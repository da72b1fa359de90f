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

from _attention_cases import (FUSED_TYPES, SOURCE_TYPES, TINY, TYPES, build, call, make_inputs,
                              randomise, trunk_kwargs)
from resvariants.analysis.source_style import SOURCE_STYLE, use_source_style
from resvariants.models.attention import attention_types
from resvariants.models.backbones import ResNet


def test_every_source_module_has_its_source_style_formula():
    assert set(SOURCE_STYLE) == set(SOURCE_TYPES)


@pytest.mark.parametrize('name', SOURCE_TYPES)
def test_source_style_network_computes_the_same_function(name):
    """``use_source_style`` (the benchmark's reference network) swaps every module of that
    type in a trunk for its source-style formula and keeps the network's function."""
    ours = randomise(ResNet(**TINY, **trunk_kwargs(name))).double().train()
    ref = copy.deepcopy(ours)
    expected = sum(type(m).__name__ == name for m in ours.modules())
    assert use_source_style(ref) == expected > 0
    assert use_source_style(ResNet(depth=18)) == 0
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)  # stage 4: 2 x 2 (a std needs 2)
    outs, refs = ours(x), ref(x)
    for a, b in zip(outs, refs):
        _close(a, b, 'trunk output', name)
    sum(o.sum() for o in outs).backward()
    sum(o.sum() for o in refs).backward()
    # against the network's gradient scale: GC's mask bias has an exactly-zero gradient
    # (softmax ignores a shift) that both compute as rounding noise
    scale = max(p.grad.abs().max().item() for p in ref.parameters())
    ref_params = dict(ref.named_parameters())
    for key, p in ours.named_parameters():
        diff = (p.grad - ref_params[key].grad).abs().max().item()
        assert diff <= 1e-9 * scale, f'{name}: {key} grad differs by {diff:.3g}'


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
