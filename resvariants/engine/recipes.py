"""Training recipes applied to any config from the command line, instead of one config copy per
model: ``tools/train.py CONFIG --recipe imagenet_tricks`` and ``--sync-bn``.

A recipe is a config file that defines ``recipe_overrides``: a dict of top-level config keys
merged into the training config (nested dicts merge key by key, ``_delete_=True`` replaces a
dict, lists are replaced), before ``--cfg-options`` so those still override the recipe.
``--recipe NAME`` finds ``configs/_recipes/NAME.py``; a path to a file works too.

``--sync-bn`` is mmdet's ``*-syncbn`` recipe (gcnet, objects365 configs) as one switch:
mmengine's ``sync_bn`` (the Runner converts every BatchNorm of the model to SyncBatchNorm when
it wraps a distributed model), the backbone's BN trained (``norm_eval=False``; a frozen BN has
nothing to synchronize), and :class:`GlobalBatchLrRescaleHook`, so that a run resumed on
another world size with ``--auto-scale-lr`` keeps the lr of the new global batch. Without
CUDA the distributed shim of ``tools/train.py`` turns it off again (torch's SyncBatchNorm
refuses CPU tensors) and says so.
"""
import os
import os.path as osp

from mmengine.config import Config

RECIPES_DIR = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
                       '_recipes')
SYNC_BN_HOOK = 'resvariants.GlobalBatchLrRescaleHook'


def available_recipes(recipes_dir=RECIPES_DIR):
    """Names of the files in ``recipes_dir`` that define ``recipe_overrides``."""
    if not osp.isdir(recipes_dir):
        return []
    names = []
    for fname in sorted(f for f in os.listdir(recipes_dir) if f.endswith('.py')):
        with open(osp.join(recipes_dir, fname)) as f:
            if 'recipe_overrides' in f.read():
                names.append(fname[:-3])
    return names


def recipe_path(name, recipes_dir=RECIPES_DIR):
    """The file of recipe ``name`` (a name in ``configs/_recipes`` or a path)."""
    if osp.isfile(name):
        return name
    path = osp.join(recipes_dir, f'{name}.py')
    if not osp.isfile(path):
        raise FileNotFoundError(f'unknown recipe {name!r}: neither a file nor one of '
                                f'{available_recipes(recipes_dir)} (configs/_recipes/<name>.py)')
    return path


def apply_recipe(cfg, name, recipes_dir=RECIPES_DIR):
    """Merge the ``recipe_overrides`` of recipe ``name`` into ``cfg`` (in place); returns cfg."""
    path = recipe_path(name, recipes_dir)
    overrides = Config.fromfile(path).get('recipe_overrides', None)
    if not isinstance(overrides, dict):
        raise ValueError(f'{path} is no recipe: it defines no recipe_overrides dict (the '
                         f'config keys it sets)')
    cfg.merge_from_dict(overrides.to_dict() if hasattr(overrides, 'to_dict') else
                        dict(overrides))
    return cfg


def apply_sync_bn(cfg, implementation='torch'):
    """mmdet's ``-syncbn`` recipe on ``cfg`` (in place): ``sync_bn``, a trained backbone BN and
    the lr-rescale-on-resume hook; returns cfg."""
    if implementation not in ('torch', 'mmcv'):
        raise ValueError(f'--sync-bn takes "torch" or "mmcv" (mmengine\'s sync_bn), got '
                         f'{implementation!r}')
    cfg.sync_bn = implementation
    backbone = cfg.get('model', {}).get('backbone', None)
    if backbone is not None:
        backbone.norm_eval = False
    hooks = list(cfg.get('custom_hooks', None) or [])
    if not any(h.get('type') in (SYNC_BN_HOOK, 'GlobalBatchLrRescaleHook') for h in hooks):
        hooks.append(dict(type=SYNC_BN_HOOK))
    cfg.custom_hooks = hooks
    return cfg
