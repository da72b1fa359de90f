"""The fast paths behave as the plain formulas under ordinary autograd use (issue 15, part 4).

For every registered attention module with a fast path, ``fused=True`` (hand-written backward
passes of ``_fused.py``) against ``fused=False`` (plain torch ops, autograd's
own backward): outputs, input and parameter gradients, BN running statistics; a second backward
through a retained graph; double backward; ``gradcheck`` / ``gradgradcheck`` in float64; and
``torch.no_grad`` / ``torch.inference_mode``. The ``_fused.py`` primitives are checked the same
way against plain formulas written here.
"""
import copy
import inspect

import pytest
import torch
from torch.autograd import Function, gradcheck, gradgradcheck

from _attention_cases import FUSED_TYPES, TYPES, build, call, make_inputs, randomise
from resvariants.models.attention import _fused

SHAPE = (2, 32, 8, 8)


def _pair(name, channels=32, train=True, dtype=torch.float64, seed=0):
    fused = randomise(build(name, channels), seed).to(dtype).train(train)
    plain = copy.deepcopy(fused)
    plain.fused = False
    assert fused.fused
    return fused, plain


def _close(a, b, what):
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=lambda m: f'{what}: {m}')


def _weights(out, seed=1):
    return torch.randn(out.shape, generator=torch.Generator().manual_seed(seed),
                       dtype=out.dtype)


def _step(module, inputs, backward_twice=False):
    out = call(module, inputs)
    loss = (out * _weights(out)).sum()
    if backward_twice:
        loss.backward(retain_graph=True)
    loss.backward()
    return out


def _compare(fused, plain, inputs, ref_inputs):
    for i, (x, r) in enumerate(zip(inputs, ref_inputs)):
        _close(x.grad, r.grad, f'input {i} grad')
    ref_params = dict(plain.named_parameters())
    for key, p in fused.named_parameters():
        assert (p.grad is None) == (ref_params[key].grad is None), key
        if p.grad is not None:
            _close(p.grad, ref_params[key].grad, f'{key} grad')
    ref_buffers = dict(plain.named_buffers())
    for key, b in fused.named_buffers():
        _close(b, ref_buffers[key], key)


@pytest.mark.parametrize('train', [True, False])
@pytest.mark.parametrize('name', FUSED_TYPES)
def test_fused_equals_plain_formula(name, train):
    fused, plain = _pair(name, train=train)
    inputs = make_inputs(fused, SHAPE, torch.float64)
    ref_inputs = [x.detach().clone().requires_grad_() for x in inputs]
    _close(_step(fused, inputs), _step(plain, ref_inputs), 'output')
    _compare(fused, plain, inputs, ref_inputs)


@pytest.mark.parametrize('name', FUSED_TYPES)
def test_second_backward_through_a_retained_graph(name):
    """``loss.backward(retain_graph=True); loss.backward()`` accumulates twice the gradient
    (the defect: CBAM's function raised "backward through the graph a second time")."""
    fused, plain = _pair(name)
    inputs = make_inputs(fused, SHAPE, torch.float64)
    ref_inputs = [x.detach().clone().requires_grad_() for x in inputs]
    _step(fused, inputs, backward_twice=True)
    _step(plain, ref_inputs, backward_twice=True)
    _compare(fused, plain, inputs, ref_inputs)
    once = [x.detach().clone().requires_grad_() for x in inputs]
    _step(copy.deepcopy(plain), once)
    for x, r in zip(inputs, once):
        _close(x.grad, 2 * r.grad, 'twice the single gradient')


@pytest.mark.parametrize('name', FUSED_TYPES)
def test_double_backward_equals_plain_formula(name):
    """A gradient penalty: d/d(x, params) of |d loss / d x|^2, fused vs plain."""
    fused, plain = _pair(name)
    inputs = make_inputs(fused, SHAPE, torch.float64)
    ref_inputs = [x.detach().clone().requires_grad_() for x in inputs]
    for module, xs in ((fused, inputs), (plain, ref_inputs)):
        out = call(module, xs)
        grads = torch.autograd.grad((out * _weights(out)).sum(), xs, create_graph=True)
        sum(g.square().sum() for g in grads).backward()
    _compare(fused, plain, inputs, ref_inputs)
    assert any(x.grad.abs().max() > 0 for x in inputs)


def _as_function(module, count):
    params = [p for p in module.parameters()]

    def fn(*args):
        # gradcheck perturbs the parameters in place, so the module sees the new values
        return call(module, args[:count])

    return fn, params


