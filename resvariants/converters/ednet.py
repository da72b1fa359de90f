"""ED-Net (megvii-research/ED-Net) checkpoints -> mmpretrain ``ImageClassifier`` state dicts.

ED-Net names its layers ``layerK.layerK_block_i.{conv_conv1, bn_bn1, ..., shortcut.shortcut_conv,
shortcut.shortcut_bn, encoder.encoder_conv, encoder.encoder_bn, decoder.decoder_conv,
decoder.decoder_bn}`` (EDSE adds ``fc_reduction`` / ``fc_extention`` Linear layers; keys may carry
DataParallel's ``module.`` prefix). They map onto ``resvariants.EDResNet`` inside an
``ImageClassifier``:

===========================================  ===============================================
ED-Net                                       resvariants (``backbone.`` prefix)
===========================================  ===============================================
``conv1`` / ``bn1``                          ``conv1`` / ``bn1``
``layerK.layerK_block_i.conv_convN``         ``layerK.i.convN``
``layerK.layerK_block_i.bn_bnN``             ``layerK.i.bnN``
``...shortcut.shortcut_conv`` / ``_bn``      ``layerK.i.downsample.0`` / ``downsample.1``
``...encoder.encoder_conv`` / ``_bn``        ``layerK.i.ed_path.encoder_conv`` / ``encoder_norm``
``...decoder.decoder_conv`` / ``_bn``        ``layerK.i.ed_path.decoder_conv`` / ``decoder_norm``
``...fc_reduction`` / ``fc_extention``       ``layerK.i.se_layer.conv1.conv`` / ``conv2.conv``
                                             (Linear weights reshaped to 1x1 convs)
``fc``                                       ``head.fc`` (no ``backbone.`` prefix)
===========================================  ===============================================

An unknown key is an error (nothing is dropped silently).
"""
import re

from resvariants.utils.safe_load import strip_prefix
from .resnet_layout import linear_as_conv1x1, rename_or_fail

#: architectures with a config ``configs/imagenet/<arch>_in1k.py``
ED_ARCHS = ('ed_resnet50', 'ed_resnet101', 'ed_resnet152', 'ed_resnext50', 'ed_resnext101',
            'ed_se_resnet50')

_BLOCK = r'layer(\d)\.layer\1_block_(\d+)\.'
_OURS = r'backbone.layer\1.\2.'
_RULES = [
    (re.compile(r'^fc\.(weight|bias)$'), r'head.fc.\1'),
    (re.compile(r'^(conv1\.weight|bn1\.\w+)$'), r'backbone.\1'),
    (re.compile(_BLOCK + r'conv_conv([123])\.(weight)$'), _OURS + r'conv\3.\4'),
    (re.compile(_BLOCK + r'bn_bn([123])\.(\w+)$'), _OURS + r'bn\3.\4'),
    (re.compile(_BLOCK + r'shortcut\.shortcut_conv\.(weight)$'), _OURS + r'downsample.0.\3'),
    (re.compile(_BLOCK + r'shortcut\.shortcut_bn\.(\w+)$'), _OURS + r'downsample.1.\3'),
    (re.compile(_BLOCK + r'encoder\.encoder_conv\.(weight)$'), _OURS + r'ed_path.encoder_conv.\3'),
    (re.compile(_BLOCK + r'encoder\.encoder_bn\.(\w+)$'), _OURS + r'ed_path.encoder_norm.\3'),
    (re.compile(_BLOCK + r'decoder\.decoder_conv\.(weight)$'), _OURS + r'ed_path.decoder_conv.\3'),
    (re.compile(_BLOCK + r'decoder\.decoder_bn\.(\w+)$'), _OURS + r'ed_path.decoder_norm.\3'),
    (re.compile(_BLOCK + r'fc_reduction\.(weight|bias)$'), _OURS + r'se_layer.conv1.conv.\3',
     linear_as_conv1x1),
    (re.compile(_BLOCK + r'fc_extention\.(weight|bias)$'), _OURS + r'se_layer.conv2.conv.\3',
     linear_as_conv1x1),
]
_DEPTHS = {(4, 6): 50, (4, 23): 101, (8, 36): 152}


def _blocks_per_stage(keys):
    counts = {}
    for key in keys:
        match = re.match(_BLOCK, key)
        if match:
            counts.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    return {stage: len(blocks) for stage, blocks in counts.items()}


def infer_ednet_arch(state):
    """Name the ED-Net architecture of a state dict, e.g. ``'ed_resnet50'``.

    Returns:
        tuple[str, float]: the architecture and the residual-branch width ratio of the first
        block (1.0 for the released models; smaller for a reduced-width -A / -B model).
    """
    state = strip_prefix(state)
    blocks = _blocks_per_stage(state)
    depth = _DEPTHS.get((blocks.get(2), blocks.get(3)))
    if depth is None or blocks.get(1) != 3 or blocks.get(4) != 3:
        raise ValueError(f'not an ED-Net ResNet/ResNeXt-50/101/152 state dict: blocks per stage '
                         f'{dict(sorted(blocks.items()))} (expected 3-4-6-3, 3-4-23-3 or '
                         f'3-8-36-3 in layerK.layerK_block_i keys)')
    try:
        conv2 = state['layer1.layer1_block_0.conv_conv2.weight']
        hidden = state['layer1.layer1_block_0.encoder.encoder_conv.weight'].shape[0]
        out_channels = state['layer1.layer1_block_0.conv_conv3.weight'].shape[0]
    except KeyError as exc:
        raise ValueError(f'not an ED-Net state dict: {exc.args[0]} is missing') from None
    groups = conv2.shape[0] // conv2.shape[1]
    # ResNet: encoder width = out / 4; ResNeXt: the full grouped width = out / 2
    resnext = groups > 1 or hidden * 2 == out_channels
    se = any('.fc_reduction.' in k for k in state)
    arch = f'ed_{"se_" if se else ""}{"resnext" if resnext else "resnet"}{depth}'
    return arch, conv2.shape[0] / hidden


def convert_ednet_state_dict(state_dict):
    """Map an ED-Net state dict to an mmpretrain ImageClassifier state dict.

    BatchNorm ``num_batches_tracked`` counters missing from old checkpoints are added as zeros.

    Raises:
        KeyError: listing every key that has no mapping.
    """
    return rename_or_fail(strip_prefix(state_dict), _RULES, 'ED-Net')
