"""Pre-activation blocks of the shared trunk: ``ResNet(depth, preact=True)``.

The ImageNet network of epsilon-ResNet is tensorpack's pre-activation ResNet
(docs/architectures.md 2.1). With ``preact=True`` the trunk keeps its stem (7x7/2 conv, BN-ReLU,
3x3/2 max-pool) and builds its stages from these blocks:

* every block first computes ``a = relu(bn1(x))`` ("preact"), except the first block of stage
  1, whose input the stem has already activated ("no_preact"); then the residual branch
  ``F = conv1 -> bn2-relu -> conv2 -> bn3-relu -> conv3`` (bottleneck, stride on the 3x3 conv)
  or ``F = conv1 -> bn2-relu -> conv2`` (basic block), with no norm after the last conv;
* the block returns ``merge(F, s)`` with no ReLU after it, where the shortcut reads
  ``s = a`` in the first block of a stage ("both_preact": the projection sees the activated
  tensor) and the raw input ``s = x`` in the other blocks ("default");
* the projection shortcut is a strided 1x1 conv without a norm (``downsample.0``);
* the last stage's output passes a final BN-ReLU (``bn_out``) before it is returned.

The merge is the trunk's (``merges.MERGES``), so ``EpsilonResNet(depth, preact=True)`` gates
every block with the strict-identity gate; ResNeXt groups, ``conv_cfg`` (ConvWS), plugins and
block attention (after conv3 / conv2), ``with_cp``, ``frozen_stages`` and ``norm_eval`` keep
their meaning. Not defined for this trunk (refused by name): SK, ``zero_init_residual``.
"""
import functools

import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import Sequential

from .resnet import BasicBlock, Bottleneck, _checkpoint_contexts


def _preact_block_forward(self, x):
    def _inner_forward(x):
        a = self.relu(getattr(self, self.norm1_name)(x)) if self.preact else x
        return self.merge(self.residual(a), a if self.shortcut_from_preact else x)

    if self.with_cp and x.requires_grad:
        # the backward pass re-runs the block: keep its buffers from being updated twice
        return cp.checkpoint(_inner_forward, x, use_reentrant=False,
                             context_fn=functools.partial(_checkpoint_contexts, self))
    return _inner_forward(x)


def _set_preact_norms(block, norm_cfg, channels):
    """``bn1`` over the block input (removed when ``channels[0]`` is None), then one norm after
    each following conv (``bn2``, ``bn3``, ...), replacing the post-activation norms."""
    for k, width in enumerate(channels, start=1):
        name = getattr(block, f'norm{k}_name')
        if width is None:
            delattr(block, name)
        else:
            block.add_module(name, build_norm_layer(norm_cfg, width, postfix=k)[1])


class PreActBlock(BasicBlock):
    """Pre-activation basic block: ``merge(conv2(relu(bn2(conv1(a)))), s)``, ``a`` the
    pre-activated input (see the module docstring).

    Args:
        preact (bool): Apply ``relu(bn1(.))`` to the input. Defaults to True.
        shortcut_from_preact (bool): The shortcut reads the pre-activated input (a stage's
            first block). Defaults to False.
        Other arguments: as the trunk's ``BasicBlock``.
    """

    def __init__(self, inplanes, planes, preact=True, shortcut_from_preact=False,
                 norm_cfg=dict(type='BN'), **kwargs):
        super().__init__(inplanes, planes, norm_cfg=norm_cfg, **kwargs)
        self.preact, self.shortcut_from_preact = preact, shortcut_from_preact
        _set_preact_norms(self, norm_cfg, (inplanes if preact else None, planes))

    def residual(self, a):
        """F(a) from the pre-activated input: conv1 -> BN-ReLU -> conv2 (+ plugins)."""
        out = self.relu(getattr(self, self.norm2_name)(self.conv1(a)))
        out = self._run_plugins(out, self.after_conv1_plugin_names)
        return self._run_plugins(self.conv2(out), self.after_conv2_plugin_names)

    forward = _preact_block_forward


class PreActBottleneck(Bottleneck):
    """Pre-activation bottleneck: ``merge(conv3(relu(bn3(conv2(relu(bn2(conv1(a))))))), s)``
    with the stride on the 3x3 conv (``style='pytorch'``; see the module docstring).

    Args:
        preact (bool): Apply ``relu(bn1(.))`` to the input. Defaults to True.
        shortcut_from_preact (bool): The shortcut reads the pre-activated input (a stage's
            first block). Defaults to False.
        Other arguments: as the trunk's ``Bottleneck`` (ResNeXt ``groups`` / ``base_width``),
            without ``sk``.
    """

    def __init__(self, inplanes, planes, preact=True, shortcut_from_preact=False, sk=None,
                 **kwargs):
        if sk is not None:
            raise ValueError('sk (selective kernel) is defined for the post-activation trunk, '
                             'not preact=True')
        super().__init__(inplanes, planes, **kwargs)
        self.preact, self.shortcut_from_preact = preact, shortcut_from_preact
        _set_preact_norms(self, self.norm_cfg, (inplanes if preact else None,
                                                self.conv1.out_channels,
                                                self.conv2.out_channels))

    def residual(self, a):
        """F(a) from the pre-activated input: conv1 -> BN-ReLU -> conv2 -> BN-ReLU -> conv3."""
        out = self.relu(getattr(self, self.norm2_name)(self.conv1(a)))
        if self.with_plugins:
            out = self.forward_plugin(out, self.after_conv1_plugin_names)
        out = self.relu(getattr(self, self.norm3_name)(self.conv2(out)))
        if self.with_plugins:
            out = self.forward_plugin(out, self.after_conv2_plugin_names)
        out = self.conv3(out)
        if self.with_plugins:
            out = self.forward_plugin(out, self.after_conv3_plugin_names)
        return out

    forward = _preact_block_forward


#: the trunk's post-activation block -> its pre-activation counterpart
PREACT_BLOCKS = {BasicBlock: PreActBlock, Bottleneck: PreActBottleneck}


def make_preact_layer(block, inplanes, planes, num_blocks, stride=1, avg_down=False,
                      conv_cfg=None, first_stage=False, with_projection=True, **kwargs):
    """A stage of pre-activation blocks (mmdet ``ResLayer``'s arguments).

    The first block carries the stride and reads its shortcut from the pre-activated input
    (without pre-activation in the first stage); where the shape changes it gets the
    projection, a 1x1 conv without a norm (after an average pool with ``avg_down``), unless
    the merge needs none (``with_projection=False``).
    """
    out_channels = planes * block.expansion
    downsample = None
    if with_projection and (stride != 1 or inplanes != out_channels):
        layers = []
        conv_stride = stride
        if avg_down:  # as mmdet's ResLayer: pool, then a stride-1 conv
            layers.append(nn.AvgPool2d(kernel_size=stride, stride=stride, ceil_mode=True,
                                       count_include_pad=False))
            conv_stride = 1
        layers.append(build_conv_layer(conv_cfg, inplanes, out_channels, kernel_size=1,
                                       stride=conv_stride, bias=False))
        downsample = nn.Sequential(*layers)
    blocks = [block(inplanes, planes, stride=stride, downsample=downsample,
                    preact=not first_stage, shortcut_from_preact=True, conv_cfg=conv_cfg,
                    **kwargs)]
    blocks += [block(out_channels, planes, stride=1, preact=True, shortcut_from_preact=False,
                     conv_cfg=conv_cfg, **kwargs) for _ in range(1, num_blocks)]
    # mmengine's Sequential: init_weights reaches the blocks and their plugins
    return Sequential(*blocks)
