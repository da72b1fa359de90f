"""Pre-flight checks of ``tools/train.py`` / ``tools/test.py``: each fails before the Runner
builds anything (or, for an empty dataset, as soon as the run fails), with a message that
names the bad input."""
import os.path as osp

from resvariants.utils.safe_load import UnsafeCheckpointError, read_checkpoint

def check_checkpoint_file(path, what='checkpoint'):
    """Refuse a checkpoint that is missing, unreadable or not weights-only, before any use.

    The pickle part is read with torch's weights-only unpickler (tensor data memory-mapped,
    not read), so a file that would run code on load is refused and nothing runs.
    """
    read_checkpoint(path, what, mmap=True)


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
        except UnsafeCheckpointError:
            raise
        except (FileNotFoundError, RuntimeError) as exc:
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


def run_with_clear_errors(runner, stage):
    """``runner.train()`` / ``runner.test()``; a failure on an empty dataset is reported as such.

    mmengine fails on a dataset without samples with an unrelated message from its
    serialisation ('need at least one array to concatenate'); when the run fails and the
    stage's dataset has no samples, the error says so and names the annotation file.
    """
    loader_cfg = runner.cfg.get(f'{stage}_dataloader', None)
    try:
        return getattr(runner, stage)()
    except Exception as exc:
        if _count_samples(loader_cfg) != 0:
            raise
        dataset = loader_cfg['dataset']
        root, ann_file = dataset.get('data_root', '') or '', dataset.get('ann_file', '')
        if ann_file and root and not osp.isabs(ann_file):
            ann_file = osp.join(root, ann_file)
        raise ValueError(
            f'{stage}_dataloader has an empty dataset ({dataset.get("type")}, data_root='
            f'{root}, ann_file={ann_file}): no samples to iterate; check the annotation file '
            f'and the image folder (filter_cfg may have removed every image)') from exc


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
