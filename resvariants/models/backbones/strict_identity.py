"""The strict-identity gate of epsilon-ResNet (Yu et al., CVPR 2018, arXiv 1804.01661).

For the residual branch output ``F`` of a whole mini-batch (docs/architectures.md 2.2)::

    s    = max over all elements of  ReLU(F - eps) + ReLU(-F - eps)
    gate = ReLU(1 - L * ReLU(1 - L * s)),  L = 1e6
    out  = gate * F + shortcut(x)

``s`` is the largest excess of ``|F|`` over ``eps``; the gate is 0 when every response of the
batch lies within ``[-eps, eps]`` (the block becomes a strict identity / shortcut only), 1 when
some response exceeds ``eps`` by ~1e-6 or more, and a linear ramp in between.

The gate also keeps the bookkeeping that decides which blocks a network may drop:

* in training mode it counts the steps it saw and the steps it was 0 (tensor counters, no
  host synchronisation); ``EpsilonResNetHook`` resets them every epoch and, at the epoch end,
  marks a block *discarded* when its gate was 0 on every training step of that epoch;
* in eval mode a gate with a recorded decision applies it (0 for discarded blocks, 1 for the
  others), so a gated network evaluates exactly like its compact export and one image's result
  never depends on the other images of its batch (the source's live batch gate does). A gate
  without a decision (a freshly built model) is live, as in the source.

Decisions are not part of the ``state_dict`` (the gated network keeps the plain ResNet key
layout); they travel in ``checkpoint['meta']['epsilon_resnet']`` (see
:func:`discard_record` / :func:`apply_discard_record`).
"""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

STRICT_IDENTITY_L = 1e6


def strict_identity_gate(residual, epsilon, sparsity_l=STRICT_IDENTITY_L):
    """The source's 4-ReLU gate (a 0-dim tensor) for the batch tensor ``residual``.

    Computed in at least float32 (``L * s`` overflows half precision), returned in the dtype
    of ``residual``.
    """
    excess = F.relu(residual - epsilon) + F.relu(-residual - epsilon)
    s = excess.max()  # (amax of every dim: the same values and gradient, not exportable)
    if s.dtype in (torch.float16, torch.bfloat16):
        s = s.float()
    return F.relu(1 - sparsity_l * F.relu(1 - sparsity_l * s)).to(residual.dtype)


class StrictIdentityGate(nn.Module):
    """Scales a residual branch by the strict-identity gate: ``forward(F) = gate(F) * F``.

    Args:
        epsilon (float): The threshold (``eps``); ``EpsilonResNetHook`` may schedule it.
        sparsity_l (float): The slope ``L``. Defaults to 1e6, the source's value.
    """

    def __init__(self, epsilon, sparsity_l=STRICT_IDENTITY_L):
        super().__init__()
        if epsilon < 0:
            raise ValueError(f'epsilon must be >= 0, got {epsilon}')
        self.epsilon = float(epsilon)
        self.sparsity_l = float(sparsity_l)
        #: None = no decision yet (eval gates are live); True/False = recorded decision.
        self.discarded = None
        self.register_buffer('steps_seen', torch.zeros((), dtype=torch.long), persistent=False)
        self.register_buffer('steps_discarded', torch.zeros((), dtype=torch.long),
                             persistent=False)

    def extra_repr(self):
        return f'epsilon={self.epsilon}, sparsity_l={self.sparsity_l:g}'

    def reset_statistics(self):
        self.steps_seen.zero_()
        self.steps_discarded.zero_()

    def forward(self, residual):
        if not self.training and self.discarded is not None:
            return residual * 0.0 if self.discarded else residual
        gate = strict_identity_gate(residual, self.epsilon, self.sparsity_l)
        if self.training:
            with torch.no_grad():
                self.steps_seen += 1
                self.steps_discarded += (gate == 0).long()
        return gate * residual


def find_strict_identity_gates(model):
    """``OrderedDict`` block name -> gate, for every gated block of ``model`` (forward order)."""
    gates = OrderedDict()
    for name, module in model.named_modules():
        if isinstance(module, StrictIdentityGate):
            block_name = name[:-len('.gate')] if name.endswith('.gate') else name
            gates[block_name] = module
    return gates


def discard_record(model, epsilon=None):
    """The decisions of ``model``'s gates as a plain dict (what checkpoints store in meta)."""
    gates = find_strict_identity_gates(model)
    return dict(
        blocks=list(gates),
        discarded=[name for name, gate in gates.items() if gate.discarded],
        decided=all(gate.discarded is not None for gate in gates.values()) and bool(gates),
        epsilon=epsilon if epsilon is not None else
        (max(g.epsilon for g in gates.values()) if gates else None))


def apply_discard_record(model, record):
    """Set the gate decisions of ``model`` from ``record`` (see :func:`discard_record`).

    Raises:
        KeyError: when the record names blocks the model does not have, or the model has gated
            blocks the record does not know (a checkpoint of another architecture).
    """
    gates = find_strict_identity_gates(model)
    blocks = list(record.get('blocks', []))
    if set(blocks) != set(gates):
        unknown = sorted(set(blocks) - set(gates))
        missing = sorted(set(gates) - set(blocks))
        raise KeyError(f'the discard record does not match the model\'s gated blocks: '
                       f'{len(unknown)} unknown (e.g. {unknown[:3]}), {len(missing)} not in the '
                       f'record (e.g. {missing[:3]})')
    if not record.get('decided', True):
        for gate in gates.values():
            gate.discarded = None
        return gates
    discarded = set(record.get('discarded', []))
    for name, gate in gates.items():
        gate.discarded = name in discarded
    return gates
