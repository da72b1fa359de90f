"""Fabricated (random) weights for source models, so every tensor of a conversion matters."""
import contextlib
import functools

import pytest
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm


def randomize_all_(model, side, seed=0, batch=4):
    """Random values for every parameter, then BN running statistics measured on a random batch.

    Conv / Linear weights ~ N(0, 1/fan_in) keep activations O(1); every other parameter is drawn
    away from its init constant (norm gammas, SGE's 0 / 1, SRM's zero cfc, zero biases), so a
    dropped or swapped tensor shows. The running statistics come from one train-mode pass over
    ``batch`` random ``side`` x ``side`` images (in the model's dtype), so every BN normalises
    real activations and no gate saturates. Returns the model in eval mode.
    """
    g = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        for module in model.modules():
            for name, p in module.named_parameters(recurse=False):
                if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and \
                        name == 'weight':
                    fan_in = p[0].numel() if not isinstance(module, nn.ConvTranspose2d) else \
                        p.shape[0] // module.groups * p[0, 0].numel()
                    p.copy_(torch.randn(p.shape, generator=g) * fan_in**-0.5)
                elif name == 'weight':  # BN / LayerNorm gammas, SGE's per-group weight
                    p.copy_(torch.rand(p.shape, generator=g) + 0.5)
                elif name == 'bias':
                    p.copy_(torch.randn(p.shape, generator=g) * 0.5)
                else:  # e.g. SRM's cfc
                    p.copy_(torch.randn(p.shape, generator=g))
        norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: the pass sets the batch statistics
        model.train()
        model(torch.randn(batch, 3, side, side, generator=g).to(dtype))
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    return model.eval()


_RANDOM_INITS = ('uniform_', 'normal_', 'trunc_normal_', 'kaiming_uniform_', 'kaiming_normal_',
                 'xavier_uniform_', 'xavier_normal_', 'orthogonal_')
_cfg_metainfo = None


@contextlib.contextmanager
def fast_builds():
    """Build models fast whose every tensor is overwritten next (a strict load, randomize_all_).

    Inside, torch's random initialisers leave their tensor as it is, and mmengine's lookup of
    ``pkg::`` config bases (which re-reads every metafile of the package on each
    ``Config.fromfile``) is memoised: the same modules and configs, built in a fraction of the
    time.
    """
    import mmengine.config.utils as config_utils
    global _cfg_metainfo
    if _cfg_metainfo is None:  # one cache for the session
        _cfg_metainfo = functools.lru_cache(maxsize=None)(config_utils._get_cfg_metainfo)
    with pytest.MonkeyPatch.context() as patch:
        for name in _RANDOM_INITS:
            patch.setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        patch.setattr(config_utils, '_get_cfg_metainfo', _cfg_metainfo)
        yield
