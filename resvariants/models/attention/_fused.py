"""Hand-written backward passes of SGE, SRM and GC, the modules where they pay.

The attention modules spend their time in memory-bound passes over the block output (the
widest activation of a bottleneck), so the cost is the number of full-size tensors read and
written. Autograd's generic formulas spend more passes than the maths needs (``var``/``std``
use a slow Welford kernel on the CPU and a multi-pass backward; SGE's grouped similarity and
GC's softmax pooling keep several full-size temporaries). The functions here compute the same
forward values (same operations, or a two-pass variance instead of Welford, equal to rounding)
and return their gradients in the fewest passes. They are kept where they saved at least 5 %
of a ResNet-50 CPU train step (docs/benchmarks.md, "Which fast paths stay"); SE, CBAM, BAM and
SK saved 0-4 % and run their plain formulas.

Every function works on any float dtype (autocast included) and on CPU and CUDA, and behaves
as its plain formula (the ``*_plain`` function next to it) under ordinary autograd use:
``retain_graph=True`` (a backward only reads what its forward saved), ``torch.no_grad`` /
``torch.inference_mode``, and higher-order gradients: when autograd records the backward
itself (``create_graph=True``: double backward, gradient penalties, ``gradgradcheck``), the
backward differentiates the plain formula on the saved inputs instead of running the fused
code (:func:`_higher_order`), so second derivatives are exact. Only first-order backward passes
take the fast code.
"""
import torch
import torch.nn.functional as F
from torch.autograd import Function


def exporting():
    """True while a graph is recorded to run later without Python: ``torch.jit`` tracing or
    scripting, either ONNX exporter (TorchScript-based or ``dynamo=True``), ``torch.export``.
    Such a graph must hold at every input size, so code branches on no size then.
    (``torch.compile`` re-traces when a size changes; it is no export.)"""
    return (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export()
            or torch.compiler.is_exporting())


def graph_capture():
    """True while any graph of the running code is recorded: :func:`exporting`, or
    ``torch.compile``. No hand-written autograd Function runs then."""
    return exporting() or torch.compiler.is_compiling()


def fast_path(module):
    """The one rule of every module with a ``fused`` switch: the hand-written backward passes
    run in eager PyTorch only. Traced, scripted, exported (ONNX) and compiled graphs take the
    plain formula, which the FLOP counter counts, exporters know and the compiler optimises."""
    return module.fused and not graph_capture()


def _less_one_at_least_one(n):
    """``max(n - 1, 1)`` of a length read from a shape, as the graph being recorded sees it:
    an int in eager code, a SymInt under ``torch.export``, a 0-dim tensor under ``torch.jit``
    tracing; in a graph it is then computed from the input's shape, not frozen at the traced
    size."""
    if torch.is_tensor(n):
        return (n - 1).clamp(min=1)
    return torch.sym_max(n - 1, 1)


def sample_variance(centred, dim):
    """``sum(centred**2) / max(n - 1, 1)`` along ``dim`` (kept): the unbiased variance of values
    whose mean was subtracted, and 0 for a single value (whose centred value is 0), with no
    branch on the size. The graph-safe form of "unbiased variance, 0 where undefined" (SGE's
    std, SRM's style pooling); equal to ``torch.var`` to float rounding."""
    count = _less_one_at_least_one(centred.shape[dim])
    return centred.square().sum(dim=dim, keepdim=True) / count


def _higher_order(ctx, plain, inputs, grads):
    """The backward of a fused function when ``create_graph=True``: the gradients of
    ``plain(*inputs)`` for the inputs that need one, as differentiable tensors.

    ``inputs`` are the forward's arguments in order (tensors as saved, with their history;
    other arguments as they were), ``grads`` the incoming gradients of the outputs.

    Each tensor input enters the formula through an alias (``view_as``), and the gradients are
    taken for the aliases: partial derivatives, as a backward must return. (For the saved
    tensors themselves autograd would also count the paths between them, e.g. from a gate
    back to the ``x`` it was computed from, which the outer backward already follows.) The
    aliases keep the history, so the result is differentiable in the original inputs.
    """
    with torch.enable_grad():
        aliases = [t.view_as(t) if torch.is_tensor(t) and t.requires_grad else t
                   for t in inputs]
        outputs = plain(*aliases)
    outputs = outputs if isinstance(outputs, tuple) else (outputs, )
    wanted = [i for i, t in enumerate(inputs)
              if torch.is_tensor(t) and ctx.needs_input_grad[i] and t.requires_grad]
    result = [None] * len(inputs)
    pairs = [(o, g) for o, g in zip(outputs, grads) if g is not None and o.requires_grad]
    if wanted and pairs:
        found = torch.autograd.grad([o for o, _ in pairs], [aliases[i] for i in wanted],
                                    [g for _, g in pairs], create_graph=True,
                                    allow_unused=True)
        for i, g in zip(wanted, found):
            result[i] = torch.zeros_like(inputs[i]) if g is None else g
    return tuple(result)


