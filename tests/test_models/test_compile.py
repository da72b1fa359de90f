"""Every registered backbone and every attention module is captured whole by ``torch.compile``
(``fullgraph=True``: no graph break), in train and eval mode, and the compiled forward and
backward equal eager PyTorch (issue 18, part 1).

Capture uses the ``aot_eager`` backend: dynamo's graph capture and AOTAutograd's forward /
backward split, which is where graph breaks and untraceable code show up, without inductor's
code generation (minutes per network on 2 cores). ``test_inductor_compiles_an_attention_trunk``
runs inductor itself once.
"""
import copy

import pytest
import torch

from _attention_cases import TINY, TYPES, randomise, trunk_kwargs
from resvariants.models import ResNet
from resvariants.models.attention import _fused
from test_attention_batch1 import BACKBONE_KWARGS, _registered_backbones

SIZE = (2, 3, 40, 36)
#: two stages keep the captured graphs small; every block kind and merge is still in them
SHORT = dict(num_stages=2, out_indices=(0, 1), strides=(1, 2), dilations=(1, 1))


def _short(name, kwargs):
    if name in ('CifarResNet', 'PreActResNetCIFAR', 'MobileNetV1', 'DenseNet'):
        return dict(kwargs)
    if name == 'CompactResNet':
        return dict(kwargs, stage_blocks=(2, 1), shortcut_only_stages=(False, True), **SHORT)
    return dict(kwargs, **SHORT)


def _outputs(model, x):
    outs = model(x)
    return list(outs) if isinstance(outs, (tuple, list)) else [outs]


def _eager_and_compiled(model, train):
    """Outputs and gradients (input and parameters) of one step, eager and compiled."""
    results = []
    for compiled in (False, True):
        torch.manual_seed(0)
        module = copy.deepcopy(model).train(train)
        if not compiled:  # the formula a compiled graph runs (``_fused.fast_path``)
            for m in module.modules():
                if hasattr(m, 'fused'):
                    m.fused = False
        runner = torch.compile(module, fullgraph=True, backend='aot_eager') if compiled else module
        x = torch.randn(SIZE, generator=torch.Generator().manual_seed(1), requires_grad=True)
        outs = _outputs(runner, x)
        weights = [torch.randn(o.shape, generator=torch.Generator().manual_seed(2))
                   for o in outs]
        sum((o * w).sum() for o, w in zip(outs, weights)).backward()
        grads = {k: p.grad for k, p in module.named_parameters() if p.grad is not None}
        results.append((outs, x.grad, grads, module))
    return results


def _close(actual, expected, what):
    """Equal to float32 rounding at the tensor's scale (the compiled graph may order its sums
    differently). The eager side runs the plain formulas, which compiled graphs take; the fast
    paths equal them by tests/test_models/test_attention_autograd.py."""
    assert actual.shape == expected.shape, what
    diff = (actual - expected).abs().max().item()
    assert diff <= 1e-5 + 1e-4 * expected.abs().max().item(), f'{what}: max |diff| {diff:.3g}'


def _check(model, train):
    torch._dynamo.reset()
    (outs, x_grad, grads, eager), (c_outs, c_x_grad, c_grads, compiled) = \
        _eager_and_compiled(model, train)
    assert len(outs) == len(c_outs)
    for i, (a, b) in enumerate(zip(outs, c_outs)):
        _close(b, a, f'output {i}')
    _close(c_x_grad, x_grad, 'input grad')
    assert grads.keys() == c_grads.keys() and grads
    for key in grads:
        _close(c_grads[key], grads[key], f'{key} grad')
    for (key, a), b in zip(eager.state_dict().items(), compiled.state_dict().values()):
        if a.is_floating_point():  # BN running statistics: one update each, the same
            _close(b, a, key)


@pytest.mark.parametrize('train', [True, False], ids=['train', 'eval'])
@pytest.mark.parametrize('name', sorted(BACKBONE_KWARGS))
def test_every_backbone_compiles_whole_and_equals_eager(name, train):
    torch.manual_seed(0)
    model = _registered_backbones()[name](**_short(name, BACKBONE_KWARGS[name]))
    _check(randomise(model), train)


