"""Export a config's backbone (or backbone + neck, or whole classifier) to ONNX or TorchScript
and verify the file against PyTorch.

    python tools/deployment/export.py CONFIG [CHECKPOINT] [--format onnx|torchscript]
        [--exporter torchscript|dynamo] [--out FILE] [--shape H W] [--with-neck | --with-head]

CONFIG is a classifier (mmpretrain) or detector (mmdet) config; CHECKPOINT a checkpoint of it
(read weights-only), or a bare backbone checkpoint; omitted or ``none``: random weights, with
a warning (the file then only shows that the model exports). The file has dynamic batch,
height and width. After exporting, the file is run (onnxruntime's CPU provider, or the
reloaded TorchScript module) at two input sizes other than ``--shape`` and every output is
compared with PyTorch's; the tool prints the max |difference| per size and exits non-zero when
it exceeds ``--tolerance`` (default 1e-4) times max(1, max |output|), or the file does not
run. docs/deployment.md.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from resvariants.deployment.core import (DEFAULT_OPSET, DEFAULT_TOLERANCE,  # noqa: E402
                                           EXPORTERS, FORMATS)

SUFFIX = {'onnx': '.onnx', 'torchscript': '.pt'}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a backbone to ONNX / TorchScript and check it against PyTorch')
    parser.add_argument('config', help='config file (classifier or detector)')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='checkpoint of the config (or of its backbone); omit or "none" '
                        'for random weights')
    parser.add_argument('--format', choices=FORMATS, default='onnx', help='default: onnx')
    parser.add_argument('--exporter', choices=EXPORTERS, default='torchscript',
                        help='ONNX exporter: torch.onnx\'s TorchScript-based one (default, as '
                        'mmdeploy) or the torch.export-based one (dynamo=True, needs onnxscript)')
    parser.add_argument('--out', help='output file (default: work_dirs/deploy/<config name>'
                        '[_neck|_head].onnx / .pt)')
    parser.add_argument('--shape', type=int, nargs='+', default=[224, 224],
                        help='export input size: H W, or one number for a square input')
    parser.add_argument('--verify-shapes', type=int, nargs='+', default=None,
                        help='H W pairs to verify at (default: two sizes other than --shape)')
    parser.add_argument('--batch', type=int, default=2, help='verification batch size')
    part = parser.add_mutually_exclusive_group()
    part.add_argument('--with-neck', action='store_true',
                      help='export the backbone and the neck (e.g. FPN): all its outputs')
    part.add_argument('--with-head', action='store_true',
                      help='export the whole classifier (backbone, neck, head: logits)')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET,
                        help=f'ONNX opset (default {DEFAULT_OPSET}; the dynamo exporter uses '
                        f'at least 18)')
    parser.add_argument('--tolerance', type=float, default=DEFAULT_TOLERANCE,
                        help=f'largest max |exported - PyTorch| accepted, times max(1, max '
                        f'|output|) (default {DEFAULT_TOLERANCE:g})')
    parser.add_argument('--cfg-options', nargs='+', default=None,
                        help='key=value overrides, as in tools/train.py')
    return parser.parse_args(argv)


def _pairs(values, what):
    if values is None:
        return None
    if len(values) == 1:
        values = values * 2
    if len(values) % 2 or min(values) < 1:
        raise ValueError(f'{what} takes H W pairs of positive sizes, got {values}')
    return [tuple(values[i:i + 2]) for i in range(0, len(values), 2)]


def default_output(config, fmt, with_neck=False, with_head=False):
    name = osp.splitext(osp.basename(config))[0]
    name += '_neck' if with_neck else '_head' if with_head else ''
    return osp.join('work_dirs', 'deploy', name + SUFFIX[fmt])


def main(argv=None):
    args = parse_args(argv)
    import resvariants  # noqa: F401  (weights-only allow-list for mmengine checkpoints)
    from resvariants.deployment import (ExportError, build_exportable, example_input, export,
                                        verification_shapes, verify)
    shape = _pairs(args.shape, '--shape')
    if len(shape) != 1:
        raise ValueError(f'--shape takes H W (or one size), got {args.shape}')
    shape = shape[0]
    shapes = _pairs(args.verify_shapes, '--verify-shapes') or verification_shapes(shape)
    if args.format == 'torchscript' and args.exporter != 'torchscript':
        raise ValueError('--exporter chooses the ONNX exporter; --format torchscript is '
                         'torch.jit.trace (drop --exporter)')
    if args.batch < 1:
        raise ValueError(f'--batch must be >= 1, got {args.batch}')
    out = args.out or default_output(args.config, args.format, args.with_neck, args.with_head)
    part, weights = build_exportable(args.config, args.checkpoint, args.with_neck,
                                     args.with_head, args.cfg_options)
    what = '+'.join(part.parts)
    opset = max(args.opset, 18) if args.exporter == 'dynamo' else args.opset
    how = f'{args.format}' + (f' ({args.exporter} exporter, opset {opset})'
                               if args.format == 'onnx' else ' (torch.jit.trace)')
    print(f'Config: {args.config}')
    print(f'Weights: {weights}')
    print(f'Exporting {what} of {type(part.backbone).__name__} as {how} at '
          f'{shape[0]}x{shape[1]} -> {out}')
    export(part, example_input(shape), out, args.format, args.exporter, args.opset)
    try:
        results = verify(part, out, args.format, shapes, batch=args.batch,
                         tolerance=args.tolerance)
    except ExportError as exc:
        print(f'FAILED: {exc}', file=sys.stderr)
        raise SystemExit(1)
    for r in results:
        h, w = r['shape']
        print(f'Verified at {args.batch}x3x{h}x{w}: max |exported - PyTorch| = '
              f'{max(r["diffs"]):.3g} over {len(r["diffs"])} output(s) (outputs up to '
              f'{max(r["scales"]):.3g})')
    worst = max(max(r['diffs']) for r in results)
    print(f'OK: {out} (max |diff| {worst:.3g}; tolerance {args.tolerance:g} x max(1, '
          f'max |output|))')
    return dict(out=out, results=results, max_abs_diff=worst)


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, KeyError, ValueError, RuntimeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f'error: {message}', file=sys.stderr)
        raise SystemExit(2)
