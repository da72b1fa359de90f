"""Inference latency of residual vs plain ResNets ("ResNet with No Res" and exact removal).

    python tools/analysis/benchmark_plain.py [--archs resnet18 resnet20 resnet50]
        [--batch-sizes 1 32] [--device cpu|cuda] [--threads N] [--runs 5] [--stat median|min]
        [--testset]

For each architecture it times (median, or ``--stat min``, of ``--runs`` forward passes after a
warm-up, eval mode, no autograd; the forms take turns pass by pass, so load from other processes
hits them alike) five forms of the same network:

* ``residual``: the trained residual network as it is (conv + BN, additions, shortcut convs);
* ``plain``: the distilled student (``PlainResNet``: conv + BN, no addition, no shortcut conv);
* ``residual fused``: the residual network with BN folded into the convs;
* ``plain fused``: the plain student with BN folded (what the converter writes for it);
* ``RM exact``: the residual network converted exactly by ``remove_residual`` (folded, no
  addition, reserved identity channels: same outputs as ``residual``).

``resnet20`` is the source's CIFAR ResNet-20 at 28x28 (its test crop); ``resnet18`` /
``resnet50`` are the ImageNet networks at 224x224. Weights are random with BN statistics
measured on random data (timings do not depend on the values). ``--testset`` adds the
source's own measure for ResNet-20: one pass over 10,000 28x28 images in batches of 1024 (the
CIFAR-100 test set size), in seconds. Prints a markdown table; parameters and GMACs (conv +
linear multiply-accumulates of the backbone) come with it.
"""
import argparse
import os.path as osp
import platform
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

ARCHS = {
    # name: (backbone kwargs, input size)
    'resnet18': (dict(depth=18), 224),
    'resnet20': (dict(depth=20), 28),
    'resnet50': (dict(depth=50), 224),
}
FORMS = ('residual', 'plain', 'residual fused', 'plain fused', 'RM exact')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Latency of residual vs plain ResNets')
    parser.add_argument('--archs', nargs='+', default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 32])
    parser.add_argument('--device', default='cpu', help='cpu or cuda')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch default)')
    parser.add_argument('--runs', type=int, default=5, help='timed passes per measurement')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--stat', choices=['median', 'min'], default='median',
                        help='statistic of the timed runs (min resists load from other '
                             'processes on a shared machine)')
    parser.add_argument('--testset', action='store_true',
                        help='also time a 10,000-image pass of ResNet-20 (batch 1024)')
    return parser.parse_args(argv)


def calibrated(model, size, device):
    """Eval-mode model whose BN statistics come from a random batch (realistic activations)."""
    import torch
    from torch.nn.modules.batchnorm import _BatchNorm
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    with torch.no_grad():
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None
        model.train()
        model(torch.randn(8, 3, size, size))
    return model.eval().to(device)


def build_forms(arch, device):
    """The five forms of ``arch`` (see the module docstring), in eval mode on ``device``."""
    import torch

    from resvariants.converters.remove_residual import fold_batchnorm, remove_residual
    from resvariants.models import CifarResNet, PlainResNet, ResNet
    kwargs, size = ARCHS[arch]
    residual_cls = CifarResNet if kwargs['depth'] == 20 else ResNet
    torch.manual_seed(0)
    residual = calibrated(residual_cls(**kwargs), size, 'cpu')
    plain = calibrated(PlainResNet(**kwargs), size, 'cpu')
    forms = {
        'residual': residual,
        'plain': plain,
        'residual fused': fold_batchnorm(residual),
        'plain fused': remove_residual(plain),
        'RM exact': remove_residual(residual),
    }
    return {name: model.to(device).eval() for name, model in forms.items()}, size


def time_forms(forms, inputs, warmup, runs, stat):
    """Milliseconds per pass of each form.

    The forms take turns (``runs`` rounds), so a change of load on a shared machine hits them
    alike. A turn times enough passes to last about 0.25 s (at least one) and keeps their
    median; the result is the ``stat`` (min or median) over the rounds.
    """
    import math
    import statistics

    from resvariants.analysis.latency import measure_latency
    passes = {}
    for name, model in forms.items():
        first = measure_latency(model, inputs, warmup=max(warmup - 1, 0), runs=1).median_ms
        passes[name] = min(50, max(1, math.ceil(250 / max(first, 1e-3))))
    samples = {name: [] for name in forms}
    for _ in range(runs):
        for name, model in forms.items():
            samples[name].append(
                measure_latency(model, inputs, warmup=0, runs=passes[name]).median_ms)
    reduce = min if stat == 'min' else statistics.median
    return {name: reduce(values) for name, values in samples.items()}


def complexity(model, size):
    from resvariants.analysis import count_complexity
    result = count_complexity(model, (size, size))
    return result.params, result.gmacs


def main(argv=None):
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        raise RuntimeError('--device cuda asked for, but torch sees no GPU')
    device = torch.device(args.device)
    where = (torch.cuda.get_device_name(device) if device.type == 'cuda' else
             f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads')
    print(f'device: {args.device} ({where}); torch {torch.__version__}; {args.stat} of '
          f'{args.runs} runs after {args.warmup} warm-up; times in ms')
    header = '| model | input | batch | ' + ' | '.join(FORMS) + ' | plain / residual | ' \
             'RM exact / residual fused |'
    rows, figures = [], {}
    for arch in args.archs:
        forms, size = build_forms(arch, device)
        figures[arch] = {name: complexity(model.cpu(), size) for name, model in forms.items()}
        for model in forms.values():
            model.to(device)
        for batch in args.batch_sizes:
            inputs = torch.randn(batch, 3, size, size, device=device)
            times = time_forms(forms, inputs, args.warmup, args.runs, args.stat)
            rows.append(f'| {arch} | {size}x{size} | {batch} | '
                        + ' | '.join(f'{times[name]:.1f}' for name in FORMS)
                        + f' | {times["plain"] / times["residual"]:.2f} | '
                        f'{times["RM exact"] / times["residual fused"]:.2f} |')
        if args.testset and arch == 'resnet20':
            # 10,000 images = 9 full batches of 1024 + one of 784
            inputs = torch.randn(1024, 3, size, size, device=device)
            full = time_forms(forms, inputs, args.warmup, args.runs, args.stat)
            last = time_forms(forms, inputs[:784], 0, args.runs, args.stat)
            times = {name: (9 * full[name] + last[name]) / 1e3 for name in forms}
            rows.append(f'| resnet20, 10k-image pass (s) | {size}x{size} | 1024 | '
                        + ' | '.join(f'{times[name]:.2f}' for name in FORMS)
                        + f' | {times["plain"] / times["residual"]:.2f} | '
                        f'{times["RM exact"] / times["residual fused"]:.2f} |')
    print(header)
    print('|' + '---|' * (len(FORMS) + 5))
    for row in rows:
        print(row)
    print()
    print('| model | ' + ' | '.join(f'{name} params / GMACs' for name in FORMS) + ' |')
    print('|' + '---|' * (len(FORMS) + 1))
    for arch, values in figures.items():
        print(f'| {arch} | ' + ' | '.join(f'{values[name][0] / 1e6:.3f} M / {values[name][1]:.4f}'
                                          for name in FORMS) + ' |')
    return rows, figures


if __name__ == '__main__':
    main()
