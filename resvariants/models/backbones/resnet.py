"""One ResNet / ResNeXt trunk for classification and detection, with attention by config.

Subclasses mmdet's ``ResNet`` so detection semantics (``out_indices``, ``frozen_stages``,
``norm_eval``, ``style``, ``with_cp``, ``zero_init_residual``, ``dcn``, ``plugins``) are
mmdet's own, and the state-dict layout is torchvision's (``conv1``, ``bn1``,
``layerX.Y.conv1/bn1/...``, ``layerX.0.downsample.0/1``). The same class is used from mmpretrain
configs (``type='resvariants.ResNet'``), so a classifier's ``backbone.*`` weights load into a
detector with zero missing or unexpected keys.

Variants are arguments, not classes:

* ``attention='se' | 'cbam' | 'gc' | 'sge' | 'srm'`` (or a dict): a module after the last norm
  of every block of ``attention_stages``, before the residual addition (PytorchInsight's
  placement), built through mmdet's plugin mechanism so it is identical to
  ``plugins=[dict(cfg=..., position='after_conv3')]`` on a stock mmdet ResNet. BasicBlock
  depths (18/34) take the modules too (after their second norm).
* ``attention='bam'``: a BAM module after each stage of ``attention_stages`` (default 1-3),
  named ``bam1..bam3`` as in the reference.
* ``sk=dict(groups=32, ratio=16)``: PytorchInsight's SK-ResNet* (dense + 32-group 3x3 branches
  with softmax selection), bottleneck depths only.
* ``groups=32, base_width=4``: ResNeXt-50/101 32x4d.
"""
import contextlib
import copy
import functools

import torch
import torch.utils.checkpoint as cp
from mmcv.cnn import build_conv_layer, build_norm_layer, build_plugin_layer
from mmdet.models.backbones.resnet import BasicBlock as MMDetBasicBlock
from mmdet.models.backbones.resnet import ResNet as MMDetResNet
from mmdet.models.backbones.resnext import Bottleneck as MMDetResNeXtBottleneck
from mmengine.model import Sequential
from torch.nn.modules.batchnorm import _BatchNorm

from resvariants.registry import MODELS
from .merges import MergeMixin, build_merge
from ..attention._norm import is_synchronised, one_value_per_channel
from ..attention.factory import (attention_placement, build_attention, check_plugin_cfgs,
                                 normalize_attention_cfg)
from ..attention.sk import SKFusion

_BLOCK_POSITIONS = ('after_conv1', 'after_conv2', 'after_conv3')


class _BlockMixin(MergeMixin):
    """The block contract every variant builds on.

    ``forward(x) = relu(merge(residual(x), x))`` where ``residual`` is the residual branch and
    ``merge`` adds the shortcut: a component from ``merges.MERGES`` chosen by the trunk's
    ``merge=`` (a plain block returns ``out`` and has no shortcut; an epsilon-gated block
    scales ``out``; an ED block adds a path on the shortcut output).
    """


class _BuffersKept:
    """Undo what a block's recomputation writes to its buffers: the BN running statistics and
    the epsilon gates' step counters were already updated by the checkpointed forward.

    Re-entrant: a backward pass may recompute the block more than once (an attention module
    whose backward takes gradients of a local graph unpacks its saved tensors again).
    """

    def __init__(self, module):
        self.module = module
        self.saved = []

    def __enter__(self):
        self.saved.append([(buf, buf.detach().clone()) for buf in self.module.buffers()])
        return self

    def __exit__(self, *exc):
        with torch.no_grad():
            for buf, value in self.saved.pop():
                buf.copy_(value)
        return False


def _checkpoint_contexts(module):
    return contextlib.nullcontext(), _BuffersKept(module)


def _requires_grad(x):
    """Whether a block input needs gradients: a tensor, or an octave ``(high, low)`` pair."""
    if isinstance(x, (tuple, list)):
        return any(t is not None and t.requires_grad for t in x)
    return x.requires_grad


def _block_forward(self, x):
    def _inner_forward(x):
        return self.merge(self.residual(x), x)

    if self.with_cp and _requires_grad(x):
        # the backward pass re-runs the block: keep its buffers from being updated twice
        out = cp.checkpoint(_inner_forward, x, use_reentrant=False,
                            context_fn=functools.partial(_checkpoint_contexts, self))
    else:
        out = _inner_forward(x)
    return self.relu(out)


