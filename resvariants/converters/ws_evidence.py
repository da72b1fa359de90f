"""Is a ResNet checkpoint weight-standardised? What its BatchNorm statistics say.

A weight-standardised (WS) ResNet (PytorchInsight ``resnet_ws.py``, docs/architectures.md 1.10)
stores its conv weights raw, under the keys and shapes of the plain ResNet, and standardises each
output filter in the forward pass: w_hat = (w - mean_f) / (std_f + 1e-5), std unbiased. The key
names cannot tell the two apart, and the raw weights alone cannot either: a conv followed by
BatchNorm is scale-free, so no value of the raw weights is typical of one network only.

What differs is which weights produced the BatchNorm statistics stored beside them. The BN after a
1x1 conv (``bn3`` after ``conv3`` in a bottleneck; no padding, so every output position sees the
same input distribution) records running_mean = W @ E[x] with W the weights the conv *applied*.
Its input x = relu(bn2(...)) has per-channel mean E[relu(N(beta, gamma^2))] if the normalised
activation is roughly Gaussian, which the stored ``bn2`` gamma and beta give. So each bottleneck
predicts ``bn3.running_mean`` twice: from the raw weights (plain hypothesis) and from their
standardised form (WS hypothesis). The least-squares scale a that maps a prediction onto the stored
means is about 1 for the network that produced the statistics; for the other one it is about the
ratio of the standardised to the raw filter norms, 1 / std_f of the raw weights: tens for a
trained ResNet (raw std ~ 0.01-0.1), a thousand for an e-shifted WS net (raw std driven to 1e-3).

The mean subtraction matters too: where the raw filters have means comparable to their spread,
the wrong hypothesis also fits badly (R^2 well below 1) whatever its scale. The verdict needs the
median scale of one hypothesis within :data:`CONSISTENT` of 1 with a median R^2 of at least
:data:`GOOD_FIT`, and the other one off by :data:`INCONSISTENT` or more or fitting with an R^2 below
:data:`POOR_FIT`. Anything else (raw filters already standardised, so both fit; statistics that fit
neither; no statistics) is *undecided*, and the caller must ask the user instead of guessing.
"""
import math
import re
from dataclasses import dataclass, field

import torch

#: a hypothesis fits when its median scale is within this factor of 1 ...
CONSISTENT = 3.0
#: ... and its median R^2 (least squares through the origin) is at least this;
GOOD_FIT = 0.75
#: the verdict is taken only if the other hypothesis is off by at least this factor ...
INCONSISTENT = 6.0
#: ... or fits with an R^2 below this
POOR_FIT = 0.5
_WS_EPS = 1e-5
_BN_EPS = 1e-5


@dataclass
class WSEvidence:
    """What the BN statistics of a ResNet state dict say about weight standardisation.

    ``verdict`` is ``'ws'``, ``'plain'`` or None (undecided); ``plain_scale`` / ``ws_scale`` the
    median least-squares scales of the two predictions of ``bn3.running_mean``; ``plain_fit`` /
    ``ws_fit`` the median R^2 of those fits; ``blocks`` the number of bottlenecks used.
    """
    verdict: str = None
    plain_scale: float = float('nan')
    ws_scale: float = float('nan')
    plain_fit: float = float('nan')
    ws_fit: float = float('nan')
    blocks: int = 0
    reason: str = ''
    per_block: dict = field(default_factory=dict, repr=False)

    def summary(self):
        """One line for messages and checkpoint meta."""
        if not self.blocks:
            return f'no evidence ({self.reason})'
        return (f'bn3 running means of {self.blocks} bottlenecks predicted from the raw conv3 '
                f'weights need a scale x{self.plain_scale:.3g} (fit R^2 {self.plain_fit:.2f}), '
                f'from the standardised weights x{self.ws_scale:.3g} (R^2 {self.ws_fit:.2f}): '
                + {'ws': 'weight-standardised', 'plain': 'plain (raw weights)',
                   None: 'undecided'}[self.verdict] + (f' ({self.reason})' if self.reason else ''))


def _relu_mean(mean, std):
    """E[relu(X)] for X ~ N(mean, std^2), elementwise (std > 0)."""
    z = mean / std
    normal = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z))
    return mean * normal.cdf(z) + std * normal.log_prob(z).exp()


