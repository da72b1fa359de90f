"""ED-ResNet / ED-ResNeXt: the lightweight encoder-decoder path for residual blocks.

Jin, Xie, Wei, Zhao, Zhang, Tan, "A Lightweight Encoder-Decoder Path for Deep Residual
Networks" (IEEE TNNLS; code megvii-research/ED-Net). Every bottleneck block gets a third path
on its shortcut output ``s`` (the block input, or its projection):

    encoder: 3x3 conv, stride 2, ``ed_groups`` groups, 4p -> p, norm, ReLU
    decoder: 3x3 transposed conv, stride 2, ``ed_groups`` groups, p -> 4p, norm
    out = ReLU(residual(x) + s + decoder(encoder(s)))

(the block of the paper's method figure; ED50/ED101/ED152/EDX50/EDSE50 of the released code). Unlike the
released code, the decoder output size follows the shortcut's size, so any input size works
(224, 256, 800x1333, odd sizes), and the shortcut runs once per forward (one BN statistics update
per step, its MACs counted once).

The -A / -B models of the paper narrow the residual ("transformation") branch: ``branch_ratio``
scales the width of conv1 / conv2 / conv3-input of every block (the ED path keeps the
full-width bottleneck ``p``). The paper does not publish the ratios; the configs under
``configs/imagenet/ed_*-a_in1k.py`` / ``-b`` choose them to reproduce its GFLOPs column (see
projects/ed_path/README.md).
"""
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import constant_init
from torch.nn.modules.batchnorm import _BatchNorm

from resvariants.registry import MODELS
from ..attention._fused import exporting
from ..attention._norm import safe_batch_norm
from .merges import build_merge
from .resnet import Bottleneck, ResNet


class EDPath(nn.Module):
    """Encoder-decoder path of ED-Net applied to a block's shortcut output.

    Computes ``norm(deconv(relu(norm(conv(s)))))`` with a stride-2 grouped 3x3 encoder and a
    stride-2 grouped 3x3 transposed-conv decoder whose output size equals the input size (the
    output padding is derived from the input, so odd and even sizes both work).

    Args:
        channels (int): Channels of the shortcut output (``4p``); also the output channels.
        hidden_channels (int): Channels of the encoded map (``p``).
        groups (int): Groups of both convolutions. Defaults to 32 (ED-Net).
        conv_cfg (dict | None): Config of the encoder conv (as the trunk's ``conv_cfg``).
        norm_cfg (dict): Config of both norms. Defaults to BN.
    """

    def __init__(self, channels, hidden_channels, groups=32, conv_cfg=None,
                 norm_cfg=dict(type='BN')):
        super().__init__()
        for name, value in (('channels', channels), ('hidden_channels', hidden_channels)):
            if value % groups:
                raise ValueError(f'ED path: {name}={value} is not divisible by ed_groups={groups}; '
                                 f'choose ed_groups dividing both {channels} and '
                                 f'{hidden_channels}')
        self.encoder_conv = build_conv_layer(conv_cfg, channels, hidden_channels, kernel_size=3,
                                             stride=2, padding=1, groups=groups, bias=False)
        self.encoder_norm = build_norm_layer(norm_cfg, hidden_channels)[1]
        self.decoder_conv = nn.ConvTranspose2d(hidden_channels, channels, kernel_size=3,
                                               stride=2, padding=1, groups=groups, bias=False)
        self.decoder_norm = build_norm_layer(norm_cfg, channels)[1]
        self.relu = nn.ReLU(inplace=True)

    @staticmethod
    def _norm(norm, x):
        # the encoded map is half the shortcut's size: 1x1 for a 2x2 (or 1x1) shortcut, where a
        # BN of a batch of 1 has one value per channel; it then uses its running statistics
        return safe_batch_norm(norm, x) if isinstance(norm, _BatchNorm) else norm(x)

    def forward(self, shortcut):
        code = self.relu(self._norm(self.encoder_norm, self.encoder_conv(shortcut)))
        if exporting():
            # ``output_size=`` turns into an output padding computed in Python, frozen at the
            # traced size (an exported graph then breaks at the other parity); instead the
            # largest output (padding stride - 1) cropped to the shortcut's size, the same values
            conv = self.decoder_conv
            decoded = F.conv_transpose2d(code, conv.weight, conv.bias, conv.stride, conv.padding,
                                         tuple(s - 1 for s in conv.stride), conv.groups,
                                         conv.dilation)
            decoded = decoded[..., :shortcut.shape[-2], :shortcut.shape[-1]]
        else:
            decoded = self.decoder_conv(code, output_size=shortcut.shape[-2:])
        return self._norm(self.decoder_norm, decoded)


