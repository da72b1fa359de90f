"""Correctness of every attention module's fast path and compiled graph on a device.

    python tools/analysis/device_check.py --device cuda            # on a GPU machine
    python tools/analysis/device_check.py --device cpu --backend eager --size 8   # dry run

For each registered attention module (randomised parameters and BN statistics, train mode,
``--batch`` x C x ``--size`` x ``--size``) it compares, on ``--device``:

* **fp32**: the module as built (its fast path where it has one) and the module compiled
  (``torch.compile(backend=--backend, fullgraph=True)``) against the plain formula
  (``fused=False``, the same parameters): outputs, input gradients and parameter gradients
  within ``--rtol`` of each tensor's scale (cuDNN / TF32 are switched off for this part);
* **autocast** (float16 and bfloat16 on CUDA, bfloat16 on the CPU): the module as built and
  compiled run forward and backward under ``torch.autocast`` without a dtype error, with
  finite outputs and gradients, within ``--amp-rtol`` of the fp32 plain formula.

Prints one line per module and check and exits with status 1 if any check fails.
"""
import argparse
import copy
import os.path as osp
import sys
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

import torch  # noqa: E402


def randomised(module, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            std = p[0].numel()**-0.5 if p.dim() > 1 else 0.5
            p.copy_(torch.randn(p.shape, generator=gen) * std)
        for name, buf in module.named_buffers():
            if name.endswith('running_var'):
                buf.copy_(torch.rand(buf.shape, generator=gen) + 0.5)
            elif name.endswith('running_mean'):
                buf.copy_(torch.randn(buf.shape, generator=gen) * 0.2)
    return module


def build(type_name, channels):
    from resvariants.models.attention import attention_types
    kwargs = dict(groups=8) if type_name == 'SGE' else {}
    return randomised(attention_types()[type_name](channels, **kwargs))


def run(module, inputs, grad, dtype=None):
    """Output, input gradients and parameter gradients (float32) of one train-mode step."""
    module.train()
    module.zero_grad(set_to_none=True)
    xs = [x.detach().clone().requires_grad_() for x in inputs]
    device_type = xs[0].device.type
    with torch.autocast(device_type, dtype=dtype or torch.float32, enabled=dtype is not None):
        out = module(xs if len(xs) > 1 else xs[0])
    out.backward(grad.to(out.dtype))
    params = {k: p.grad.float() for k, p in module.named_parameters() if p.grad is not None}
    return out.float(), [x.grad.float() for x in xs], params


def worst_error(got, expected):
    """The largest ``max |a - b| / max |b|`` over output, input and parameter gradients."""
    pairs = [(got[0], expected[0])] + list(zip(got[1], expected[1]))
    pairs += [(got[2][k], expected[2][k]) for k in expected[2]]
    if set(got[2]) != set(expected[2]):
        return float('inf')
    worst = 0.0
    for a, b in pairs:
        if not torch.isfinite(a).all():
            return float('inf')
        worst = max(worst, ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item())
    return worst


def check_module(type_name, args):
    """``[(check, error, tolerance)]`` for one module type."""
    from resvariants.models.attention import attention_placement
    device = torch.device(args.device)
    channels = args.channels
    num_inputs = 2 if attention_placement(type_name) == 'branches' else 1
    gen = torch.Generator().manual_seed(1)
    shape = (args.batch, channels, args.size, args.size)
    inputs = [torch.randn(shape, generator=gen).to(device) for _ in range(num_inputs)]
    grad = torch.randn(shape, generator=gen).to(device)
    built = build(type_name, channels).to(device)
    plain = copy.deepcopy(built)
    if hasattr(plain, 'fused'):
        plain.fused = False
    compiled = copy.deepcopy(plain)
    compiled.compile(backend=args.backend, fullgraph=True, dynamic=False)
    # every module starts from the same state: a train step updates BN statistics
    expected = run(copy.deepcopy(plain), inputs, grad)
    variants = {'built': built, 'compiled': compiled}
    results = []
    for what, module in variants.items():
        error = worst_error(run(copy.deepcopy(module) if what == 'built' else module,
                                inputs, grad), expected)
        results.append((f'fp32 {what}', error, args.rtol))
    for dtype in amp_dtypes(device):
        for what, module in variants.items():
            try:
                got = run(copy.deepcopy(module) if what == 'built' else module, inputs, grad,
                          dtype)
                error = worst_error(got, expected)
            except (RuntimeError, TypeError) as exc:  # a dtype mismatch surfaces here
                print(f'    {type_name} {what} {dtype}: {type(exc).__name__}: {exc}')
                error = float('inf')
            results.append((f'{str(dtype).removeprefix("torch.")} {what}', error,
                            args.amp_rtol))
    return results


def amp_dtypes(device):
    if device.type == 'cuda':
        return [torch.float16, torch.bfloat16]
    return [torch.bfloat16]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--backend', default='inductor', help='torch.compile backend')
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--channels', type=int, default=64)
    parser.add_argument('--size', type=int, default=14)
    parser.add_argument('--rtol', type=float, default=1e-4,
                        help='fp32: max error relative to each tensor\'s scale')
    parser.add_argument('--amp-rtol', type=float, default=5e-2,
                        help='autocast: max error relative to the fp32 plain formula')
    parser.add_argument('--modules', nargs='+', default=None,
                        help='attention type names (default: every registered one)')
    args = parser.parse_args(argv)
    if torch.device(args.device).type == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: torch sees no GPU (use --device cpu for a dry run)')
    if args.size < 2 or args.batch < 2:
        parser.error('--size and --batch must be >= 2 (a std needs two values)')
    return args


def main(argv=None):
    args = parse_args(argv)
    import resvariants  # noqa: F401  (registers the modules)
    from resvariants.models.attention import attention_types
    if torch.device(args.device).type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    names = args.modules or sorted(attention_types())
    unknown = sorted(set(names) - set(attention_types()))
    if unknown:
        raise SystemExit(f'--modules: unknown {unknown}; registered: {sorted(attention_types())}')
    failures, table = [], {}
    for name in names:
        for check, error, tol in check_module(name, args):
            ok = error <= tol
            table[(name, check)] = dict(error=error, tolerance=tol, ok=ok)
            print(f'{name:10s} {check:20s} error {error:.2e} (tolerance {tol:.0e}) '
                  f'{"ok" if ok else "FAILS"}', flush=True)
            if not ok:
                failures.append(f'{name} {check}')
    print(f'{len(table) - len(failures)}/{len(table)} checks hold on {args.device}'
          + (f'; failing: {", ".join(failures)}' if failures else ''))
    if failures:
        raise SystemExit(1)
    return table


if __name__ == '__main__':
    main()
