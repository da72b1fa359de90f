"""Evaluate a checkpoint: COCO mAP for detectors, top-1/top-5 for classifiers.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
                         [--cfg-options k=v ...] [--launcher ...]
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from resvariants.engine.cli import (add_common_args, build_runner, common_parser,  # noqa: E402
                                    finish_args, load_config)


def parse_args(argv=None):
    parser = common_parser('Test (evaluate) a resvariants model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='dump predictions to a pickle file (.pkl)')
    add_common_args(parser)
    return finish_args(parser.parse_args(argv))


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl file, got {args.out}')
        metric_type = ('mmdet.DumpDetResults' if cfg.get('default_scope') == 'mmdet'
                       else 'mmpretrain.DumpResults')
        evaluator = cfg.test_evaluator
        evaluator = list(evaluator) if isinstance(evaluator, (list, tuple)) else [evaluator]
        evaluator.append(dict(type=metric_type, out_file_path=args.out))
        cfg.test_evaluator = evaluator
    runner = build_runner(cfg)
    metrics = runner.test()
    return metrics


if __name__ == '__main__':
    main()