class EDBottleneck(Bottleneck):
    """Our (ResNeXt-capable) Bottleneck with a narrower residual branch (the -A / -B models).

    The ED path itself is the trunk's ``merge=dict(type='EDPath')`` (``merges.EDPath``:
    ``out + s + ed_path(s)`` with ``s = shortcut(x)`` computed once), attached at the
    full bottleneck width before the branch is narrowed.

    Args:
        inplanes (int): Input channels.
        planes (int): Stage planes; the block outputs ``4 * planes`` channels.
        branch_ratio (float): Width of the residual branch (conv1 out, conv2, conv3 in) as a
            fraction of the standard bottleneck width, rounded to the nearest whole number of
            channels per group (ResNeXt keeps all its groups). 1.0 keeps the width.
        **kwargs: As our ``Bottleneck`` (``groups``, ``base_width``, ``plugins``, ``merge``).
    """

    def __init__(self, inplanes, planes, branch_ratio=1.0, **kwargs):
        super().__init__(inplanes, planes, **kwargs)
        full_width = self.conv2.out_channels
        groups = self.conv2.groups
        if branch_ratio != 1.0:
            if self.with_sk:
                raise ValueError('branch_ratio != 1 cannot be combined with sk (the SK branch is '
                                 'built for the full width)')
            width = groups * max(1, round(full_width // groups * branch_ratio))
            if width != full_width:
                self._rebuild_branch(width, groups)

    def _rebuild_branch(self, width, groups):
        """Rebuild conv1 / conv2 / conv3 (and their norms and plugins) at ``width`` channels."""
        conv2_cfg = self.conv_cfg
        if self.with_dcn and not isinstance(self.conv2, nn.Conv2d):
            conv2_cfg = self.dcn
        self.norm1_name, norm1 = build_norm_layer(self.norm_cfg, width, postfix=1)
        self.norm2_name, norm2 = build_norm_layer(self.norm_cfg, width, postfix=2)
        self.conv1 = build_conv_layer(self.conv_cfg, self.inplanes, width, kernel_size=1,
                                      stride=self.conv1_stride, bias=False)
        self.add_module(self.norm1_name, norm1)
        self.conv2 = build_conv_layer(conv2_cfg, width, width, kernel_size=3,
                                      stride=self.conv2_stride, padding=self.dilation,
                                      dilation=self.dilation, groups=groups, bias=False)
        self.add_module(self.norm2_name, norm2)
        self.conv3 = build_conv_layer(self.conv_cfg, width, self.planes * self.expansion,
                                      kernel_size=1, bias=False)
        if self.with_plugins:
            self._del_block_plugins(self.after_conv1_plugin_names
                                    + self.after_conv2_plugin_names)
            self.after_conv1_plugin_names = self.make_block_plugins(width,
                                                                    self.after_conv1_plugins)
            self.after_conv2_plugin_names = self.make_block_plugins(width,
                                                                    self.after_conv2_plugins)


@MODELS.register_module()
class EDResNet(ResNet):
    """ED-ResNet / ED-ResNeXt backbone: our trunk whose bottlenecks carry the ED path.

    All arguments of ``resvariants.ResNet`` apply (``groups=32, base_width=4`` for ED-ResNeXt,
    ``attention='se'`` for EDSE, ``out_indices``, ``frozen_stages``, ``norm_eval``, ...). The
    state-dict layout is the trunk's plus ``layerX.Y.ed_path.{encoder_conv, encoder_norm,
    decoder_conv, decoder_norm}``.

    Args:
        depth (int): 50, 101 or 152 (the ED path is defined for bottleneck blocks).
        branch_ratio (float): Residual-branch width factor, 1.0 for "+ED"; the -A/-B configs set
            it (e.g. 0.95 / 0.53 for ED-ResNet-50). Must be in (0, 1].
        ed_groups (int): Groups of the encoder and decoder convs. Defaults to 32.
        zero_init_residual (bool): As the trunk's (zero-gamma last norm of each residual
            branch, only with the default init); here it also zeroes the ED decoder's norm, so
            every block starts as the identity (for training from scratch). ED-Net does not
            use it; the ImageNet configs keep it off.

    Example:
        >>> import torch
        >>> from resvariants.models import EDResNet
        >>> m = EDResNet(depth=50, out_indices=(0, 1, 2, 3)).eval()
        >>> [tuple(o.shape) for o in m(torch.rand(1, 3, 65, 97))]
        [(1, 256, 17, 25), (1, 512, 9, 13), (1, 1024, 5, 7), (1, 2048, 3, 4)]
    """

    ed_depths = (50, 101, 152)

    def __init__(self, depth, branch_ratio=1.0, ed_groups=32, init_cfg=None, **kwargs):
        if depth not in self.ed_depths:
            raise ValueError(f'EDResNet needs a bottleneck depth {self.ed_depths}, got {depth}')
        if not (isinstance(branch_ratio, (int, float)) and 0 < branch_ratio <= 1):
            raise ValueError(f'branch_ratio must be a number in (0, 1], got {branch_ratio!r}')
        self.branch_ratio = float(branch_ratio)
        self.ed_groups = build_merge(dict(type='EDPath', groups=ed_groups)).groups
        kwargs = self.with_preset_merge(kwargs, dict(type='EDPath', groups=ed_groups))
        super().__init__(depth, init_cfg=init_cfg, **kwargs)
        if init_cfg is None and isinstance(self.init_cfg, list):
            # mmdet's default init (Kaiming on 'Conv2d') misses the decoder's ConvTranspose2d;
            # ED-Net initialises every conv, transposed ones included, the same way.
            for cfg in self.init_cfg:
                if cfg.get('type') == 'Kaiming':
                    cfg['layer'] = ['Conv2d', 'ConvTranspose2d']

    def init_weights(self):
        super().init_weights()
        # the default init and WarmStart (trunk from a plain checkpoint, new modules as from
        # scratch) zero the decoder's norm; any other init_cfg (a full checkpoint) is left alone
        warm_start = isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'WarmStart'
        if self.zero_init_residual and (isinstance(self.init_cfg, list) or warm_start):
            for module in self.modules():
                if isinstance(module, EDPath):
                    constant_init(module.decoder_norm, 0)

    def make_res_layer(self, **kwargs):
        kwargs.update(block=EDBottleneck, branch_ratio=self.branch_ratio)
        return super().make_res_layer(**kwargs)
