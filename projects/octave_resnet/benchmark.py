"""CPU cost of ResNet vs Oct-ResNet backbones: prints a table (no assertions).

    python projects/octave_resnet/benchmark.py [--size 224] [--batch 1] [--runs 5] [--threads 1]

Columns: parameters of the backbone, conv+linear GMACs per image (the paper's FLOPs column),
and the median wall time of an eval forward pass per image on this machine's CPU. Octave
convolution lowers MACs by ~42 % at alpha 0.5; whether that shows up as time depends on the
convolution kernels (four small convs instead of one, plus pooling and upsampling).
"""
import argparse
import os.path as osp
import statistics
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='ResNet vs Oct-ResNet CPU cost table')
    parser.add_argument('--size', type=int, default=224, help='square input size')
    parser.add_argument('--batch', type=int, default=1, help='images per forward pass')
    parser.add_argument('--runs', type=int, default=5, help='timed forward passes')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--depths', type=int, nargs='+', default=[50], help='ResNet depths')
    return parser.parse_args(argv)


def median_ms_per_image(model, inputs, runs):
    import torch
    with torch.no_grad():
        for _ in range(2):
            model(inputs)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(inputs)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000 / inputs.shape[0]


def main(argv=None):
    args = parse_args(argv)
    import torch

    from resvariants.analysis import count_complexity
    from resvariants.models import OctResNet, ResNet
    torch.set_num_threads(args.threads)
    inputs = torch.randn(args.batch, 3, args.size, args.size)
    rows = []
    for depth in args.depths:
        for name, cls, kwargs in ((f'ResNet-{depth}', ResNet, {}),
                                  (f'Oct-ResNet-{depth} (a=0.5)', OctResNet, dict(alpha=0.5))):
            model = cls(depth=depth, out_indices=(3, ), **kwargs).eval()
            complexity = count_complexity(model, (args.size, args.size))
            rows.append((name, complexity.params, complexity.gmacs,
                         median_ms_per_image(model, inputs, args.runs)))
    print(f'input {args.batch}x3x{args.size}x{args.size}, {args.threads} thread(s), '
          f'median of {args.runs} runs')
    print(f'| {"backbone":<22} | {"params":>11} | {"GMACs":>7} | {"ms / image":>10} |')
    print(f'|{"-" * 24}|{"-" * 13}|{"-" * 9}|{"-" * 12}|')
    for name, params, gmacs, ms in rows:
        print(f'| {name:<22} | {params:>11,} | {gmacs:>7.3f} | {ms:>10.1f} |')
    return rows


if __name__ == '__main__':
    main()