def _centred_var(flat, dim, unbiased):
    """Two-pass variance along ``dim`` (and the centred values and the mean), faster than
    ``torch.var`` on the CPU; ``unbiased`` divides by ``n - 1``."""
    n = flat.shape[dim]
    mean = flat.mean(dim=dim, keepdim=True)
    centred = flat - mean
    var = torch.linalg.vecdot(centred, centred, dim=dim).unsqueeze(dim) / (n - 1 if unbiased
                                                                          else n)
    return var, centred, mean


def _needs_grad(*tensors):
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def mean_std_hw_plain(x, eps=1e-5, unbiased=True):
    """Plain formula of :func:`mean_std_hw`."""
    b, c, h, w = x.shape
    flat = x.reshape(b, c, h * w)
    return flat.mean(dim=2), (flat.var(dim=2, unbiased=unbiased) + eps).sqrt()


def style_pool_plain(x, eps=1e-5):
    """SRM's style pooling, plain formula: per-channel ``(mean, sqrt(var + eps))`` over H x W
    (B, C) with the unbiased variance, the biased one (0) on a 1x1 map where it is undefined.
    In an exported graph the choice is no branch on the size (:func:`sample_variance`)."""
    flat = x.flatten(2)
    if exporting():
        mean = flat.mean(dim=2, keepdim=True)
        return mean.squeeze(2), (sample_variance(flat - mean, 2).squeeze(2) + eps).sqrt()
    return flat.mean(dim=2), (flat.var(dim=2, unbiased=flat.shape[2] > 1) + eps).sqrt()


class _MeanStdHW(Function):
    """Per-channel mean and ``sqrt(var + eps)`` over H x W, both of shape (B, C)."""

    @staticmethod
    def forward(ctx, x, eps, unbiased):
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)
        var, _, mean = _centred_var(flat, 2, unbiased)
        std = (var + eps).sqrt()
        ctx.save_for_backward(x, mean, std)
        ctx.denom = h * w - 1 if unbiased else h * w
        ctx.eps, ctx.unbiased = eps, unbiased
        return mean.view(b, c).clone(), std.view(b, c).clone()

    @staticmethod
    def backward(ctx, grad_mean, grad_std):
        x, mean, std = ctx.saved_tensors
        if torch.is_grad_enabled():
            return _higher_order(ctx, mean_std_hw_plain, (x, ctx.eps, ctx.unbiased),
                                 (grad_mean, grad_std))
        b, c, h, w = x.shape
        # d std / d x = (x - mean) / (denom * std): dx = a * x + (grad_mean / n - a * mean)
        a = grad_std.view(b, c, 1) / (std * ctx.denom)
        shift = grad_mean.view(b, c, 1) / (h * w) - a * mean
        dx = x.reshape(b, c, h * w) * a
        dx += shift
        return dx.view(b, c, h, w), None, None


def mean_std_hw(x, eps=1e-5, unbiased=True):
    """Per-channel ``(mean, sqrt(var + eps))`` over H x W, shapes (B, C)."""
    if graph_capture():  # see sge()
        return mean_std_hw_plain(x, eps, unbiased)
    return _MeanStdHW.apply(x, eps, unbiased)