def standardise(weight):
    """The WS re-parameterisation of ``resnet_ws.py`` / mmcv ``ConvWS``: per output filter,
    (w - mean) / (unbiased std + 1e-5)."""
    flat = weight.reshape(weight.shape[0], -1)
    mean = flat.mean(dim=1, keepdim=True)
    std = flat.std(dim=1, unbiased=True, keepdim=True)
    return ((flat - mean) / (std + _WS_EPS)).reshape(weight.shape)


def _fit(observed, predicted):
    """(least-squares scale through the origin, R^2 of that fit)."""
    norm = predicted.dot(predicted)
    if not norm > 0 or not observed.dot(observed) > 0:
        return float('nan'), float('nan')
    scale = (observed.dot(predicted) / norm).item()
    residual = observed - scale * predicted
    return scale, 1 - (residual.dot(residual) / observed.dot(observed)).item()


def _block_keys(block):
    return [f'{block}.conv3.weight', f'{block}.bn2.weight', f'{block}.bn2.bias',
            f'{block}.bn2.running_var', f'{block}.bn3.running_mean']


def _block_fits(state, block):
    keys = _block_keys(block)
    weight, gamma, beta, var2, mean3 = (state[k].detach().double() for k in keys)
    if weight.dim() != 4 or weight.shape[2:] != (1, 1) or weight.shape[1] < 2:
        return None
    hidden, out = weight.shape[1], weight.shape[0]
    if not gamma.shape == beta.shape == var2.shape == (hidden, ) or mean3.shape != (out, ):
        return None
    std = gamma.abs() * (var2.clamp(min=0) / (var2.clamp(min=0) + _BN_EPS)).sqrt()
    if not bool((std > 0).all()):
        return None
    inputs = _relu_mean(beta, std)
    plain = _fit(mean3, weight.reshape(out, hidden) @ inputs)
    ws = _fit(mean3, standardise(weight).reshape(out, hidden) @ inputs)
    return plain, ws


def _median(values):
    values = sorted(values)
    if not values:
        return float('nan')
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid])


def _consistent(scale, fit):
    return scale > 0 and abs(math.log(scale)) <= math.log(CONSISTENT) and fit >= GOOD_FIT


def _far(scale, fit):
    return not scale > 0 or abs(math.log(scale)) >= math.log(INCONSISTENT) or fit < POOR_FIT


def weight_standardisation_evidence(state):
    """:class:`WSEvidence` for a ResNet state dict in torchvision naming (``layerX.Y.conv3``,
    ``bn2``, ``bn3``; a ``module.`` prefix is not stripped here)."""
    blocks = sorted({m[1] for k in state for m in [re.match(r'^(layer\d+\.\d+)\.conv3\.weight$',
                                                            k)] if m})
    blocks = [b for b in blocks if all(k in state for k in _block_keys(b))]
    per_block = {}
    for block in blocks:
        fits = _block_fits(state, block)
        if fits is not None and not any(math.isnan(v) for pair in fits for v in pair):
            per_block[block] = fits
    if not per_block:
        return WSEvidence(reason='no bottleneck with conv3 weights and bn2 / bn3 statistics'
                          if not blocks else 'the bn2 / bn3 statistics are degenerate')
    plain_scale = _median([p[0] for p, _ in per_block.values()])
    ws_scale = _median([w[0] for _, w in per_block.values()])
    plain_fit = _median([p[1] for p, _ in per_block.values()])
    ws_fit = _median([w[1] for _, w in per_block.values()])
    evidence = WSEvidence(plain_scale=plain_scale, ws_scale=ws_scale, plain_fit=plain_fit,
                          ws_fit=ws_fit, blocks=len(per_block), per_block=per_block)
    plain_ok, ws_ok = _consistent(plain_scale, plain_fit), _consistent(ws_scale, ws_fit)
    if ws_ok and _far(plain_scale, plain_fit):
        evidence.verdict = 'ws'
    elif plain_ok and _far(ws_scale, ws_fit):
        evidence.verdict = 'plain'
    elif plain_ok and ws_ok:
        evidence.reason = 'both fit: the raw filters are nearly standardised already'
    elif plain_ok or ws_ok:
        evidence.reason = 'the other weighting does not fit clearly worse'
    else:
        evidence.reason = 'the statistics fit neither weighting'
    return evidence
