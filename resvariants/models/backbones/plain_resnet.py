"""Plain (shortcut-free) ResNets: "ResNet with No Res" and RMNet-style exact residual removal.

Three backbones share the trunk's stem / stage layout and state-dict names:

* ``CifarResNet``: the residual CIFAR ResNet (3x3 stem, no max-pool, depths 6n+2 such as 20 /
  32 / 56 / 110 with 16-32-64 channels, or any ImageNet depth with the CIFAR stem). It is the
  teacher of the "ResNet with No Res" recipe (tgjjj/ResNet-Distillation, ResNet-20,
  docs/architectures.md 4.1): torchvision-style projection shortcuts (1x1 conv + BN).
* ``PlainResNet``: the same network with the residual addition removed (the trunk with
  ``merge='NoShortcut'``), the student of the stage-wise distillation
  (``StagewiseDistiller``). Each block computes ``relu(residual(x))``; unlike the source, which still runs the projection convs and throws
  their result away, no shortcut module is built or run, so the plain network has fewer
  parameters and MACs than the residual one.
* ``RMPlainResNet``: the deploy form produced by ``resvariants.converters.remove_residual``
  (RMNet, Meng et al. 2021, "Reserve and Merge"): BN folded into conv biases and, per block,
  ``inplanes`` reserved channels that carry the (post-ReLU, hence non-negative) block input
  through the ReLUs with Dirac kernels, so the last conv of the block adds the shortcut itself.
  A converted residual ResNet gives the same outputs as the original with no addition at all.

Depths 18/34/50/101/152 default to the ImageNet stem (7x7/2 conv + 3x3/2 max-pool, 4 stages,
64 base channels); CIFAR depths (20, 32, 44, 56, 110) default to the CIFAR stem with 3 stages
of 16/32/64 channels and strides 1/2/2. Every mmdet ``ResNet`` argument (``out_indices``,
``frozen_stages``, ``norm_eval``, ``style``, ``init_cfg`` ...) keeps its meaning, so the three
backbones work in mmpretrain classifiers and mmdet detectors alike.
"""
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule

from resvariants.registry import MODELS
from .resnet import BasicBlock, Bottleneck, ResNet, ShortcutFreeResLayer

#: CIFAR ResNets (He et al. 2016, section 4.2): depth 6n + 2, n basic blocks per stage.
CIFAR_DEPTHS = (20, 32, 44, 56, 110)
STEM_TYPES = ('imagenet', 'cifar')


