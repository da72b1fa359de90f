"""What every registered attention module promises besides its values (registry-driven):
the plugin name mmdet gives it (the state-dict keys of released checkpoints), its
``in_channels``, that ``init_weights()`` puts back its source initialisation, which forward path
``fused`` selects, and clear constructor errors. Found by mutation testing (docs/testing.md).
"""
import sys

import pytest
import torch
from mmcv.cnn import build_plugin_layer

from _attention_cases import (FUSED_TYPES, SOURCE_TYPES, TYPES, build, call, make_inputs,
                              randomise)
from resvariants.models.attention import attention_types
from test_attention_init import INITIAL_STATE

#: mmcv's ``build_plugin_layer`` names a plugin ``_abbr_ + postfix``; mmdet's ResNet adds it
#: to each block under that name, so these are the keys of checkpoints (``layer1.0.sge``...)
PLUGIN_NAMES = {'BAM': 'bam', 'CBAM': 'cbam', 'GCBlock': 'context_block',
                'SEModule': 'se_layer', 'SGE': 'sge', 'SKFusion': 'sk', 'SRM': 'srm'}
FUSED_MODULE = 'resvariants.models.attention._fused'


def test_every_source_attention_has_a_plugin_name():
    assert set(PLUGIN_NAMES) == set(SOURCE_TYPES)


@pytest.mark.parametrize('name', SOURCE_TYPES)
def test_plugin_layer_name(name):
    kwargs = dict(groups=4) if name == 'SGE' else {}
    layer_name, layer = build_plugin_layer(dict(type=name, **kwargs), postfix='_after_conv3',
                                           in_channels=64)
    assert layer_name == PLUGIN_NAMES[name] + '_after_conv3'
    assert type(layer) is attention_types()[name]


@pytest.mark.parametrize('name', TYPES)
def test_in_channels_is_recorded(name):
    assert build(name, channels=48).in_channels == 48


@pytest.mark.parametrize('name', SOURCE_TYPES)
def test_init_weights_restores_the_source_initialisation(name):
    """After random parameters (as a checkpoint would leave them), ``init_weights()`` gives
    the state docs/architectures.md specifies again (statistics pooled over 16 modules, as in a trunk; BN
    running statistics are buffers, which no init touches)."""
    torch.manual_seed(0)
    modules = [build(name, channels=64) for _ in range(16)]
    with torch.no_grad():
        for module in modules:
            for param in module.parameters():
                param.normal_(0.3, 1.0)
            module.init_weights()
    INITIAL_STATE[name](modules)


def _fast_and_plain_functions(name):
    """The ``_fused`` functions the attention's module imports: (fast ones, plain formulas)."""
    source = sys.modules[attention_types()[name].__module__]
    fused = {attr: value for attr, value in vars(source).items()
             if callable(value) and getattr(value, '__module__', None) == FUSED_MODULE}
    fast = sorted(a for a in fused if not a.endswith('_plain') and not a.startswith('_')
                  and a != 'fast_path')
    plain = sorted(a for a in fused if a.endswith('_plain'))
    return source, fast, plain


def _spy_calls(monkeypatch, source, names):
    calls = []
    for attr in names:
        original = getattr(source, attr)

        def wrapped(*args, _attr=attr, _original=original, **kwargs):
            calls.append(_attr)
            return _original(*args, **kwargs)

        monkeypatch.setattr(source, attr, wrapped)
    return calls


@pytest.mark.parametrize('fused', [True, False])
@pytest.mark.parametrize('name', FUSED_TYPES)
def test_fused_flag_selects_the_forward_path(name, fused, monkeypatch):
    """``fused=True`` runs every fast function its module imports, ``fused=False`` none of
    them; both give the same values."""
    source, fast, plain = _fast_and_plain_functions(name)
    calls = _spy_calls(monkeypatch, source, fast + plain)
    assert fast, f'{name}: no fast function found in {source.__name__}'
    torch.manual_seed(0)
    module = randomise(build(name, channels=32, fused=fused)).train()
    reference = randomise(build(name, channels=32, fused=not fused)).train()
    inputs = make_inputs(module, (2, 32, 6, 5))
    out = call(module, inputs)
    ran = set(calls)
    calls.clear()
    torch.testing.assert_close(out, call(reference, inputs), rtol=1e-5, atol=1e-5)
    if fused:
        assert ran == set(fast), f'{name}(fused=True) ran {sorted(ran)}, not all of {fast}'
    else:
        assert not ran & set(fast), f'{name}(fused=False) ran {sorted(ran)}'


@pytest.mark.parametrize('name', FUSED_TYPES)
def test_traced_graphs_take_the_plain_formula(name, monkeypatch):
    """One rule for every fast path (``_fused.fast_path``): eager only. A traced graph (the
    FLOP counter, TorchScript, the ONNX exporter) records the plain formula's ops."""
    source, fast, plain = _fast_and_plain_functions(name)
    calls = _spy_calls(monkeypatch, source, fast)
    module = randomise(build(name, channels=32)).eval()
    inputs = make_inputs(module, (2, 32, 6, 5), requires_grad=False)
    with torch.no_grad():
        traced = torch.jit.trace(module, tuple(inputs), check_trace=False)
    assert calls == [], f'{name}: traced through {calls}'
    other = make_inputs(module, (2, 32, 6, 5), requires_grad=False, seed=1)
    torch.testing.assert_close(traced(*other), call(module, other))
    assert set(calls) == set(fast)  # eager again: the fast path


def test_the_fast_paths_are_those_that_pay():
    """SGE, SRM and GC keep a hand-written backward; SE, CBAM, BAM and SK saved 0-4 % of a
    train step with one and run their plain formulas (docs/benchmarks.md)."""
    assert FUSED_TYPES == ['GCBlock', 'SGE', 'SRM']


def test_sge_groups_must_divide_the_channels():
    with pytest.raises(ValueError, match=r'^SGE: in_channels=30 is not divisible by groups=4$'):
        attention_types()['SGE'](30, groups=4)
