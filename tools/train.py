"""Train a classifier (mmpretrain config) or a detector (mmdet config).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--auto-scale-lr]
                          [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from resvariants.engine.cli import (add_common_args, build_runner, common_parser,  # noqa: E402
                                    finish_args, load_config)


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
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f'--resume checkpoint not found: {args.resume}')
        cfg.resume = True
        cfg.load_from = args.resume
    runner = build_runner(cfg)
    runner.train()


if __name__ == '__main__':
    main()