def _cifar_arch_settings(block):
    return {depth: (block, ((depth - 2) // 6, ) * 3) for depth in CIFAR_DEPTHS}


class _StemOptionMixin:
    """``stem='imagenet'`` (7x7/2 conv + max-pool) or ``stem='cifar'`` (3x3/1 conv, no pool).

    Also fills the CIFAR defaults (3 stages of 16/32/64 channels, strides 1/2/2, all stages as
    outputs) for the CIFAR stem when the caller leaves them out.
    """

    default_stem = None  # None: 'cifar' for CIFAR depths, 'imagenet' otherwise

    def _resolve_stem(self, depth, stem, kwargs):
        if stem is None:
            stem = self.default_stem or ('cifar' if depth in CIFAR_DEPTHS else 'imagenet')
        if stem not in STEM_TYPES:
            raise ValueError(f'stem must be one of {STEM_TYPES}, got {stem!r}')
        if depth in CIFAR_DEPTHS and stem != 'cifar':
            raise ValueError(f'CIFAR depth {depth} needs stem="cifar", got {stem!r}')
        if stem == 'cifar':
            if kwargs.get('deep_stem'):
                raise ValueError('deep_stem replaces the ImageNet 7x7 stem; it cannot be '
                                 'combined with stem="cifar"')
            if depth in CIFAR_DEPTHS:
                num_stages = kwargs.setdefault('num_stages', 3)
                if num_stages > 3:
                    raise ValueError(f'CIFAR depth {depth} has 3 stages, got '
                                     f'num_stages={num_stages}')
                kwargs.setdefault('base_channels', 16)
                kwargs.setdefault('strides', (1, 2, 2)[:num_stages])
                kwargs.setdefault('dilations', (1, ) * num_stages)
                kwargs.setdefault('out_indices', tuple(range(num_stages)))
        self.stem_type = stem
        return kwargs

    def _make_stem_layer(self, in_channels, stem_channels):
        if self.stem_type == 'imagenet':
            return super()._make_stem_layer(in_channels, stem_channels)
        self.conv1 = build_conv_layer(self.conv_cfg, in_channels, stem_channels, kernel_size=3,
                                      stride=1, padding=1, bias=False)
        self.norm1_name, norm1 = build_norm_layer(self.norm_cfg, stem_channels, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()


@MODELS.register_module()
class CifarResNet(_StemOptionMixin, ResNet):
    """The residual trunk with the CIFAR stem: the teacher of "ResNet with No Res".

    ``CifarResNet(depth=20)`` is the source's ResNet-20 backbone (278,324 parameters with its
    64 -> 100 fc): 3x3 stem with 16 channels, three stages of 3 basic blocks (16/32/64 channels,
    strides 1/2/2) with projection shortcuts. ImageNet depths (18, 34, 50, ...) get the CIFAR
    stem too (no max-pool). Other arguments: as ``resvariants.ResNet``.

    Example:
        >>> import torch
        >>> m = CifarResNet(depth=20).eval()
        >>> [tuple(o.shape) for o in m(torch.rand(1, 3, 28, 28))]
        [(1, 16, 28, 28), (1, 32, 14, 14), (1, 64, 7, 7)]
    """

    default_stem = 'cifar'
    arch_settings = {**ResNet.arch_settings, **_cifar_arch_settings(BasicBlock)}

    def __init__(self, depth, stem=None, **kwargs):
        kwargs = self._resolve_stem(depth, stem, kwargs)
        super().__init__(depth, **kwargs)


@MODELS.register_module()
class PlainResNet(_StemOptionMixin, ResNet):
    """ResNet without residual additions (the "ResNet with No Res" student).

    Same modules and state-dict names as the residual ``ResNet`` / ``CifarResNet`` of the same
    depth minus the ``layerX.0.downsample.*`` projection shortcuts, so a residual checkpoint
    initialises it by dropping those keys (``StagewiseDistiller`` does this). Block attention
    (``attention='se'`` ...) and plugins work as in ``ResNet``.

    Args:
        depth (int): 18, 34, 50, 101, 152 or a CIFAR depth (20, 32, 44, 56, 110).
        stem (str | None): ``'imagenet'`` or ``'cifar'``; None picks by depth.
        zero_init_residual (bool): Must stay False: with no shortcut, a zero last norm would
            zero the network's output.
        **kwargs: as ``resvariants.ResNet`` (no ``sk`` / ``groups``).

    Example:
        >>> import torch
        >>> m = PlainResNet(depth=18, out_indices=(0, 3)).eval()
        >>> [tuple(o.shape) for o in m(torch.rand(1, 3, 64, 64))]
        [(1, 64, 16, 16), (1, 512, 2, 2)]
    """

    arch_settings = CifarResNet.arch_settings

    def __init__(self, depth, stem=None, zero_init_residual=False, sk=None, groups=1,
                 **kwargs):
        if zero_init_residual:
            raise ValueError(f'{type(self).__name__} has no shortcut: zero_init_residual=True '
                             f'would make every block output zero')
        if sk is not None or groups != 1:
            raise ValueError(f'{type(self).__name__} supports plain ResNet blocks only '
                             f'(got sk={sk}, groups={groups})')
        if depth not in self.arch_settings:
            raise KeyError(f'unsupported depth {depth} for {type(self).__name__}; valid depths: '
                           f'{sorted(self.arch_settings)}')
        kwargs = self._resolve_stem(depth, stem, self.with_preset_merge(kwargs, 'NoShortcut'))
        super().__init__(depth, zero_init_residual=False, **kwargs)


class _RMBlockBase(BaseModule):
    """Shared checks of the deploy (RM) blocks: plain convs with biases, no norm layers."""

    def __init__(self, inplanes, planes, stride=1, dilation=1, style='pytorch', with_cp=False,
                 conv_cfg=None, norm_cfg=None, dcn=None, plugins=None, reserve_identity=True,
                 init_cfg=None):
        super().__init__(init_cfg)
        del norm_cfg  # the norms are folded into the conv biases
        if dcn is not None or plugins:
            raise ValueError(f'{type(self).__name__} is the deploy form of a plain ResNet block; '
                             f'it takes no dcn or plugins')
        if style not in ('pytorch', 'caffe'):
            raise ValueError(f'style must be "pytorch" or "caffe", got {style!r}')
        self.inplanes = inplanes
        self.planes = planes
        self.stride = stride
        self.dilation = dilation
        self.style = style
        self.with_cp = with_cp
        self.conv_cfg = conv_cfg
        self.reserved = inplanes if reserve_identity else 0
        self.relu = nn.ReLU(inplace=True)

    def _conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1):
        return build_conv_layer(self.conv_cfg, in_channels, out_channels, kernel_size,
                                stride=stride, padding=padding, dilation=dilation, bias=True)

    def forward(self, x):
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


class RMBasicBlock(_RMBlockBase):
    """Deploy form of a basic block: ``relu(conv2(relu(conv1(x))))``, no addition.

    ``conv1``: 3x3, ``inplanes -> planes + reserved``; ``conv2``: 3x3,
    ``planes + reserved -> planes``. The ``reserved`` (= ``inplanes``) extra channels carry the
    block input so that ``conv2`` adds the shortcut (identity or folded projection).
    """

    expansion = 1

    def __init__(self, inplanes, planes, **kwargs):
        super().__init__(inplanes, planes, **kwargs)
        self.conv1 = self._conv(inplanes, planes + self.reserved, 3, stride=self.stride,
                                padding=self.dilation, dilation=self.dilation)
        self.conv2 = self._conv(planes + self.reserved, planes, 3, padding=1)

    def _forward(self, x):
        return self.relu(self.conv2(self.relu(self.conv1(x))))


class RMBottleneck(_RMBlockBase):
    """Deploy form of a bottleneck: three convs with ReLUs, no addition.

    Widths ``inplanes -> p + r -> p + r -> 4p`` with ``r`` (= ``inplanes``) reserved channels
    that carry the block input to ``conv3``, which adds the shortcut. The stride sits on
    ``conv2`` (pytorch style) or ``conv1`` (caffe style), as in the residual block.
    """

    expansion = 4

    def __init__(self, inplanes, planes, **kwargs):
        super().__init__(inplanes, planes, **kwargs)
        conv1_stride, conv2_stride = ((1, self.stride) if self.style == 'pytorch' else
                                      (self.stride, 1))
        width = planes + self.reserved
        self.conv1 = self._conv(inplanes, width, 1, stride=conv1_stride)
        self.conv2 = self._conv(width, width, 3, stride=conv2_stride, padding=self.dilation,
                                dilation=self.dilation)
        self.conv3 = self._conv(width, planes * self.expansion, 1)

    def _forward(self, x):
        out = self.relu(self.conv1(x))
        out = self.relu(self.conv2(out))
        return self.relu(self.conv3(out))


_RM_BLOCKS = {BasicBlock: RMBasicBlock, Bottleneck: RMBottleneck}


@MODELS.register_module()
class RMPlainResNet(PlainResNet):
    """Deploy-time plain ResNet: folded norms, no additions, optional reserved channels.

    What ``tools/model_converters/remove_residual.py`` writes: the stem conv has a bias and no
    norm (``bn1`` is an identity), blocks are ``RMBasicBlock`` / ``RMBottleneck``. With
    ``reserve_identity=True`` (a converted residual network) every block is widened by its
    input channels (RMNet); with False (a converted ``PlainResNet``) the widths are the plain
    ones and only the norms are folded.

    Args:
        reserve_identity (bool): Reserve ``inplanes`` channels per block for the shortcut.
        **kwargs: as ``PlainResNet`` (``norm_cfg`` / ``norm_eval`` have nothing to act on).

    Example:
        >>> import torch
        >>> m = RMPlainResNet(depth=50, out_indices=(3, )).eval()
        >>> tuple(m.layer1[0].conv1.weight.shape)  # 64 + 64 reserved channels
        (128, 64, 1, 1)
        >>> [tuple(o.shape) for o in m(torch.rand(1, 3, 64, 64))]
        [(1, 2048, 2, 2)]
    """

    arch_settings = {
        depth: (_RM_BLOCKS[block], stages)
        for depth, (block, stages) in {**ResNet.arch_settings,
                                       **_cifar_arch_settings(BasicBlock)}.items()
    }

    def __init__(self, depth, reserve_identity=True, attention=None, plugins=None,
                 deep_stem=False, avg_down=False, dcn=None, **kwargs):
        if attention is not None or plugins or dcn is not None:
            raise ValueError('RMPlainResNet holds plain conv blocks only: no attention, '
                             'plugins or dcn')
        if deep_stem or avg_down:
            raise ValueError('RMPlainResNet supports the 7x7 ImageNet stem or the CIFAR stem '
                             '(no deep_stem) and no avg_down shortcuts')
        self.reserve_identity = reserve_identity
        super().__init__(depth, **kwargs)

    def _make_stem_layer(self, in_channels, stem_channels):
        super()._make_stem_layer(in_channels, stem_channels)
        old = self.conv1
        self.conv1 = build_conv_layer(self.conv_cfg, in_channels, stem_channels,
                                      kernel_size=old.kernel_size, stride=old.stride,
                                      padding=old.padding, bias=True)
        self.add_module(self.norm1_name, nn.Identity())

    def make_res_layer(self, **kwargs):
        return ShortcutFreeResLayer(reserve_identity=self.reserve_identity, **kwargs)
