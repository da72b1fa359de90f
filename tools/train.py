"""Train a classifier (mmpretrain config) or a detector (mmdet config).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--auto-scale-lr]
                          [--recipe NAME] [--sync-bn] [--cfg-options k=v ...]
                          [--launcher {none,pytorch,slurm,mpi}]
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from resvariants.engine.config_loading import (add_common_args, build_runner,  # noqa: E402
                                               common_parser, finish_args, load_config)
from resvariants.engine.cpu_distributed import (finish_distributed,  # noqa: E402
                                                start_cpu_process_group)
from resvariants.engine.preflight import (check_checkpoint_file, check_data_paths,  # noqa: E402
                                          check_init_checkpoints, check_model_types,
                                          resolve_auto_resume, run_with_clear_errors)


def parse_args(argv=None):
    parser = common_parser('Train a resvariants (mmdet or mmpretrain) model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by world_size * batch / auto_scale_lr.base_batch_size')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from CKPT, or (no value) from the latest checkpoint in the work dir')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate during training')
    parser.add_argument(
        '--recipe', action='append', metavar='NAME',
        help='merge a training recipe into the config (configs/_recipes/NAME.py or a file '
             'that defines recipe_overrides), e.g. imagenet_tricks; repeatable')
    parser.add_argument(
        '--sync-bn', nargs='?', const='torch', choices=['torch', 'mmcv'],
        help="mmdet's -syncbn recipe: every BN synchronized across GPUs (mmengine's sync_bn), "
             'the backbone BN trained, the lr kept on resume at another world size')
    add_common_args(parser)
    return finish_args(parser.parse_args(argv))


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise RuntimeError('--auto-scale-lr needs "auto_scale_lr.base_batch_size" in the '
                               'config')
        cfg.auto_scale_lr.enable = True
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    check_model_types(cfg)
    check_init_checkpoints(cfg)
    check_data_paths(cfg, ('train_dataloader', 'val_dataloader')
                     if cfg.get('val_cfg', None) else ('train_dataloader', ))
    if args.resume == 'auto':
        # the checkpoint last_checkpoint names, or the newest readable one if a crash left
        # that one unusable; none: start from scratch
        cfg.load_from = resolve_auto_resume(cfg.work_dir) if osp.isdir(cfg.work_dir) else None
        cfg.resume = cfg.load_from is not None
    elif args.resume is not None:
        check_checkpoint_file(args.resume, '--resume checkpoint')
        cfg.resume = True
        cfg.load_from = args.resume
    if not cfg.get('resume', False) and cfg.get('load_from', None) and \
            '://' not in cfg.load_from:  # URLs: mmengine downloads and loads weights-only
        check_checkpoint_file(cfg.load_from, 'load_from checkpoint')
    start_cpu_process_group(cfg)
    runner = build_runner(cfg)
    run_with_clear_errors(runner, 'train')
    finish_distributed()


if __name__ == '__main__':
    main()
