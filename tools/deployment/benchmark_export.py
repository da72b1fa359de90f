"""Tables of docs/deployment.md: what exports (and how close), and CPU latency of the exported
files beside PyTorch's.

    # what exports: each config's backbone to ONNX and TorchScript, max |diff| at two sizes
    python tools/deployment/benchmark_export.py --matrix [--configs ...]
    # latency at batch 1: PyTorch eager, TorchScript, onnxruntime (CPU), the ResNet-50 classifiers
    python tools/deployment/benchmark_export.py --threads 2 --runs 30 [--configs ...]

``--matrix`` exports the backbone (``--with-head``: the whole classifier) of every config with
random weights (``resvariants.deployment.random_weights``: every branch live, features of
order 1) at ``--shape``, with the TorchScript-based ONNX exporter and ``torch.jit.trace``, and
prints max |exported - PyTorch| at the two verification sizes.

The latency mode exports the whole classifier (image -> logits) of each config once per format,
checks the files against PyTorch at the timed size, then times ``--runs`` rounds in which every
runner of every config takes one turn (interleaved, so load from other processes hits all
alike) after ``--warmup`` rounds, and prints the median per runner: PyTorch eager
(``torch.inference_mode``, the fast paths on), the traced TorchScript module, and an
onnxruntime CPU session (its threads do not spin between runs: spinning threads would take
the CPU from the next runner); ``torch.set_num_threads`` and onnxruntime's intra-op threads are
both ``--threads``. Timings mean something only on an otherwise idle machine.
"""
import argparse
import glob
import os.path as osp
import platform
import statistics
import sys
import tempfile
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: the ResNet-50 classifiers of the model zoo (docs/benchmarks.md's rows), plus the ED, octave
#: and weight-standardised trunks
LATENCY_CONFIGS = [f'configs/imagenet/{name}_in1k.py' for name in (
    'resnet50', 'se_resnet50', 'sk_resnet50', 'cbam_resnet50', 'bam_resnet50', 'gc_resnet50',
    'sge_resnet50', 'srm_resnet50', 'ed_resnet50', 'oct_resnet50', 'ws_resnet50')]
#: one config per registered backbone class with a config (detector configs: the backbone is
#: exported); CompactResNet's configs are written by the compact converter, the registry test
#: exports it
MATRIX_CONFIGS = LATENCY_CONFIGS + [
    'projects/epsilon_resnet/configs/eps-resnet50_cls-small.py',
    'projects/epsilon_resnet/configs/eps-preact-resnet110_cifar10.py',
    'projects/resnet_no_res/configs/faster-rcnn_plain-r50_fpn_det-small.py',
    'projects/resnet_no_res/configs/faster-rcnn_rm-plain-r50_fpn_det-small.py',
    'projects/resnet_no_res/configs/resnet20_1xb1024_cifar100.py',
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Export matrix and exported-model latency')
    parser.add_argument('--matrix', action='store_true',
                        help='what exports: max |diff| of ONNX and TorchScript per config')
    parser.add_argument('--configs', nargs='+', default=None,
                        help='config paths or globs (default: the ResNet-50 classifiers; '
                        'with --matrix also one config of every other backbone)')
    parser.add_argument('--shape', type=int, default=224, help='square input size')
    parser.add_argument('--with-head', action='store_true',
                        help='--matrix: export whole classifiers (latency always does)')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--runs', type=int, default=30)
    return parser.parse_args(argv)


def _configs(patterns, default):
    found = []
    for pattern in patterns or default:
        path = pattern if osp.isabs(pattern) else osp.join(REPO, pattern)
        matches = sorted(glob.glob(path))
        if not matches:
            raise FileNotFoundError(f'no config matches {pattern}')
        found.extend(matches)
    return found


def _name(config):
    return osp.splitext(osp.basename(config))[0]


def _is_classifier(config):
    from resvariants.engine.config_loading import read_config
    return read_config(config).get('default_scope', None) != 'mmdet'


def _build(config, shape, with_head):
    """The config's part with the tests' random weights; where its features are not finite
    with them (weight standardisation: every conv rescaled by its fan-in), BN statistics
    measured on a random batch instead. Returns (part, weights note)."""
    import torch

    from resvariants.deployment import build_exportable, example_input, random_weights
    part, _ = build_exportable(config, None, with_head=with_head, warn=False)
    random_weights(part)
    with torch.no_grad():
        finite = all(torch.isfinite(o).all() for o in part(example_input((shape, shape), 1)))
    if finite:
        return part, ''
    return random_weights(part, (shape, shape)), ' (BN statistics measured)'


def matrix(args):
    """Rows: config, backbone, attention, ONNX and TorchScript max |diff| at the two sizes."""
    from resvariants.deployment import (ExportError, example_input, export,
                                        verification_shapes, verify)
    shape = (args.shape, args.shape)
    sizes = verification_shapes(shape)
    size_text = ' / '.join(f'{h}x{w}' for h, w in sizes)
    print(f'| config | exported | ONNX max abs diff ({size_text}) | '
          f'TorchScript max abs diff ({size_text}) | max abs output |')
    print('|---|---|---|---|---|')
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for config in _configs(args.configs, MATRIX_CONFIGS):
            with_head = args.with_head and _is_classifier(config)
            try:
                part, note = _build(config, args.shape, with_head)
            except Exception as exc:  # a config that does not build here: say so, go on
                failures += 1
                print(f'| {_name(config)} | cannot build: {str(exc)[:100]} | | | |', flush=True)
                continue
            cells, scale = [], 0.0
            for fmt in ('onnx', 'torchscript'):
                path = osp.join(tmp, f'{_name(config)}.{fmt}')
                try:
                    export(part, example_input(shape), path, fmt)
                    results = verify(part, path, fmt, sizes, batch=2)
                    cells.append(' / '.join(f'{max(r["diffs"]):.1e}' for r in results))
                    scale = max([scale] + [max(r['scales']) for r in results])
                except ExportError as exc:
                    failures += 1
                    cells.append(f'fails: {str(exc)[:80]}')
            what = '+'.join(part.parts) + f' ({type(part.backbone).__name__}'
            attention = _attention_of(part.backbone)
            what += (f', {attention})' if attention else ')') + note
            print(f'| {_name(config)} | {what} | {cells[0]} | {cells[1]} | {scale:.2f} |',
                  flush=True)
    return failures


def _attention_of(backbone):
    from resvariants.models.attention import attention_types
    types = tuple(attention_types().values())
    found = sorted({type(m).__name__ for m in backbone.modules() if isinstance(m, types)})
    return ', '.join(found)


def _cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _time(call, x):
    start = time.perf_counter()
    call(x)
    return (time.perf_counter() - start) * 1e3


def latency(args):
    import onnxruntime
    import torch

    from resvariants.deployment import Runner, example_input, export, verify
    torch.set_num_threads(args.threads)
    shape = (args.shape, args.shape)
    x = example_input(shape, batch=1)
    runners = {}
    with tempfile.TemporaryDirectory() as tmp:
        for config in _configs(args.configs, LATENCY_CONFIGS):
            part, _ = _build(config, args.shape, with_head=_is_classifier(config))
            name = _name(config)

            def eager(inputs, part=part):
                with torch.inference_mode():
                    return part(inputs)

            runners[name] = {'PyTorch eager': eager}
            for fmt, label in (('torchscript', 'TorchScript'), ('onnx', 'ONNX Runtime')):
                path = osp.join(tmp, f'{name}.{fmt}')
                export(part, example_input(shape), path, fmt)
                verify(part, path, fmt, [shape], batch=1, threads=args.threads)  # equality first
                runners[name][label] = Runner(path, fmt, threads=args.threads, spinning=False)
            print(f'exported and verified {name}', file=sys.stderr, flush=True)
        times = {(n, label): [] for n, rs in runners.items() for label in rs}
        for round_index in range(args.warmup + args.runs):
            for name, rs in runners.items():
                for label, call in rs.items():
                    elapsed = _time(call, x)
                    if round_index >= args.warmup:
                        times[name, label].append(elapsed)
    labels = ['PyTorch eager', 'TorchScript', 'ONNX Runtime']
    print(f'CPU: {_cpu_name()}, {args.threads} threads; torch '
          f'{torch.__version__}, onnxruntime {onnxruntime.__version__}; batch 1, '
          f'{args.shape}x{args.shape}; median of {args.runs} interleaved rounds '
          f'({args.warmup} warm-up)')
    print('| config | ' + ' | '.join(f'{label} (ms)' for label in labels) +
          ' | ONNX Runtime / eager |')
    print('|---|' + '---|' * (len(labels) + 1))
    for name in runners:
        medians = [statistics.median(times[name, label]) for label in labels]
        print(f'| {name} | ' + ' | '.join(f'{m:.1f}' for m in medians) +
              f' | {medians[2] / medians[0]:.2f} |')


def main(argv=None):
    args = parse_args(argv)
    import resvariants  # noqa: F401
    if args.matrix:
        return matrix(args)
    latency(args)
    return 0


if __name__ == '__main__':
    sys.exit(1 if main() else 0)
