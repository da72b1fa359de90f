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


def _cpu_batchnorm_instead_of_syncbn(node, where='model'):
    """Rewrite every ``norm_cfg`` of type SyncBN to BN (in place); returns the places changed.

    torch's SyncBatchNorm refuses CPU tensors in a multi-process run, so the SyncBN configs
    could not run on a CPU gloo group. Each process then normalises over its own batch.
    """
    changed = []
    if isinstance(node, dict):
        for key, value in node.items():
            if (key == 'norm_cfg' and isinstance(value, dict)
                    and value.get('type') in ('SyncBN', 'MMSyncBN', 'TorchSyncBN')):
                value['type'] = 'BN'
                changed.append(f'{where}.{key}')
            else:
                changed += _cpu_batchnorm_instead_of_syncbn(value, f'{where}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            changed += _cpu_batchnorm_instead_of_syncbn(value, f'{where}.{i}')
    return changed


def _prepare_cpu_distributed(cfg, launcher):
    """gloo process group and a device-less DDP wrapper when there is no GPU; SyncBN -> BN."""
    changed = _cpu_batchnorm_instead_of_syncbn(cfg.model)
    if cfg.get('sync_bn', None):
        cfg.sync_bn = None
        changed.append('sync_bn')
    if changed:
        from mmengine.logging import print_log
        print_log('no CUDA device: SyncBN cannot run on the CPU, using per-process BN in '
                  + ', '.join(changed), logger='current', level=30)
    env_cfg = cfg.setdefault('env_cfg', {})
    env_cfg.setdefault('dist_cfg', {})
    env_cfg['dist_cfg']['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg', None) or dict(type='MMDistributedDataParallel')
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    if launcher in ('pytorch', 'slurm'):
        import torch.distributed as dist
        if launcher == 'slurm':
            _slurm_env_for_cpu(env_cfg['dist_cfg'].get('port', None))
        if not dist.is_initialized():
            dist.init_process_group(backend='gloo', init_method='env://')


def _slurm_env_for_cpu(port=None):
    """torch.distributed env variables from Slurm's, as mmengine's slurm launcher sets them
    (it also selects a CUDA device, which a CPU-only node does not have)."""
    import os
    import subprocess
    missing = [k for k in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST') if k not in os.environ]
    if missing:
        raise RuntimeError('--launcher slurm needs the variables srun sets; missing: '
                           + ', '.join(missing))
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ['SLURM_NODELIST']
        out = subprocess.run(['scontrol', 'show', 'hostname', nodes], capture_output=True,
                             text=True)
        if out.returncode != 0 or not out.stdout.split():
            raise RuntimeError(f'cannot resolve the master node of SLURM_NODELIST={nodes!r} '
                               f'with scontrol; set MASTER_ADDR')
        os.environ['MASTER_ADDR'] = out.stdout.split()[0]
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')


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


# ---------------------------------------------------------------- pre-flight checks (issue 10)
# Each check fails before the Runner builds anything, with a message that names the bad input.

def check_checkpoint_file(path, what='checkpoint'):
    """Refuse a checkpoint that is missing, unreadable or not weights-only, before any use.

    The pickle part is read with torch's weights-only unpickler (tensor data memory-mapped,
    not read), so a file that would run code on load is refused and nothing runs.
    """
    from resvariants.utils.safe_load import allow_mmengine_checkpoint_types
    allow_mmengine_checkpoint_types()
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    try:
        try:
            torch.load(path, map_location='cpu', weights_only=True, mmap=True)
        except RuntimeError as exc:
            if 'mmap' not in str(exc):  # legacy (non-zip) files cannot be memory-mapped
                raise
            torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:
        text = str(exc)
        if 'Weights only load failed' in text or 'Unsupported global' in text:
            raise RuntimeError(
                f'refusing to load {what} {path}: it is not a plain weights checkpoint (it '
                f'pickles objects that could run code on load). Details: '
                f'{text.strip().splitlines()[0]}') from None
        raise RuntimeError(f'cannot read {what} {path} (truncated or not a checkpoint): '
                           f'{text.strip().splitlines()[0] if text.strip() else exc!r}') from None


def resolve_auto_resume(work_dir):
    """The checkpoint ``--resume`` (no value) continues from: the one ``last_checkpoint`` names,
    or, if that one is missing or unreadable, the newest readable ``*.pth`` in ``work_dir``.
    Returns None when the work dir holds no usable checkpoint (training starts from scratch)."""
    import glob
    from mmengine.logging import print_log
    candidates = []
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            named = f.read().strip()
        if named:
            candidates.append(named)
    candidates += sorted(glob.glob(osp.join(work_dir, '*.pth')), key=osp.getmtime, reverse=True)
    for path in candidates:
        try:
            check_checkpoint_file(path)
            return path
        except (FileNotFoundError, RuntimeError) as exc:
            if 'refusing' in str(exc):
                raise
            print_log(f'--resume: skipping {path}: {exc}', logger='current', level=30)
    return None


def check_model_types(cfg):
    """Every ``type='resvariants.X'`` under ``cfg.model`` must be a registered model, and every
    ResNet ``plugins=`` list (stock mmdet ResNets included) must name registered plugin types
    with one ``stages`` entry per stage (mmcv / mmdet say "Cannot find None in registry" / a
    bare AssertionError there)."""
    from resvariants.models.attention.factory import check_plugin_cfgs
    from resvariants.registry import MODELS
    import resvariants.models  # noqa: F401

    for node, where in _config_dicts(cfg.get('model', None), 'model'):
        name = node.get('type')
        if isinstance(name, str) and name.startswith('resvariants.') and \
                MODELS.get(name) is None:
            valid = ', '.join(sorted(MODELS.module_dict))
            raise KeyError(f'unknown variant {name!r} at {where}.type; valid resvariants '
                           f'models: {valid}')
        if isinstance(node.get('plugins'), (list, tuple)):
            check_plugin_cfgs(node['plugins'], node.get('num_stages', 4),
                              where=f'{where}.plugins', scope=cfg.get('default_scope'))


def check_init_checkpoints(cfg):
    """Every ``StrictPretrained`` / ``WarmStart`` / ``Pretrained`` init under ``cfg.model``
    must point to an existing file (URLs excepted), before the Runner builds the data."""
    from resvariants.engine.strict_pretrained import missing_checkpoint_error

    for node, where in _config_dicts(cfg.get('model', None), 'model'):
        path = node.get('checkpoint')
        if (node.get('type') in ('StrictPretrained', 'WarmStart', 'Pretrained')
                and isinstance(path, str) and '://' not in path and not osp.isfile(path)):
            raise missing_checkpoint_error(path, node['type'], f'{where}.checkpoint')


def _config_dicts(node, where):
    """Every dict of a config tree with its location (``model.backbone.plugins[0]``)."""
    if isinstance(node, dict):
        yield node, where
        for key, value in node.items():
            yield from _config_dicts(value, f'{where}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _config_dicts(value, f'{where}[{i}]')


def _dataset_cfgs(dataset, where):
    if not isinstance(dataset, dict):
        return
    if 'datasets' in dataset:  # ConcatDataset
        for i, sub in enumerate(dataset['datasets']):
            yield from _dataset_cfgs(sub, f'{where}.datasets[{i}]')
    elif isinstance(dataset.get('dataset'), dict):  # RepeatDataset / ClassBalancedDataset
        yield from _dataset_cfgs(dataset['dataset'], f'{where}.dataset')
    else:
        yield dataset, where


def check_data_paths(cfg, loader_names):
    """The data root, annotation files and image folders of the given loaders must exist."""
    hint = ('set $RESVARIANTS_DATA or fix it with --cfg-options; the small demo data ships '
            'in the repository under tests/data')
    for loader_name in loader_names:
        loader = cfg.get(loader_name, None)
        if not isinstance(loader, dict):
            continue
        for dataset, where in _dataset_cfgs(loader.get('dataset'), f'{loader_name}.dataset'):
            root = dataset.get('data_root', '') or ''
            if '://' in str(root) or '://' in str(dataset.get('ann_file', '')) or \
                    dataset.get('download', False):
                continue  # remote storage, or a dataset that downloads itself (CIFAR)
            if root and not osp.isdir(root):
                raise FileNotFoundError(f'{where}.data_root not found: {root} ({hint})')
            ann_file = dataset.get('ann_file', '') or ''
            if ann_file:
                path = ann_file if osp.isabs(ann_file) or not root else osp.join(root, ann_file)
                if not osp.isfile(path):
                    raise FileNotFoundError(f'{where}.ann_file not found: {path} ({hint})')
            prefix = dataset.get('data_prefix', '')
            folders = prefix.values() if isinstance(prefix, dict) else [prefix]
            for folder in folders:
                if isinstance(folder, str) and folder:
                    path = folder if osp.isabs(folder) or not root else osp.join(root, folder)
                    if not osp.isdir(path):
                        raise FileNotFoundError(f'{where}.data_prefix folder not found: {path} '
                                                f'({hint})')
    for evaluator_name in ('val_evaluator', 'test_evaluator'):
        if evaluator_name.split('_')[0] + '_dataloader' not in loader_names:
            continue
        evaluators = cfg.get(evaluator_name, None)
        for evaluator in evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]:
            ann_file = evaluator.get('ann_file') if isinstance(evaluator, dict) else None
            if ann_file and not osp.isfile(ann_file):
                raise FileNotFoundError(f'{evaluator_name}.ann_file not found: {ann_file} '
                                        f'({hint})')


def build_loop_with_clear_errors(runner, stage):
    """Build ``runner``'s ``stage`` ('train' / 'test') loop, and with it the dataset, now.

    The Runner would build it first thing in ``train()`` / ``test()`` (same object, same
    order). Building it here lets a dataset that fails to build be diagnosed: an empty one
    (mmengine's serialisation then fails with 'need at least one array to concatenate') is
    reported as such, naming the annotation file.
    """
    attr = f'_{stage}_loop'
    loop = getattr(runner, attr, None)
    if loop is None:
        return
    loader_cfg = getattr(runner, f'_{stage}_dataloader', None)
    try:
        setattr(runner, attr, getattr(runner, f'build_{stage}_loop')(loop))
    except Exception as exc:
        if _count_samples(loader_cfg) == 0:
            dataset = loader_cfg['dataset']
            root, ann_file = dataset.get('data_root', '') or '', dataset.get('ann_file', '')
            if ann_file and root and not osp.isabs(ann_file):
                ann_file = osp.join(root, ann_file)
            raise ValueError(
                f'{stage}_dataloader has an empty dataset ({dataset.get("type")}, data_root='
                f'{root}, ann_file={ann_file}): no '
                f'samples to iterate; check the annotation file and the image folder '
                f'(filter_cfg may have removed every image)') from exc
        raise


def _count_samples(loader_cfg):
    """Number of samples of a (non-wrapped) dataset config, or None if it cannot be told."""
    import copy

    from mmengine.registry import DATASETS
    dataset = loader_cfg.get('dataset') if isinstance(loader_cfg, dict) else None
    if not isinstance(dataset, dict) or 'datasets' in dataset or 'dataset' in dataset:
        return None
    try:
        return len(DATASETS.build(dict(copy.deepcopy(dataset), serialize_data=False)))
    except Exception:
        return None


def finish_distributed():
    """After a successful run: wait for every rank, then tear the process group down cleanly.

    Without it the gloo threads are still alive when the interpreter exits, and a rank can
    abort in their destructors ("terminate called without an active exception", SIGABRT)
    after the run has finished, which torchrun reports as a failed run.
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
