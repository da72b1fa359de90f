"""Shared logic of ``tools/train.py`` and ``tools/test.py`` (mmdet / mmpretrain configs alike).

The framework is chosen by the config's ``default_scope``. mmpretrain configs get the
dataloader defaults mmpretrain's own ``train.py`` injects; without CUDA, distributed runs use
gloo and a CPU-friendly DDP wrapper, so ``tools/dist_train.sh CONFIG 2`` works on a CPU box.
"""
import argparse
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction


def add_common_args(parser: argparse.ArgumentParser):
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs (xxx=yyy, key="[a,b]")')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def finish_args(args):
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def load_config(args) -> Config:
    """Read the config, apply ``--cfg-options`` / ``--work-dir`` and framework defaults."""
    import resvariants  # noqa: F401  (weights-only allow-list for mmengine checkpoints)
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file not found: {args.config}')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    scope = cfg.get('default_scope', None)
    if scope == 'mmpretrain':
        _apply_mmpretrain_loader_defaults(cfg)
    _register_scope(scope)
    if args.launcher != 'none' and not torch.cuda.is_available():
        _prepare_cpu_distributed(cfg, args.launcher)
    return cfg


def _register_scope(scope):
    # mmdet and mmpretrain registries in one process: import the config's framework so its
    # modules (and ours) are registered before the Runner builds anything.
    import resvariants.models  # noqa: F401
    if scope == 'mmdet':
        import mmdet.models  # noqa: F401
        from mmdet.utils import register_all_modules
        register_all_modules(init_default_scope=False)
    elif scope == 'mmpretrain':
        from mmpretrain.utils import register_all_modules
        register_all_modules(init_default_scope=False)


def _apply_mmpretrain_loader_defaults(cfg):
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name, None)
        if loader is None:
            continue
        loader.setdefault('collate_fn', dict(type='default_collate'))
        if loader.get('num_workers', 0) > 0:
            loader.setdefault('persistent_workers', True)


def _prepare_cpu_distributed(cfg, launcher):
    """gloo process group and a device-less DDP wrapper when there is no GPU."""
    env_cfg = cfg.setdefault('env_cfg', {})
    env_cfg.setdefault('dist_cfg', {})
    env_cfg['dist_cfg']['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg', None) or dict(type='MMDistributedDataParallel')
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    if launcher == 'pytorch':
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group(backend='gloo', init_method='env://')


def build_runner(cfg):
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def common_parser(description):
    return argparse.ArgumentParser(description=description)


def check_file_args(*paths):
    for path in paths:
        if path is not None and not osp.exists(path):
            raise FileNotFoundError(f'file not found: {path}')
