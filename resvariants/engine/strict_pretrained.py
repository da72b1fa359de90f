"""``init_cfg=dict(type='StrictPretrained', checkpoint=..., prefix='backbone.')``.

mmengine's ``Pretrained`` init loads with ``strict=False`` and only logs mismatches, so a
classifier -> detector transfer can silently lose weights. This initializer loads the same way
(weights-only, prefix stripped) but raises, listing every missing, unexpected or mis-shaped key.
"""
import os
import os.path as osp

from mmengine.logging import print_log
from mmengine.model.weight_init import PretrainedInit, update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS

from resvariants.utils.safe_load import load_checkpoint_safely, state_dict_of


def missing_checkpoint_error(path, initializer='StrictPretrained',
                             where='model.backbone.init_cfg.checkpoint'):
    """FileNotFoundError for an init checkpoint that is not there, saying where the configs
    look for it and how to override it."""
    env = os.environ.get('RESVARIANTS_PRETRAINED')
    looked = (f'$RESVARIANTS_PRETRAINED={env}' if env else
              '$RESVARIANTS_PRETRAINED is not set, so the default checkpoints/imagenet')
    return FileNotFoundError(
        f'{initializer} init: checkpoint not found: {path} ({where}). The detection configs '
        f'read the ImageNet backbone from $RESVARIANTS_PRETRAINED/<imagenet config name>.pth '
        f'({looked}). Fix: put the checkpoint of the matching configs/imagenet model there or '
        f'export RESVARIANTS_PRETRAINED=DIR, or give the file with --cfg-options '
        f'{where}=PATH (--cfg-options {where.rsplit(".", 1)[0]}=None trains the backbone from '
        f'scratch).')


def compare_state_dicts(model_state, loaded_state):
    """Return (missing, unexpected, mis-shaped) key lists between two state dicts."""
    missing = sorted(set(model_state) - set(loaded_state))
    unexpected = sorted(set(loaded_state) - set(model_state))
    mis_shaped = sorted(
        f'{k}: checkpoint {tuple(loaded_state[k].shape)} vs model {tuple(model_state[k].shape)}'
        for k in set(model_state) & set(loaded_state)
        if hasattr(loaded_state[k], 'shape') and loaded_state[k].shape != model_state[k].shape)
    return missing, unexpected, mis_shaped


def mismatch_report(module, state_dict, source='checkpoint'):
    """None if ``state_dict`` fits ``module`` key for key and shape, else a message listing
    the missing, unexpected and mis-shaped keys (20 of each at most)."""
    missing, unexpected, mis_shaped = compare_state_dicts(module.state_dict(), state_dict)
    if not (missing or unexpected or mis_shaped):
        return None
    lines = [f'{source} does not match {type(module).__name__}:']
    for title, keys in (('missing keys', missing), ('unexpected keys', unexpected),
                        ('mis-shaped keys', mis_shaped)):
        if keys:
            lines.append(f'  {len(keys)} {title}: ' + ', '.join(keys[:20])
                         + (' ...' if len(keys) > 20 else ''))
    return '\n'.join(lines)


def load_state_dict_strictly(module, state_dict, source='checkpoint'):
    """Load ``state_dict`` into ``module``; raise with every key problem listed."""
    report = mismatch_report(module, state_dict, source)
    if report is not None:
        raise KeyError(report)
    module.load_state_dict(state_dict, strict=True)


@WEIGHT_INITIALIZERS.register_module(name='StrictPretrained')
class StrictPretrainedInit(PretrainedInit):
    """Pretrained init that fails on any key mismatch (after removing ``prefix``)."""

    def __call__(self, module):
        if isinstance(self.checkpoint, str) and not osp.isfile(self.checkpoint):
            raise missing_checkpoint_error(self.checkpoint, 'StrictPretrained')
        state = state_dict_of(
            load_checkpoint_safely(self.checkpoint, map_location=self.map_location),
            self.checkpoint)
        if self.prefix:
            prefix = self.prefix if self.prefix.endswith('.') else self.prefix + '.'
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            if not state:
                raise KeyError(f'{self.checkpoint} has no keys with prefix {prefix!r}')
        load_state_dict_strictly(module, state, source=f'{self.checkpoint} (prefix '
                                                       f'{self.prefix!r})')
        print_log(f'StrictPretrained: loaded {len(state)} tensors from {self.checkpoint} '
                  f'into {type(module).__name__} with 0 missing / 0 unexpected keys',
                  logger='current')
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=self._get_init_info())

    def _get_init_info(self):
        return f'{self.__class__.__name__}: load from {self.checkpoint}'
