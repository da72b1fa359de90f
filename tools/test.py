"""Evaluate a checkpoint: COCO mAP for detectors, top-1/top-5 for classifiers.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
                         [--fuse-conv-bn] [--channels-last]
                         [--cfg-options k=v ...] [--launcher ...]
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from resvariants.engine.config_loading import (add_common_args, build_runner,  # noqa: E402
                                               common_parser, finish_args, load_config)
from resvariants.engine.cpu_distributed import (finish_distributed,  # noqa: E402
                                                start_cpu_process_group)
from resvariants.engine.preflight import (check_data_paths, check_model_types,  # noqa: E402
                                          run_with_clear_errors)
from resvariants.utils.safe_load import read_checkpoint, state_dict_of  # noqa: E402


def parse_args(argv=None):
    parser = common_parser('Test (evaluate) a resvariants model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='dump predictions to a pickle file (.pkl)')
    parser.add_argument('--fuse-conv-bn', action='store_true',
                        help='fold every BatchNorm into the convolution before it (faster '
                             'inference, same outputs to float rounding)')
    parser.add_argument('--channels-last', action='store_true',
                        help='run the backbone in channels_last memory format (faster on the '
                             'CPU for every variant but SGE; docs/benchmarks.md)')
    add_common_args(parser)
    return finish_args(parser.parse_args(argv))


def check_checkpoint_matches_model(runner, checkpoint, path):
    """Refuse a checkpoint of another model, listing missing / unexpected / mis-shaped keys.

    mmengine loads test checkpoints with ``strict=False`` and only logs mismatches, so a wrong
    checkpoint would be evaluated with random weights. ``checkpoint`` is the file as read by
    :func:`read_checkpoint` (weights-only, tensor data memory-mapped); mmengine then loads the
    file as usual.
    """
    from mmengine.model import is_model_wrapper

    from resvariants.engine.strict_pretrained import mismatch_report
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    report = mismatch_report(model, state_dict_of(checkpoint, path),
                             f'{path} (the model of the config)')
    if report is not None:
        raise KeyError(report)


def main(argv=None):
    args = parse_args(argv)
    # read once, weights-only and memory-mapped: refused or unreadable files fail here
    checkpoint = read_checkpoint(args.checkpoint, mmap=True)
    cfg = load_config(args)
    check_model_types(cfg)
    check_data_paths(cfg, ('test_dataloader', ))
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
    if args.fuse_conv_bn or args.channels_last:
        cfg.custom_hooks = list(cfg.get('custom_hooks', None) or []) + [dict(
            type='resvariants.InferenceFastPathHook', fuse_conv_bn=args.fuse_conv_bn,
            channels_last=args.channels_last)]
    start_cpu_process_group(cfg)
    runner = build_runner(cfg)
    check_checkpoint_matches_model(runner, checkpoint, args.checkpoint)
    del checkpoint
    metrics = run_with_clear_errors(runner, 'test')
    finish_distributed()
    return metrics


if __name__ == '__main__':
    main()
