"""How a block adds its shortcut: the one step in which Plain, epsilon- and ED-ResNets differ.

Every block of the trunk computes ``relu(merge(residual(x), x))``; ``merge`` is a component built
from ``MERGES`` by the block, from the trunk's ``merge=`` config:

* ``Residual``: ``F + s(x)``, the residual network (the default).
* ``NoShortcut``: ``F``; declares that it needs no projection shortcut, so the stage builds
  none (the "ResNet with No Res" student, docs/architectures.md 4.1).
* ``StrictIdentity``: ``gate(F) * F + s(x)``, epsilon-ResNet's strict-identity gate
  (docs/architectures.md 2.2), owned by the block as ``gate``.
* ``EDPath``: ``F + s + ed_path(s)`` with ``s = s(x)`` computed once, ED-Net's encoder-decoder
  path on the shortcut output, owned by the block as ``ed_path``.

A merge ``attach``es the modules it needs to the block (so the state-dict keys are
``layerX.Y.gate`` / ``layerX.Y.ed_path.*``, as the released layouts) and is called as
``merge(block, out, x)``; ``block.shortcut(x)`` is the identity or the projection.
"""
from mmengine.registry import Registry

from .strict_identity import STRICT_IDENTITY_L, StrictIdentityGate

MERGES = Registry('shortcut merge', scope='resvariants',
                  locations=['resvariants.models.backbones.merges'])


def build_merge(cfg):
    """A merge from a config (``dict(type='StrictIdentity', epsilon=2.0)``, or a type name);
    None is ``Residual``."""
    if cfg is None:
        return Residual()
    if isinstance(cfg, str):
        cfg = dict(type=cfg)
    if not isinstance(cfg, dict) or not isinstance(cfg.get('type'), str):
        raise TypeError(f'merge must be a name or a dict with "type", got {cfg!r}')
    if MERGES.get(cfg['type']) is None:
        raise KeyError(f'unknown merge {cfg["type"]!r}; valid merges: '
                       f'{", ".join(sorted(MERGES.module_dict))}')
    return MERGES.build(cfg)


@MERGES.register_module()
class Residual:
    """``F + s(x)``."""

    needs_projection = True
    allows_zero_init_residual = True

    def attach(self, block):
        """Add the modules this merge owns to ``block`` (none here)."""

    def __call__(self, block, out, x):
        return out + block.shortcut(x)

    def __repr__(self):
        args = ', '.join(f'{k}={v!r}' for k, v in vars(self).items())
        return f'{type(self).__name__}({args})'


@MERGES.register_module()
class NoShortcut(Residual):
    """``F``: no addition and no shortcut module (a stride-2 or widening block has no
    projection parameters)."""

    needs_projection = False
    allows_zero_init_residual = False  # a zero last norm would zero the network's output

    def attach(self, block):
        if getattr(block, 'downsample', None) is not None:
            raise ValueError(f'{type(block).__name__} with merge=NoShortcut has no shortcut; it '
                             f'takes no downsample module (got '
                             f'{type(block.downsample).__name__})')

    def __call__(self, block, out, x):
        return out


@MERGES.register_module()
class StrictIdentity(Residual):
    """``gate(F) * F + s(x)``, the gate (``StrictIdentityGate``) attached as ``block.gate``.

    Args:
        epsilon (float): The gate's threshold. Defaults to 2.0 (the source's ImageNet value).
        sparsity_l (float): The gate's slope ``L``. Defaults to 1e6, the source's value.
    """

    allows_zero_init_residual = False  # zero branches: every gate 0, no gradient, forever

    def __init__(self, epsilon=2.0, sparsity_l=STRICT_IDENTITY_L):
        if epsilon is None or epsilon < 0:
            raise ValueError(f'epsilon must be a number >= 0, got {epsilon!r}')
        self.epsilon = float(epsilon)
        self.sparsity_l = sparsity_l

    def attach(self, block):
        block.gate = StrictIdentityGate(self.epsilon, self.sparsity_l)

    def __call__(self, block, out, x):
        return block.gate(out) + block.shortcut(x)


@MERGES.register_module()
class EDPath(Residual):
    """``F + s + ed_path(s)``, the path (``ed_resnet.EDPath``: grouped 3x3 stride-2 encoder to
    the bottleneck width, transposed-conv decoder back) attached as ``block.ed_path``; bottleneck
    blocks only.

    Args:
        groups (int): Groups of the encoder and decoder convs. Defaults to 32 (ED-Net).
    """

    def __init__(self, groups=32):
        if not isinstance(groups, int) or groups < 1:
            raise ValueError(f'ed_groups must be a positive int, got {groups!r}')
        self.groups = groups

    def attach(self, block):
        from .ed_resnet import EDPath as EDPathModule
        if not hasattr(block, 'conv3'):
            raise ValueError(f'the ED path is defined for bottleneck blocks, not '
                             f'{type(block).__name__}')
        block.ed_path = EDPathModule(block.planes * block.expansion, block.conv2.out_channels,
                                     groups=self.groups, conv_cfg=block.conv_cfg,
                                     norm_cfg=block.norm_cfg)

    def __call__(self, block, out, x):
        identity = block.shortcut(x)
        return out + identity + block.ed_path(identity)


class MergeMixin:
    """Block side of the contract: ``build_merge_from(cfg)`` in ``__init__`` (after the
    shortcut exists), then ``merge(out, x)`` runs the component."""

    def build_merge_from(self, cfg):
        self.shortcut_merge = build_merge(cfg)
        self.shortcut_merge.attach(self)

    def shortcut(self, x):
        """The identity, or the projection (``downsample``) when the shape changes."""
        return x if self.downsample is None else self.downsample(x)

    def merge(self, out, x):
        """Combine the residual branch output with the block input (before a final ReLU)."""
        return self.shortcut_merge(self, out, x)
