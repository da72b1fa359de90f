"""The epsilon-shifted L2 regulariser of weight-standardised convolutions, as an optimizer
component.

Li, Chen, Yang, "Understanding the Disharmony between Weight Normalization Family and Weight
Decay: e-shifted L2 Regularizer" (arXiv 1911.05920), as PytorchInsight trains its WS-ResNets
(``LSGD`` with ``--el2`` in ``imagenet_fast.py``; docs/architectures.md 1.10). With
weight standardisation the scale of a conv filter no longer matters, so plain L2 decay only
shrinks it toward 0, where standardisation breaks down. The regulariser instead drives each
filter's standard deviation toward ``eps`` and its mean toward 0:

    R(w) = (lam / 2) * sum_f [ (||w_f - mu_f|| - eps * sqrt(n_f - 1))^2 + n_f * mu_f^2 ]
    dR/dw_f = lam * [ (1 - eps / sigma_f) * (w_f - mu_f) + mu_f ]

with ``w_f`` the ``n_f = C_in/groups * kh * kw`` weights of output filter ``f``, ``mu_f`` their
mean and ``sigma_f`` their unbiased standard deviation. As in the source, the gradient term is
added in the optimizer step (before momentum), every Conv2d weight leaves the ordinary weight
decay, and depthwise convs (``weight.shape[1] == 1``) get neither.

Use it through the optimizer-wrapper constructor::

    optim_wrapper = dict(
        constructor='resvariants.EShiftL2OptimWrapperConstructor',
        eshift_l2=dict(lam=1e-4, eps=1e-3),
        optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4),
        paramwise_cfg=dict(bias_decay_mult=0.))

It builds the optimizer exactly like mmengine's ``DefaultOptimWrapperConstructor`` (so
``paramwise_cfg``, any optimizer and any wrapper type, AMP included, still apply), moves the conv
weights into zero-decay groups tagged ``eshift_lambda`` / ``eshift_eps`` (saved with the optimizer
state, so resume keeps them) and registers an optimizer step pre-hook that adds the term. The
hook runs inside ``optimizer.step()``, i.e. after AMP has unscaled the gradients.
"""
import math

import torch
import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor

from resvariants.registry import OPTIM_WRAPPER_CONSTRUCTORS


def _per_filter(weight):
    return weight.reshape(weight.shape[0], -1)


def eshift_l2_penalty(weight, lam, eps):
    """The regulariser ``R(w)`` of one conv weight (the objective the optimizer term follows)."""
    filters = _per_filter(weight)
    n = filters.shape[1]
    mean = filters.mean(dim=1)
    centered_norm = (filters - mean[:, None]).norm(dim=1)
    return 0.5 * lam * ((centered_norm - eps * math.sqrt(n - 1))**2 + n * mean**2).sum()


def eshift_l2_gradient(weight, lam, eps):
    """``dR/dw = lam * [(1 - eps / sigma_f) * (w_f - mu_f) + mu_f]`` for every filter ``f``."""
    filters = _per_filter(weight)
    mean = filters.mean(dim=1, keepdim=True)
    centered = filters - mean
    sigma = filters.std(dim=1, keepdim=True).clamp_min(torch.finfo(filters.dtype).tiny)
    return (lam * ((1 - eps / sigma) * centered + mean)).reshape(weight.shape)


def takes_eshift_l2(weight):
    """Whether a conv weight gets the term: 4-D and not depthwise (``shape[1] != 1``)."""
    return weight.dim() == 4 and weight.shape[1] != 1


@torch.no_grad()
def add_eshift_l2_gradients(optimizer, args=None, kwargs=None):
    """Optimizer step pre-hook: add the e-shifted L2 gradient to every tagged parameter."""
    for group in optimizer.param_groups:
        lam = group.get('eshift_lambda', 0.)
        if not lam:
            continue
        for param in group['params']:
            if param.grad is not None:
                param.grad.add_(eshift_l2_gradient(param.detach(), lam, group['eshift_eps']))


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class EShiftL2OptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor plus the e-shifted L2 regulariser on conv weights.

    Args:
        optim_wrapper_cfg (dict): As for ``DefaultOptimWrapperConstructor``, plus
            ``eshift_l2=dict(lam=1e-4, eps=1e-3)`` (both optional; the source's ImageNet
            defaults). ``lam`` > 0 is the strength, ``eps`` >= 0 the target filter std.
        paramwise_cfg (dict | None): As for ``DefaultOptimWrapperConstructor``; it applies to
            all parameters, after which Conv2d weights get weight decay 0.
    """

    def __init__(self, optim_wrapper_cfg, paramwise_cfg=None):
        optim_wrapper_cfg = dict(optim_wrapper_cfg)
        settings = dict(optim_wrapper_cfg.pop('eshift_l2', None) or {})
        self.eshift_lambda = settings.pop('lam', 1e-4)
        self.eshift_eps = settings.pop('eps', 1e-3)
        if settings:
            raise KeyError(f'eshift_l2 takes "lam" and "eps", got unknown keys {sorted(settings)}')
        for name, value, low_ok in (('lam', self.eshift_lambda, False),
                                    ('eps', self.eshift_eps, True)):
            if (not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0
                    or (value == 0 and not low_ok)):
                raise ValueError(f'eshift_l2.{name} must be a finite number '
                                 f'{">= 0" if low_ok else "> 0"}, got {value!r}')
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def __call__(self, model):
        optim_wrapper = super().__call__(model)
        # a model wrapper's modules() include the wrapped model's: no unwrapping needed (only
        # the parameters the optimizer holds are regrouped)
        conv_weights = {id(m.weight) for m in model.modules()
                        if isinstance(m, nn.Conv2d) and m.weight is not None}
        self._regroup(optim_wrapper.optimizer, conv_weights)
        optim_wrapper.optimizer.register_step_pre_hook(add_eshift_l2_gradients)
        return optim_wrapper

    def _regroup(self, optimizer, conv_weights):
        """Split every group into (other params | e-shifted conv weights | depthwise weights)."""
        groups = []
        for group in optimizer.param_groups:
            kept, shifted, depthwise = [], [], []
            for param in group['params']:
                if id(param) not in conv_weights:
                    kept.append(param)
                elif takes_eshift_l2(param):
                    shifted.append(param)
                else:
                    depthwise.append(param)
            if kept:
                groups.append(dict(group, params=kept))
            if shifted:
                groups.append(dict(group, params=shifted, weight_decay=0.,
                                   eshift_lambda=self.eshift_lambda,
                                   eshift_eps=self.eshift_eps))
            if depthwise:
                groups.append(dict(group, params=depthwise, weight_decay=0.))
        optimizer.param_groups[:] = groups