@pytest.mark.parametrize('name', TYPES)
def test_gradcheck_float64(name):
    module = randomise(build(name, 16)).double().train()
    inputs = make_inputs(module, (2, 16, 4, 3), torch.float64)
    fn, params = _as_function(module, len(inputs))
    assert gradcheck(fn, (*inputs, *params), eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


@pytest.mark.parametrize('name', TYPES)
def test_gradgradcheck_float64(name):
    module = randomise(build(name, 16)).double().train()
    inputs = make_inputs(module, (2, 16, 3, 3), torch.float64)
    fn, params = _as_function(module, len(inputs))
    assert gradgradcheck(fn, (*inputs, *params), eps=1e-6, atol=1e-5, rtol=1e-4,
                         fast_mode=True)


@pytest.mark.parametrize('mode', ['no_grad', 'inference_mode'])
@pytest.mark.parametrize('train', [True, False])
@pytest.mark.parametrize('name', FUSED_TYPES)
def test_no_grad_and_inference_mode(name, train, mode):
    fused, plain = _pair(name, train=train, dtype=torch.float32)
    inputs = make_inputs(fused, SHAPE, requires_grad=False)
    context = torch.no_grad if mode == 'no_grad' else torch.inference_mode
    with context():
        out = call(fused, inputs)
        ref = call(plain, inputs)
    assert out.grad_fn is None
    torch.testing.assert_close(out, ref)
    ref_buffers = dict(plain.named_buffers())
    for key, b in fused.named_buffers():
        torch.testing.assert_close(b, ref_buffers[key], msg=key)


# ------------------------------------------------------------------- the _fused.py primitives

def _x(shape=(2, 6, 4, 3), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=torch.float64).requires_grad_()


def _sge_loop(x, weight, bias, groups=3, eps=1e-5):
    """The reference's per-group loop, written plainly."""
    b, c, h, w = x.shape
    cg = c // groups
    rows = []
    for n in range(b):
        for g in range(groups):
            xg = x[n, g * cg:(g + 1) * cg]
            sim = (xg * xg.mean(dim=(1, 2), keepdim=True)).sum(0).flatten()
            sim = (sim - sim.mean()) / (sim.std() + eps)
            gate = torch.sigmoid(sim * weight[0, g, 0, 0] + bias[0, g, 0, 0]).view(1, h, w)
            rows.append(xg * gate)
    return torch.stack(rows).view(b, c, h, w)


def _attention_pool_loop(x, weight, bias):
    """GCNet's context, one sample at a time: softmax(w . x_n + b) weighted sum of x_n."""
    b, c, h, w = x.shape
    contexts = []
    for n in range(b):
        flat = x[n].reshape(c, h * w)
        prob = torch.softmax((weight.view(c, 1) * flat).sum(0) + bias, dim=0)
        contexts.append((flat * prob).sum(1))
    return torch.stack(contexts).view(b, c, 1, 1)


#: autograd Function of _fused.py -> (its public call, a plain formula written here, inputs)
PRIMITIVES = {
    '_MeanStdHW': (lambda x: _fused.mean_std_hw(x, 1e-5, True),
                   lambda x: (x.flatten(2).mean(2), (x.flatten(2).var(2) + 1e-5).sqrt()),
                   lambda: [_x()]),
    '_SGE': (lambda x, w, b: _fused.sge(x, w, b, 3), _sge_loop,
             lambda: [_x(), _x((1, 3, 1, 1), 1), _x((1, 3, 1, 1), 2)]),
    '_AttentionPool': (_fused.attention_pool, _attention_pool_loop,
                       lambda: [_x(), _x((1, 6, 1, 1), 1), _x((1, ), 2)]),
    '_ChannelScale': (_fused.channel_scale, lambda x, g: x * g,
                      lambda: [_x(), _x((2, 6, 1, 1), 1)]),
}


def test_every_fused_function_has_a_case():
    functions = {name for name, obj in vars(_fused).items()
                 if inspect.isclass(obj) and issubclass(obj, Function)
                 and obj.__module__ == _fused.__name__}
    assert functions == set(PRIMITIVES)


def _tuple(out):
    return out if isinstance(out, tuple) else (out, )


def _close_grads(xs, refs, what):
    for x, r in zip(xs, refs):
        assert (x.grad is None) == (r.grad is None), what
        if x.grad is not None:
            _close(x.grad, r.grad, what)


@pytest.mark.parametrize('name', sorted(PRIMITIVES))
def test_primitive_behaves_as_its_plain_formula(name):
    fused_fn, plain_fn, make = PRIMITIVES[name]
    inputs = make()
    ref = [x.detach().clone().requires_grad_() for x in inputs]
    outs, ref_outs = _tuple(fused_fn(*inputs)), _tuple(plain_fn(*ref))
    for o, r in zip(outs, ref_outs):
        _close(o, r, f'{name} output')
    # retain_graph, then a second backward: the gradients accumulate twice
    weights = [_weights(o, seed=i + 5) for i, o in enumerate(outs)]
    for os_, xs in ((outs, inputs), (ref_outs, ref)):
        loss = sum((o * w).sum() for o, w in zip(os_, weights))
        loss.backward(retain_graph=True)
        loss.backward()
    _close_grads(inputs, ref, f'{name} grad after two backward passes')
    # double backward, also through the incoming gradients (linear maps have no x-term)
    leaves = []
    for fn, xs in ((fused_fn, inputs), (plain_fn, ref)):
        xs = [x.detach().clone().requires_grad_() for x in xs]
        ws = [w.clone().requires_grad_() for w in weights]
        loss = sum((o * w).sum() for o, w in zip(_tuple(fn(*xs)), ws))
        grads = torch.autograd.grad(loss, xs, create_graph=True)
        sum(g.square().sum() for g in grads).backward()
        leaves.append(xs + ws)
    _close_grads(*leaves, f'{name} double-backward grad')
    assert any(t.grad is not None for t in leaves[0])
    assert gradcheck(fused_fn, [x.detach().requires_grad_() for x in inputs])
    assert gradgradcheck(fused_fn, [x.detach().requires_grad_() for x in inputs], fast_mode=True)
    for context in (torch.no_grad, torch.inference_mode):
        with context():
            for o, r in zip(_tuple(fused_fn(*inputs)), _tuple(plain_fn(*inputs))):
                torch.testing.assert_close(o, r)


@pytest.mark.parametrize('first', [torch.float32, torch.float64], ids=['x32', 'x64'])
@pytest.mark.parametrize('name', sorted(PRIMITIVES))
def test_primitive_with_mixed_dtypes(name, first):
    """The first input in one float dtype, the others in the other (a float32 activation with
    float64 gates, or the reverse): the fused function promotes as its plain formula does and
    returns every gradient in its input's dtype, with the plain formula's values."""
    fused_fn, plain_fn, make = PRIMITIVES[name]
    rest = torch.float64 if first == torch.float32 else torch.float32

    def cast(xs):
        return [x.detach().to(first if i == 0 else rest).requires_grad_()
                for i, x in enumerate(xs)]

    base = make()
    inputs, ref = cast(base), cast(base)
    outs, ref_outs = _tuple(fused_fn(*inputs)), _tuple(plain_fn(*ref))
    for o, r in zip(outs, ref_outs):
        # GC's context is computed in the activation's dtype (its 1x1 mask conv, as a conv,
        # takes no mixed dtypes); the others promote like the plain products
        assert o.dtype == (inputs[0].dtype if name == '_AttentionPool' else r.dtype)
        torch.testing.assert_close(o, r.to(o.dtype))
    weights = [_weights(o, seed=i + 5) for i, o in enumerate(outs)]
    for os_, xs in ((outs, inputs), (ref_outs, ref)):
        sum((o * w.to(o.dtype)).sum() for o, w in zip(os_, weights)).backward()
    for i, (x, r) in enumerate(zip(inputs, ref)):
        assert x.grad is not None and x.grad.dtype == x.dtype, (name, i)
        # float32 precision: a float64 gradient may come from float32 arithmetic
        torch.testing.assert_close(x.grad, r.grad, rtol=1e-5, atol=1e-6,
                                   msg=lambda m: f'{name} input {i}: {m}')


# ------------------------------------------- defaults, small maps, partial inputs (primitives)

def test_mean_std_defaults_are_unbiased_with_eps_1e5():
    """The defaults that SRM relies on: unbiased variance over H x W, eps 1e-5 (a constant map
    has std sqrt(eps) exactly)."""
    x = torch.cat([torch.full((1, 1, 3, 4), 2.0, dtype=torch.float64),
                   _x((1, 1, 3, 4)).detach()], dim=1)
    for fn in (_fused.mean_std_hw, _fused.mean_std_hw_plain):
        mean, std = fn(x)
        torch.testing.assert_close(mean, x.flatten(2).mean(2))
        assert std[0, 0].item() == pytest.approx(1e-5 ** 0.5, rel=1e-12)
        assert std[0, 1].item() == pytest.approx(
            (x[0, 1].flatten().var(unbiased=True).item() + 1e-5) ** 0.5, rel=1e-12)


def test_mean_std_biased_gradient_equals_the_formula():
    x, ref = _x(), _x()
    w_mean, w_std = _weights(torch.empty(2, 6, dtype=torch.float64), 3), \
        _weights(torch.empty(2, 6, dtype=torch.float64), 4)
    for fn, inp in ((_fused.mean_std_hw, x), (_fused.mean_std_hw_plain, ref)):
        mean, std = fn(inp, 1e-3, False)
        ((mean * w_mean).sum() + (std * w_std).sum()).backward()
    flat = ref.detach().flatten(2)
    torch.testing.assert_close(_fused.mean_std_hw(ref.detach(), 1e-3, False)[1],
                               (flat.var(2, unbiased=False) + 1e-3).sqrt())
    _close(x.grad, ref.grad, 'biased std gradient')


def test_sge_default_eps_is_1e5():
    x = _x((1, 6, 2, 2)).detach()
    weight, bias = _x((1, 3, 1, 1), 1).detach(), _x((1, 3, 1, 1), 2).detach()
    for fn in (_fused.sge, _fused.sge_plain):
        _close(fn(x, weight, bias, 3), _sge_loop(x, weight, bias, 3, eps=1e-5), 'default eps')
        assert not torch.allclose(fn(x, weight, bias, 3), _sge_loop(x, weight, bias, 3, eps=1e-1))


@pytest.mark.parametrize('hw', [(1, 1), (1, 2), (2, 1), (1, 3)])
def test_sge_on_maps_of_one_to_three_positions(hw):
    """1 position: the unbiased std is undefined, the centred similarity is 0, gate sigmoid(b);
    2 and 3 positions: the plain loop's values and gradients (fused and library plain)."""
    x = _x((2, 6, *hw))
    weight, bias = _x((1, 3, 1, 1), 1), _x((1, 3, 1, 1), 2)
    if hw == (1, 1):
        def expected_fn(x, weight, bias):
            gate = torch.sigmoid(bias).repeat_interleave(2, dim=1)
            return x * gate
    else:
        expected_fn = _sge_loop
    leaves = []
    for fn in (lambda *a: _fused.sge(*a, 3), lambda *a: _fused.sge_plain(*a, 3), expected_fn):
        xs = [t.detach().clone().requires_grad_() for t in (x, weight, bias)]
        out = fn(*xs)
        assert torch.isfinite(out).all()
        (out * _weights(out, 7)).sum().backward()
        leaves.append((out.detach(), [t.grad for t in xs]))
    for out, grads in leaves[:2]:
        _close(out, leaves[2][0], f'sge output at {hw}')
        for g, e in zip(grads, leaves[2][1]):
            if hw == (1, 1) and e is None:
                continue
            _close(torch.zeros_like(g) if e is None else g, e if e is not None else g,
                   f'sge grad at {hw}')


def test_double_backward_with_an_input_that_needs_no_gradient():
    """A gate whose activation is a constant (``x`` needs no gradient): the double backward
    differentiates only the inputs that need it."""
    x = _x().detach()
    leaves = []
    for fn in (lambda x, w, b: _fused.sge(x, w, b, 3), _sge_loop):
        w, b = _x((1, 3, 1, 1), 1), _x((1, 3, 1, 1), 2)
        out = fn(x, w, b)
        grads = torch.autograd.grad((out * _weights(out)).sum(), (w, b), create_graph=True)
        sum(g.square().sum() for g in grads).backward()
        leaves.append([w.grad, b.grad])
    for g, e in zip(*leaves):
        _close(g, e, 'double backward without x')


def test_channel_scale_with_a_constant_gate_or_a_constant_input():
    """Only the inputs that need a gradient get one: x * g with g constant (a fixed gate) and
    with x constant, against autograd's product; the fast backward only when one is needed."""
    x, gate = _x(), _x((2, 6, 1, 1), 1)
    out = _fused.channel_scale(x, gate.detach())
    assert type(out.grad_fn).__name__ == '_ChannelScaleBackward'
    weights = _weights(out)
    (out * weights).sum().backward()
    _close(x.grad, (weights * gate.detach()), 'x grad with a constant gate')
    out = _fused.channel_scale(x.detach(), gate)
    (out * weights).sum().backward()
    _close(gate.grad, (weights * x.detach()).sum((2, 3), keepdim=True), 'gate grad')
    assert _fused.channel_scale(x.detach(), gate.detach()).grad_fn is None
    with torch.no_grad():
        assert _fused.channel_scale(x, gate).grad_fn is None