class BasicBlock(_BlockMixin, MMDetBasicBlock):
    """mmdet's BasicBlock that also accepts plugins (``after_conv1`` / ``after_conv2``).

    ``after_conv2`` runs after the second norm, before the residual addition: the place
    PytorchInsight puts SE/CBAM/SGE in its basic blocks.
    """

    def __init__(self, inplanes, planes, plugins=None, merge=None, **kwargs):
        super().__init__(inplanes, planes, plugins=None, **kwargs)
        self.build_merge_from(merge)
        self.after_conv1_plugin_names = []
        self.after_conv2_plugin_names = []
        for plugin in plugins or []:
            position = plugin['position']
            if position not in ('after_conv1', 'after_conv2'):
                raise ValueError(f'BasicBlock plugins go "after_conv1" or "after_conv2", got '
                                 f'position={position!r} (after_conv3 exists only in '
                                 f'Bottleneck blocks, depth >= 50)')
            cfg = dict(plugin['cfg'])
            name, layer = build_plugin_layer(cfg, in_channels=planes,
                                             postfix=cfg.pop('postfix', ''))
            if hasattr(self, name):
                raise ValueError(f'duplicate plugin {name}; give one a "postfix"')
            self.add_module(name, layer)
            getattr(self, f'{position}_plugin_names').append(name)

    def _run_plugins(self, x, names):
        for name in names:
            x = getattr(self, name)(x)
        return x

    def residual(self, x):
        """The residual branch F(x), up to (and including) the modules after the last norm."""
        out = self.relu(self.norm1(self.conv1(x)))
        out = self._run_plugins(out, self.after_conv1_plugin_names)
        out = self.norm2(self.conv2(out))
        return self._run_plugins(out, self.after_conv2_plugin_names)

    forward = _block_forward


class Bottleneck(_BlockMixin, MMDetResNeXtBottleneck):
    """mmdet's (ResNeXt-capable) Bottleneck with an optional selective-kernel 3x3 stage.

    Args:
        sk (dict | None): ``dict(groups=32, ratio=16)`` adds PytorchInsight's second 3x3
            branch (``conv2g``/``bn2g``, ``groups`` groups) and the ``sk`` fusion module.
        merge (dict | str | None): How the shortcut is added (``merges.MERGES``); None is
            ``Residual``.
        Other arguments: as mmdet's ResNeXt ``Bottleneck`` (``groups=1`` is plain ResNet).
    """

    def __init__(self, inplanes, planes, sk=None, merge=None, **kwargs):
        super().__init__(inplanes, planes, **kwargs)
        self.build_merge_from(merge)
        self.with_sk = sk is not None
        if self.with_sk:
            sk = dict(sk)
            width = self.conv2.out_channels
            branch_groups = sk.pop('groups', 32)
            if width % branch_groups:
                raise ValueError(f'SK branch groups={branch_groups} must divide the 3x3 width '
                                 f'{width}')
            self.conv2g = build_conv_layer(
                self.conv_cfg, width, width, kernel_size=3, stride=self.conv2_stride,
                padding=self.dilation, dilation=self.dilation, groups=branch_groups,
                bias=False)
            self.norm2g_name, norm2g = build_norm_layer(self.norm_cfg, width, postfix='2g')
            self.add_module(self.norm2g_name, norm2g)
            self.sk = SKFusion(width, **sk)

    def _grouped_conv(self, x):
        """``conv2g(x)``. On the CPU, a grouped conv with at most 2 channels per group runs in
        channels_last (oneDNN's kernel there is about twice as fast: SK's 32-group 3x3 of stage
        1, 64 channels); the result comes back in the input's layout. Same maths."""
        conv = self.conv2g
        if (x.device.type == 'cpu' and conv.in_channels // conv.groups <= 2
                and x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)):
            return conv(x.contiguous(memory_format=torch.channels_last)).contiguous()
        return conv(x)

    def residual(self, x):
        """The residual branch F(x), up to (and including) the modules after norm3."""
        out = self.relu(self.norm1(self.conv1(x)))
        if self.with_plugins:
            out = self.forward_plugin(out, self.after_conv1_plugin_names)
        branch = self.relu(self.norm2(self.conv2(out)))
        if self.with_sk:
            second = self.relu(getattr(self, self.norm2g_name)(self._grouped_conv(out)))
            branch = self.sk([branch, second])
        out = branch
        if self.with_plugins:
            out = self.forward_plugin(out, self.after_conv2_plugin_names)
        out = self.norm3(self.conv3(out))
        if self.with_plugins:
            out = self.forward_plugin(out, self.after_conv3_plugin_names)
        return out

    forward = _block_forward