@pytest.mark.parametrize('train', [True, False], ids=['train', 'eval'])
@pytest.mark.parametrize('name', TYPES)
def test_every_attention_compiles_whole_and_equals_eager(name, train):
    kwargs = trunk_kwargs(name)
    if 'attention' in kwargs:  # a stage-level module (BAM) goes after stage 1 here
        kwargs['attention_stages'] = (True, False)
    model = ResNet(**dict(TINY, **kwargs, **SHORT))
    _check(randomise(model), train)


def test_compiled_graphs_take_the_plain_formulas(monkeypatch):
    """``_fused.fast_path``: inside a compiled graph the hand-written Functions are not used."""
    seen = []
    original = _fused.fast_path

    def recording(module):
        result = original(module)
        seen.append((type(module).__name__, torch.compiler.is_compiling(), result))
        return result

    monkeypatch.setattr(_fused, 'fast_path', recording)
    for name in ('sge', 'srm', 'gc'):
        monkeypatch.setattr(f'resvariants.models.attention.{name}.fast_path', recording)
    model = ResNet(**dict(TINY, attention='srm', **SHORT)).train()
    torch._dynamo.reset()
    torch.compile(model, fullgraph=True, backend='aot_eager')(torch.randn(SIZE))
    assert seen and all(compiling and not fast for _, compiling, fast in seen)
    seen.clear()
    model(torch.randn(SIZE))
    assert seen and all(fast and not compiling for _, compiling, fast in seen)


def test_inductor_compiles_an_attention_trunk():
    """Inductor's own code generation (C++ on the CPU) on a one-stage SGE trunk: same forward
    and backward as eager."""
    torch._dynamo.reset()
    model = randomise(ResNet(depth=50, base_channels=8, num_stages=1, out_indices=(0, ),
                             strides=(1, ), dilations=(1, ), zero_init_residual=False,
                             attention=dict(type='SGE', groups=4))).train()
    compiled = torch.compile(copy.deepcopy(model), fullgraph=True)
    x = torch.randn(2, 3, 32, 32)
    out, c_out = model(x)[0], compiled(x)[0]
    torch.testing.assert_close(c_out, out, rtol=1e-4, atol=1e-5)
    out.square().sum().backward()
    c_out.square().sum().backward()
    grad = dict(model.named_parameters())['layer1.0.sge.weight'].grad
    c_grad = dict(compiled.named_parameters())['_orig_mod.layer1.0.sge.weight'].grad
    torch.testing.assert_close(c_grad, grad, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ the config-line hook


def _detector_parts():
    """A backbone + FPN neck as a detector holds them (``model.backbone``, ``model.neck``)."""
    from mmdet.models.necks import FPN
    model = torch.nn.Module()
    model.backbone = randomise(ResNet(**dict(TINY, attention=dict(type='SGE', groups=4))))
    model.neck = FPN(in_channels=[64, 128, 256, 512], out_channels=16, num_outs=5)
    model.roi_head = torch.nn.Linear(2, 2)  # stands for the data-dependent heads: left alone
    return model


def test_compile_hook_compiles_the_named_modules_in_place():
    from resvariants.engine import CompileModulesHook
    torch._dynamo.reset()
    model = _detector_parts().train()
    keys = list(model.state_dict())
    reference = copy.deepcopy(model)
    for m in reference.modules():
        if hasattr(m, 'fused'):
            m.fused = False
    hook = CompileModulesHook(modules=('backbone', 'neck'), backend='aot_eager')
    assert hook.compile_kwargs == dict(backend='aot_eager', fullgraph=True)
    hook.compile(model)
    assert list(model.state_dict()) == keys  # checkpoints and init_cfg keys unchanged
    assert model.backbone._compiled_call_impl is not None
    assert model.neck._compiled_call_impl is not None
    assert model.roi_head._compiled_call_impl is None
    x = torch.randn(2, 3, 64, 48)
    outs = model.neck(model.backbone(x))
    expected = reference.neck(reference.backbone(x))
    assert len(outs) == 5
    for i, (a, b) in enumerate(zip(outs, expected)):
        _close(a, b, f'FPN level {i}')


def test_compile_hook_names_an_unknown_module():
    from resvariants.engine import CompileModulesHook
    with pytest.raises(KeyError) as info:
        CompileModulesHook(modules='bakbone').compile(_detector_parts())
    assert info.value.args[0] == ("CompileModulesHook: Module has no module 'bakbone' (its "
                                  "modules: backbone, neck, roi_head)")
    with pytest.raises(ValueError, match='needs the names of the modules'):
        CompileModulesHook(modules=())
