"""Evaluate a checkpoint: COCO mAP for detectors, top-1/top-5 for classifiers.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
                         [--cfg-options k=v ...] [--launcher ...]
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from resvariants.engine.cli import (add_common_args, build_loop_with_clear_errors,  # noqa: E402
                                    build_runner, check_checkpoint_file, check_data_paths,
                                    check_model_types, common_parser,
                                    finish_args, finish_distributed, load_config)


def parse_args(argv=None):
    parser = common_parser('Test (evaluate) a resvariants model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='dump predictions to a pickle file (.pkl)')
    add_common_args(parser)
    return finish_args(parser.parse_args(argv))


def check_checkpoint_matches_model(runner, checkpoint):
    """Refuse a checkpoint of another model, listing missing / unexpected / mis-shaped keys.

    mmengine loads test checkpoints with ``strict=False`` and only logs mismatches, so a wrong
    checkpoint would be evaluated with random weights. The check reads the keys and shapes
    weights-only (tensor data memory-mapped); mmengine then loads the file as usual.
    """
    import torch
    from mmengine.model import is_model_wrapper

    from resvariants.engine.strict_pretrained import compare_state_dicts
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    try:
        state = torch.load(checkpoint, map_location='cpu', weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) format cannot be memory-mapped
        state = torch.load(checkpoint, map_location='cpu', weights_only=True)
    state = state.get('state_dict', state) if isinstance(state, dict) else None
    if not isinstance(state, dict):
        raise KeyError(f'{checkpoint} holds no state_dict')
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    missing, unexpected, mis_shaped = compare_state_dicts(model.state_dict(), state)
    if missing or unexpected or mis_shaped:
        lines = [f'{checkpoint} does not match the model of the config '
                 f'({type(model).__name__}):']
        for title, keys in (('missing keys', missing), ('unexpected keys', unexpected),
                            ('mis-shaped keys', mis_shaped)):
            if keys:
                lines.append(f'  {len(keys)} {title}: ' + ', '.join(keys[:20])
                             + (' ...' if len(keys) > 20 else ''))
        raise KeyError('\n'.join(lines))


def main(argv=None):
    args = parse_args(argv)
    check_checkpoint_file(args.checkpoint)
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
    runner = build_runner(cfg)
    check_checkpoint_matches_model(runner, args.checkpoint)
    build_loop_with_clear_errors(runner, 'test')
    metrics = runner.test()
    finish_distributed()
    return metrics


if __name__ == '__main__':
    main()