def sge_plain(x, weight, bias, groups, eps=1e-5):
    """Plain formula of :func:`sge` (PytorchInsight's, with its 1x1 NaN guarded: the
    unbiased std of one position is undefined, the centred similarity is 0 there)."""
    b, c, h, w = x.shape
    grouped = x.reshape(b * groups, c // groups, h, w)
    sim = (grouped * grouped.mean(dim=(2, 3), keepdim=True)).sum(dim=1).reshape(b * groups,
                                                                                 h * w)
    centred = sim - sim.mean(dim=1, keepdim=True)
    if exporting():  # no branch on the map size: the graph holds at every input size
        std = sample_variance(centred, 1).sqrt()
    else:
        std = centred.std(dim=1, keepdim=True) if h * w > 1 else torch.zeros_like(centred)
    norm = (centred / (std + eps)).reshape(b, groups, h, w)
    gate = torch.sigmoid(norm * weight + bias).reshape(b * groups, 1, h, w)
    return (grouped * gate).reshape(b, c, h, w)


class _SGE(Function):
    """Spatial group-wise enhance, forward and backward, with no Python loop over groups.

    Per group (B*G, C/G, H*W): ``sim = mean_c . x`` as one batched matrix product, normalised
    over H*W (two-pass std), ``gate = sigmoid(weight * norm + bias)``, ``out = x * gate``.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, groups, eps):
        b, c, h, w = x.shape
        n, cg = h * w, c // groups
        grouped = x.reshape(b * groups, cg, n)
        mean = grouped.mean(dim=2, keepdim=True)  # (BG, cg, 1)
        sim = torch.bmm(mean.transpose(1, 2), grouped).view(b, groups, n)
        var, centred, _ = _centred_var(sim, 2, unbiased=n > 1)
        std = var.sqrt()
        inv = 1 / (std + eps)
        norm = centred * inv
        gate = torch.sigmoid(torch.addcmul(bias.view(1, groups, 1).to(norm.dtype), norm,
                                           weight.view(1, groups, 1).to(norm.dtype)))
        # written through a view into a fresh (B, C, H, W) tensor, so the output is no view
        # (mmdet's stock Bottleneck adds the shortcut to the plugin output in place)
        out = torch.empty(x.shape, dtype=torch.result_type(grouped, gate), device=x.device)
        torch.mul(grouped, gate.view(b * groups, 1, n), out=out.view(b * groups, cg, n))
        ctx.save_for_backward(x, weight, bias, mean, norm, inv, std, gate)
        ctx.groups, ctx.denom, ctx.eps = groups, max(n - 1, 1), eps
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, bias, mean, norm, inv, std, gate = ctx.saved_tensors
        if torch.is_grad_enabled():
            return _higher_order(ctx, sge_plain, (x, weight, bias, ctx.groups, ctx.eps),
                                 (grad, ))
        groups = ctx.groups
        b, c, h, w = x.shape
        n, cg = h * w, c // groups
        grouped = x.reshape(b * groups, cg, n)
        grad = grad.reshape(b * groups, cg, n)
        scratch = grad * grouped  # reused below for dx (one allocation, not two)
        d_gate = scratch.sum(dim=1).view(b, groups, n).to(gate.dtype)
        d_t = torch.ops.aten.sigmoid_backward(d_gate, gate)  # d_gate * g * (1 - g)
        d_t_sum = d_t.sum(dim=2, keepdim=True)  # (B, G, 1)
        d_t_norm = torch.linalg.vecdot(d_t, norm, dim=2).unsqueeze(2)  # sum_n d_t * norm
        d_weight = d_t_norm.sum(dim=0).view(1, groups, 1, 1)
        d_bias = d_t_sum.sum(dim=0).view(1, groups, 1, 1)
        # norm = (sim - mean(sim)) / (std + eps), std unbiased (0 where undefined: no term);
        # with d_norm = w * d_t:  d_sim = w*inv * (d_t - mean(d_t)) - w*proj/(std*denom) * norm
        scale = weight.view(1, groups, 1).to(d_t.dtype) * inv
        coef = torch.where(std > 0, weight.view(1, groups, 1).to(d_t.dtype) * d_t_norm /
                           (std * ctx.denom), torch.zeros_like(std))
        d_sim = d_t * scale
        d_sim.addcmul_(norm, coef, value=-1)
        d_sim -= scale * d_t_sum / n
        d_sim = d_sim.view(b * groups, 1, n).to(grouped.dtype)
        d_mean = torch.bmm(grouped, d_sim.transpose(1, 2))  # (BG, cg, 1)
        # scratch = grad * x has grad's dtype (the output's: promoted from x and the gate)
        dx = torch.mul(grad, gate.view(b * groups, 1, n).to(grad.dtype), out=scratch)
        dx.baddbmm_(mean.to(dx.dtype), d_sim.to(dx.dtype))
        dx += (d_mean / n).to(dx.dtype)
        return (dx.view(b, c, h, w), d_weight.to(weight.dtype), d_bias.to(weight.dtype), None,
                None)


def sge(x, weight, bias, groups, eps=1e-5):
    """Spatial group-wise enhance of ``x`` with per-group ``weight``/``bias`` (1, G, 1, 1).

    While a graph is recorded (:func:`graph_capture`) this is the plain formula, as are the
    other public functions here: a recorded Function is no graph an exporter can use. Traced,
    ``_SGE`` records its output as the fresh buffer it writes into through a view, and the
    TorchScript ONNX exporter then emits that buffer (``ConstantOfShape``; no input at all
    with static shapes) instead of the result; ``_MeanStdHW`` becomes an opaque ``PythonOp``
    (``aten::size`` / ``aten::linalg_vecdot`` have no ONNX symbolic).
    """
    if graph_capture():
        return sge_plain(x, weight, bias, groups, eps)
    return _SGE.apply(x, weight, bias, groups, eps)


def attention_pool_plain(x, weight, bias=None):
    """Plain formula of :func:`attention_pool` (mmcv ``ContextBlock.spatial_pool``'s)."""
    b, c, h, w = x.shape
    mask = F.conv2d(x, weight.view(1, c, 1, 1), bias).view(b, 1, h * w, 1)
    prob = torch.softmax(mask, dim=2)
    return torch.matmul(x.view(b, 1, c, h * w), prob).view(b, c, 1, 1)


class _AttentionPool(Function):
    """GCNet's attention pooling: ``softmax(conv1x1(x))`` over H*W, then the weighted sum of
    ``x``: context (B, C, 1, 1). The 1x1 mask conv is a batched matrix-vector product; the
    backward writes the input gradient once (a rank-2 batched product)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)
        vec = weight.reshape(1, 1, c).to(flat.dtype).expand(b, 1, c)
        logits = torch.bmm(vec, flat)
        if bias is not None:
            logits = logits + bias.to(logits.dtype).view(1, 1, 1)
        prob = torch.softmax(logits, dim=2)  # (B, 1, N)
        context = torch.bmm(flat, prob.transpose(1, 2))  # (B, C, 1)
        ctx.save_for_backward(x, weight, prob, bias)
        ctx.has_bias = bias is not None
        return context.view(b, c, 1, 1).clone()

    @staticmethod
    def backward(ctx, grad):
        x, weight, prob, bias = ctx.saved_tensors
        if torch.is_grad_enabled():
            return _higher_order(ctx, attention_pool_plain, (x, weight, bias), (grad, ))
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)
        d_context = grad.reshape(b, c, 1).to(flat.dtype)
        d_prob = torch.bmm(d_context.transpose(1, 2), flat)  # (B, 1, N)
        d_logits = prob * (d_prob - (prob * d_prob).sum(dim=2, keepdim=True))
        d_weight = torch.bmm(d_logits, flat.transpose(1, 2)).sum(dim=0)  # (1, C)
        d_bias = d_logits.sum().reshape(1) if ctx.has_bias else None
        vec = weight.reshape(1, c, 1).to(flat.dtype).expand(b, c, 1)
        dx = torch.bmm(torch.cat([d_context, vec], dim=2), torch.cat([prob, d_logits], dim=1))
        return (dx.view(b, c, h, w), d_weight.view(weight.shape).to(weight.dtype),
                None if d_bias is None else d_bias.to(weight.dtype))


def attention_pool(x, weight, bias=None):
    """GCNet context: ``sum_n softmax_n(w . x_n + bias) x_n``, shape (B, C, 1, 1)."""
    if graph_capture():  # see sge()
        return attention_pool_plain(x, weight, bias)
    return _AttentionPool.apply(x, weight, bias)


class _ChannelScale(Function):
    """``x * gate`` for a per-channel gate (B, C, 1, 1): the gate's gradient is a dot product
    over H*W (no full-size product is allocated)."""

    @staticmethod
    def forward(ctx, x, gate):
        ctx.save_for_backward(x, gate)
        return x * gate

    @staticmethod
    def backward(ctx, grad):
        x, gate = ctx.saved_tensors
        if torch.is_grad_enabled():
            return _higher_order(ctx, torch.mul, (x, gate), (grad, ))
        dx = grad * gate if ctx.needs_input_grad[0] else None
        d_gate = None
        if ctx.needs_input_grad[1]:
            b, c = x.shape[:2]
            flat_grad, flat_x = grad.reshape(b, c, -1), x.reshape(b, c, -1)
            if flat_grad.dtype == flat_x.dtype:
                d_gate = torch.linalg.vecdot(flat_grad, flat_x, dim=2)
            else:
                d_gate = (flat_grad * flat_x).sum(dim=2)
            d_gate = d_gate.view(gate.shape).to(gate.dtype)
        return dx, d_gate


def channel_scale(x, gate):
    """``x * gate`` with ``gate`` of shape (B, C, 1, 1), cheaper backward."""
    if not _needs_grad(x, gate) or graph_capture():  # see sge()
        return x * gate
    return _ChannelScale.apply(x, gate)