class ShortcutFreeResLayer(Sequential):
    """A stage of blocks built without any shortcut module (for a merge that needs none).

    Takes mmdet ``ResLayer``'s arguments; ``avg_down`` only concerns the (absent) shortcut and is
    ignored. The first block has the stage's stride and input width.
    """

    def __init__(self, block, inplanes, planes, num_blocks, stride=1, avg_down=False,
                 **kwargs):
        del avg_down
        blocks = [block(inplanes=inplanes, planes=planes, stride=stride, **kwargs)]
        inplanes = planes * block.expansion
        blocks += [block(inplanes=inplanes, planes=planes, stride=1, **kwargs)
                   for _ in range(1, num_blocks)]
        super().__init__(*blocks)


@MODELS.register_module()
class ResNet(MMDetResNet):
    """ResNet / ResNeXt trunk with PytorchInsight attention variants, for mmpretrain and mmdet.

    Args:
        depth (int): 18, 34, 50, 101 or 152.
        attention (str | dict | None): ``'se'``, ``'cbam'``, ``'gc'``, ``'sge'``, ``'srm'``,
            ``'bam'`` or a config dict (``dict(type='SGE', groups=64)``). Default None.
        attention_stages (tuple[bool] | None): Stages that get the attention. Defaults to all
            stages for block attention and stages 1-3 for BAM.
        sk (dict | None): Selective-kernel 3x3 (bottleneck only), e.g. ``dict(groups=32)``.
        groups (int): ResNeXt cardinality (1 = ResNet). Defaults to 1.
        base_width (int): ResNeXt width per group. Defaults to 4.
        merge (dict | str | None): How every block adds its shortcut (``merges.MERGES``):
            ``'Residual'`` (None, the default), ``'NoShortcut'`` (no projection shortcuts are
            built), ``dict(type='StrictIdentity', epsilon=2.0)``, ``dict(type='EDPath',
            groups=32)``. The presets PlainResNet / EpsilonResNet / EDResNet set it.
        preact (bool): Build the pre-activation trunk (``preact_resnet.py``: BN-ReLU before
            each block's convs, projection shortcuts without a norm, a final BN-ReLU ``bn_out``
            after the last stage), the ImageNet network of epsilon-ResNet. Defaults to False.
        **kwargs: mmdet ``ResNet`` arguments (``out_indices``, ``frozen_stages``,
            ``norm_eval``, ``style``, ``with_cp``, ``zero_init_residual``, ``dcn``,
            ``plugins``, ``init_cfg``, ...).

    Example:
        >>> import torch
        >>> from resvariants.models import ResNet
        >>> m = ResNet(depth=50, attention='sge', out_indices=(0, 1, 2, 3)).eval()
        >>> [tuple(o.shape) for o in m(torch.rand(1, 3, 64, 64))]
        [(1, 256, 16, 16), (1, 512, 8, 8), (1, 1024, 4, 4), (1, 2048, 2, 2)]
    """

    arch_settings = {
        18: (BasicBlock, (2, 2, 2, 2)),
        34: (BasicBlock, (3, 4, 6, 3)),
        50: (Bottleneck, (3, 4, 6, 3)),
        101: (Bottleneck, (3, 4, 23, 3)),
        152: (Bottleneck, (3, 8, 36, 3)),
    }

    def __init__(self, depth, attention=None, attention_stages=None, sk=None, groups=1,
                 base_width=4, plugins=None, merge=None, preact=False, **kwargs):
        if depth not in self.arch_settings:
            raise KeyError(f'unsupported ResNet depth {depth}; valid depths: '
                           f'{sorted(self.arch_settings)}')
        self.preact = bool(preact)
        if self.preact:
            self._use_preact_blocks(depth, sk, kwargs)
        block = self.arch_settings[depth][0]
        num_stages = kwargs.get('num_stages', 4)
        if kwargs.get('style', 'pytorch') not in ('pytorch', 'caffe'):
            # mmdet checks this in its Bottleneck only; basic-block depths would accept anything
            raise ValueError(f'style must be "pytorch" or "caffe", got {kwargs["style"]!r}')
        attention = normalize_attention_cfg(attention)
        self.attention_cfg = attention
        self.stage_attention_cfg = None
        plugins = copy.deepcopy(list(plugins)) if plugins is not None else None
        for plugin in plugins or []:
            if plugin.get('position') not in _BLOCK_POSITIONS:
                raise ValueError(f'plugin position must be one of {_BLOCK_POSITIONS}, got '
                                 f'{plugin.get("position")!r}')
        check_plugin_cfgs(plugins, num_stages)
        if attention is not None and attention_placement(attention['type']) == 'stage':
            self.stage_attention_cfg = attention
            stages = attention_stages or (True, ) * (num_stages - 1) + (False, )
        elif attention is not None:
            stages = attention_stages or (True, ) * num_stages
            position = 'after_conv3' if issubclass(block, Bottleneck) else 'after_conv2'
            plugins = (plugins or []) + [dict(cfg=attention, stages=tuple(stages),
                                              position=position)]
        else:
            stages = attention_stages
        if stages is not None and len(stages) != num_stages:
            raise ValueError(f'attention_stages needs {num_stages} entries, got {stages}')
        self.attention_stages = tuple(stages) if stages is not None else None
        if sk is not None and not issubclass(block, Bottleneck):
            raise ValueError(f'SK (selective kernel) replaces the bottleneck 3x3 conv and needs '
                             f'depth 50/101/152, got depth {depth} (BasicBlock)')
        if groups != 1 and not issubclass(block, Bottleneck):
            raise ValueError(f'ResNeXt groups need a Bottleneck depth (50/101/152), got {depth}')
        self.sk = sk
        self.groups = groups
        self.base_width = base_width
        self.merge_cfg = merge
        self.shortcut_merge = build_merge(merge)
        if not self.shortcut_merge.allows_zero_init_residual:
            if kwargs.get('zero_init_residual'):
                raise ValueError(f'merge={self.shortcut_merge!r} needs zero_init_residual=False: '
                                 f'a zero last norm in every block would never train (no '
                                 f'shortcut, or a gate that stays closed)')
            kwargs['zero_init_residual'] = False
        super().__init__(depth, plugins=plugins, **kwargs)
        if self.preact:  # the last stage's output is normalised and activated once more
            self.final_norm_name, final_norm = build_norm_layer(self.norm_cfg, self.feat_dim,
                                                                postfix='_out')
            self.add_module(self.final_norm_name, final_norm)
            self._freeze_stages()
        if self.stage_attention_cfg is not None:
            for i, enabled in enumerate(self.attention_stages):
                if enabled:
                    channels = self.base_channels * 2**i * self.block.expansion
                    self.add_module(f'{self.stage_attention_cfg["type"].lower()}{i + 1}',
                                    build_attention(self.stage_attention_cfg, channels))
            self._freeze_stages()

    def _use_preact_blocks(self, depth, sk, kwargs):
        """Swap this instance's block class for its pre-activation counterpart."""
        from .preact_resnet import PREACT_BLOCKS
        block, stage_blocks = self.arch_settings[depth]
        if block not in PREACT_BLOCKS:
            raise ValueError(f'{type(self).__name__}: preact=True is defined for the trunk\'s '
                             f'BasicBlock / Bottleneck, not {block.__name__}')
        if sk is not None:
            raise ValueError('sk (selective kernel) is defined for the post-activation trunk, '
                             'not preact=True')
        if kwargs.get('zero_init_residual'):
            raise ValueError('preact=True needs zero_init_residual=False: a pre-activation '
                             'block ends with a conv, not a norm that could start at 0')
        kwargs['zero_init_residual'] = False
        self.arch_settings = {depth: (PREACT_BLOCKS[block], stage_blocks)}  # this instance

    def with_preset_merge(self, kwargs, merge):
        """``kwargs`` with a preset's ``merge`` (EpsilonResNet, EDResNet, PlainResNet fix it)."""
        if 'merge' in kwargs:
            raise ValueError(f'{type(self).__name__} is the trunk with merge={merge!r}; for '
                             f'another merge use resvariants.ResNet (got merge='
                             f'{kwargs["merge"]!r})')
        return dict(kwargs, merge=merge)

    def make_res_layer(self, **kwargs):
        block = kwargs['block']
        if issubclass(block, Bottleneck):
            kwargs.update(groups=self.groups, base_width=self.base_width,
                          base_channels=self.base_channels, sk=self.sk)
        kwargs['merge'] = self.merge_cfg
        if (self.zero_init_residual and kwargs.get('init_cfg') is None
                and isinstance(self.init_cfg, list)):
            # mmdet compares block classes by identity, so it skips our subclasses
            norm = 'norm3' if issubclass(block, Bottleneck) else 'norm2'
            kwargs['init_cfg'] = dict(type='Constant', val=0, override=dict(name=norm))
        if self.preact:
            from .preact_resnet import PREACT_BLOCKS, make_preact_layer
            if kwargs['block'] not in PREACT_BLOCKS.values():  # a preset's own block
                raise ValueError(f'{type(self).__name__}: preact=True is defined for the '
                                 f'trunk\'s BasicBlock / Bottleneck, not '
                                 f'{kwargs["block"].__name__}')
            return make_preact_layer(first_stage=not self.res_layers,
                                     with_projection=self.shortcut_merge.needs_projection,
                                     **kwargs)
        if not self.shortcut_merge.needs_projection:
            return ShortcutFreeResLayer(**kwargs)
        return super().make_res_layer(**kwargs)

    def stage_attention(self, index):
        """The stage-level attention after stage ``index`` (0-based), or None."""
        if self.stage_attention_cfg is None:
            return None
        return getattr(self, f'{self.stage_attention_cfg["type"].lower()}{index + 1}', None)

    def _freeze_stages(self):
        super()._freeze_stages()
        final_norm = getattr(self, getattr(self, 'final_norm_name', ''), None)
        if final_norm is not None and self.frozen_stages >= self.num_stages:
            final_norm.eval()  # the pre-activation trunk's last BN goes with the last stage
            for param in final_norm.parameters():
                param.requires_grad = False
        for i in range(self.frozen_stages):
            module = self.stage_attention(i) if hasattr(self, 'attention_stages') else None
            if module is not None:
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def init_weights(self):
        """Initialise, applying a StrictPretrained checkpoint load *last*.

        mmengine runs a parent's ``init_cfg`` before its children's own ``init_weights``
        (it holds back only ``type='Pretrained'``), so attention modules that re-initialise
        themselves would overwrite freshly loaded weights. Here the children initialise first,
        then the checkpoint is loaded over them.
        """
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg]
        loads = [c for c in cfgs if isinstance(c, dict)
                 and c.get('type') == 'StrictPretrained']
        if not loads:
            return super().init_weights()
        from mmengine.model.weight_init import initialize
        original = self.init_cfg
        rest = [c for c in cfgs if c is not None and c not in loads]
        self.init_cfg = rest or None
        try:
            super().init_weights()
        finally:
            self.init_cfg = original
        initialize(self, loads)

    def train(self, mode=True):
        """As mmdet's (frozen stages, ``norm_eval``), but returns ``self`` like nn.Module."""
        super().train(mode)
        return self

    def forward(self, x):
        if self.training and x.shape[0] == 1 and not torch.jit.is_tracing():
            # batch 1 in train mode: a BN that meets a 1x1 map cannot take batch statistics;
            # say which one and what to change instead of PyTorch's bare message
            with _explain_single_value_norms(self, tuple(x.shape)):
                return self._forward(x)
        return self._forward(x)

    def _forward(self, x):
        if self.deep_stem:
            x = self.stem(x)
        else:
            x = self.relu(self.norm1(self.conv1(x)))
        x = self.maxpool(x)
        outs = []
        for i, layer_name in enumerate(self.res_layers):
            x = getattr(self, layer_name)(x)
            stage_attention = self.stage_attention(i)
            if stage_attention is not None:
                x = stage_attention(x)
            if self.preact and i == len(self.res_layers) - 1:
                # (torch.relu: with deep_stem mmdet builds no self.relu)
                x = torch.relu(getattr(self, self.final_norm_name)(x))
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


@contextlib.contextmanager
def _explain_single_value_norms(model, input_shape):
    """While active, a train-mode BatchNorm of ``model`` that gets one value per channel
    raises a ValueError naming it and the fixes (PyTorch's own message names no module)."""
    handles = []

    def check(name):
        def hook(module, args):
            x = args[0]
            if (module.training and torch.is_tensor(x) and x.dim() >= 2
                    and one_value_per_channel(x) and not is_synchronised(module)):
                size = 'x'.join(str(int(d)) for d in x.shape[2:]) or '1'
                raise ValueError(
                    f'{type(model).__name__}: the BatchNorm {name} ({type(module).__name__}) '
                    f'gets 1 value per channel in train mode: the input '
                    f'{tuple(int(d) for d in input_shape)} with batch 1 is a {size} map '
                    f'there, and batch statistics need more than one value. Fix: a batch of '
                    f'2 or more images, a larger input, norm_eval=True (frozen BN statistics, '
                    f'as the detection configs use), or SyncBN over several processes.')
        return hook

    try:
        for name, module in model.named_modules():
            if isinstance(module, _BatchNorm):
                handles.append(module.register_forward_pre_hook(check(name)))
        yield
    finally:
        for handle in handles:
            handle.remove()
