"""Config and scope loading of ``tools/train.py`` / ``tools/test.py`` (mmdet and mmpretrain
configs alike): the command-line arguments they share, reading a config with its recipes and
overrides, and registering the framework its ``default_scope`` names."""
import argparse
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction

from .cpu_distributed import cpu_distributed_cfg


def common_parser(description):
    return argparse.ArgumentParser(description=description)


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
    """Read the config; apply ``--recipe`` / ``--sync-bn``, then ``--cfg-options`` and
    ``--work-dir``, the framework's loader defaults and, for a launcher without CUDA, the CPU
    distributed settings (:func:`cpu_distributed_cfg`; the process group is started later, by
    :func:`start_cpu_process_group`)."""
    import resvariants  # noqa: F401  (weights-only allow-list for mmengine checkpoints)
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file not found: {args.config}')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    # training recipes first, so that --cfg-options can still override them
    from .recipes import apply_recipe, apply_sync_bn
    for recipe in getattr(args, 'recipe', None) or ():
        apply_recipe(cfg, recipe)
    if getattr(args, 'sync_bn', None):
        apply_sync_bn(cfg, args.sync_bn)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    scope = cfg.get('default_scope', None)
    if scope == 'mmpretrain':
        apply_mmpretrain_loader_defaults(cfg)
    register_scope(scope)
    if args.launcher != 'none' and not torch.cuda.is_available():
        cpu_distributed_cfg(cfg)
    return cfg


def read_config(path, cfg_options=None) -> Config:
    """A config file with overrides: ``cfg_options`` is a dict or the ``key=value`` strings of
    a tool's ``--cfg-options``."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options and not isinstance(cfg_options, dict):
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        cfg_options = parser.parse_args(['--o', *cfg_options]).o
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def build_model(cfg, model_cfg=None, without_checkpoint=False):
    """Build ``model_cfg`` (default ``cfg.model``) in the scope of ``cfg`` (``default_scope``,
    else mmpretrain). ``without_checkpoint`` drops a backbone ``init_cfg`` that loads weights
    (counting, converting: the weights come from elsewhere)."""
    import copy

    from mmengine.registry import DefaultScope
    scope = cfg.get('default_scope', None) or 'mmpretrain'
    register_scope(scope)
    model_cfg = copy.deepcopy(cfg.model if model_cfg is None else model_cfg)
    backbone = model_cfg.get('backbone', None)
    init = backbone.get('init_cfg', None) if isinstance(backbone, dict) else None
    if without_checkpoint and isinstance(init, dict) and 'Pretrained' in init.get('type', ''):
        backbone['init_cfg'] = None
    with DefaultScope.overwrite_default_scope(scope):
        if scope == 'mmdet':
            from mmdet.registry import MODELS
        else:
            from mmpretrain.registry import MODELS
        return MODELS.build(model_cfg)


def register_scope(scope):
    """Register the modules of the config's framework (``'mmdet'`` / ``'mmpretrain'``) and
    ours, so that mmdet and mmpretrain registries can live in one process and the Runner finds
    every type it builds."""
    import resvariants.models  # noqa: F401
    if scope == 'mmdet':
        import mmdet.models  # noqa: F401
        from mmdet.utils import register_all_modules
        register_all_modules(init_default_scope=False)
    elif scope == 'mmpretrain':
        from mmpretrain.utils import register_all_modules
        register_all_modules(init_default_scope=False)


def apply_mmpretrain_loader_defaults(cfg):
    """The dataloader defaults mmpretrain's own ``tools/train.py`` injects."""
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name, None)
        if loader is None:
            continue
        loader.setdefault('collate_fn', dict(type='default_collate'))
        if loader.get('num_workers', 0) > 0:
            loader.setdefault('persistent_workers', True)


def build_runner(cfg):
    """The Runner of ``cfg`` (``runner_type`` from the config, else mmengine's Runner)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)
