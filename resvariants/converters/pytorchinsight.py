"""PytorchInsight classification checkpoints -> mmpretrain ``ImageClassifier`` state dicts.

PytorchInsight releases ``*.pth.tar`` files ``{epoch, state_dict, best_acc, optimizer}`` whose
keys carry a ``module.`` prefix (DataParallel) and follow torchvision's naming. The trunk keys
map 1:1 onto our ``resvariants.ResNet`` (mmdet naming is torchvision's); the classifier ``fc``
becomes ``head.fc``; attention modules are renamed (and SE's Linear weights reshaped to 1x1
convs) as below. Nothing is dropped silently: an unknown key is an error.

SRM was never implemented in PytorchInsight; its checkpoints come from the official SRM code,
whose blocks hold the module as ``rclb`` (``layerX.Y.rclb.cfc``, ``rclb.bn.*``).

The architecture is read from the keys where they decide it. They cannot tell a plain ResNet from
the weight-standardised one of ``resnet_ws.py`` (same names, same shapes; the standardisation
happens in the forward pass), so for that layout :func:`infer_pytorchinsight_arch` refuses and the
caller has to name the architecture (``--arch resnet50`` or ``--arch ws_resnet50``).
"""
import re

from resvariants.utils.safe_load import strip_prefix
from .resnet_layout import linear_as_conv1x1, rename_or_fail

#: architectures with a config ``configs/imagenet/<arch>_in1k.py``; ``ws_`` = resnet_ws.py
PI_ARCHS = tuple(f'{v}resnet{d}' for v in ('', 'ws_', 'se_', 'sk_', 'cbam_', 'bam_', 'gc_',
                                           'sge_', 'srm_') for d in (50, 101))

_BLOCK = r'(layer\d+\.\d+)\.'
_RULES = [
    (re.compile(r'^fc\.(weight|bias)$'), r'head.fc.\1'),
    # SE: Linear -> 1x1 conv of mmpretrain's SELayer layout
    (re.compile(_BLOCK + r'se\.fc\.0\.(weight|bias)$'), r'backbone.\1.se_layer.conv1.conv.\2',
     linear_as_conv1x1),
    (re.compile(_BLOCK + r'se\.fc\.2\.(weight|bias)$'), r'backbone.\1.se_layer.conv2.conv.\2',
     linear_as_conv1x1),
    # SK*: the fusion convs move into the block's ``sk`` module
    (re.compile(_BLOCK + r'(conv_fc1|bn_fc1|conv_fc2)\.(.+)$'), r'backbone.\1.sk.\2.\3'),
    # SRM: the official code (style-based-recalibration-module) names the module ``rclb``
    (re.compile(_BLOCK + r'rclb\.(cfc|bn\.\w+)$'), r'backbone.\1.srm.\2'),
    # GC: same sub-keys as mmcv's ContextBlock
    (re.compile(_BLOCK + r'gc\.(.+)$'), r'backbone.\1.context_block.\2'),
    # the trunk (torchvision names), SK's second branch, SGE, SRM in our own layout
    (re.compile(r'^(conv1\.weight|bn1\.\w+|' + _BLOCK +
                r'(conv[123]|bn[123]|conv2g|bn2g|downsample\.[01])\.\w+|'
                + _BLOCK + r'(sge\.(weight|bias)|srm\.(cfc|bn\.\w+)))$'), r'backbone.\g<0>'),
]
#: CBAM (in each block) and BAM (after stages 1-3, ``bamN``): source module -> ours
_RENAMES = {
    _BLOCK + r'cbam\.': {'ChannelGate.mlp.1': 'cbam.channel_fc1', 'ChannelGate.mlp.3':
                          'cbam.channel_fc2', 'SpatialGate.spatial.conv': 'cbam.spatial_conv',
                          'SpatialGate.spatial.bn': 'cbam.spatial_bn'},
    r'(bam\d)\.': {'channel_att.gate_c.gate_c_fc_0': 'channel_fc1',
                   'channel_att.gate_c.gate_c_bn_1': 'channel_bn',
                   'channel_att.gate_c.gate_c_fc_final': 'channel_fc2',
                   'spatial_att.gate_s.gate_s_conv_reduce0': 'spatial_reduce',
                   'spatial_att.gate_s.gate_s_bn_reduce0': 'spatial_reduce_bn',
                   'spatial_att.gate_s.gate_s_conv_final': 'spatial_final'},
}
_RULES[1:1] = [(re.compile(owner + re.escape(theirs) + r'\.(.+)$'), rf'backbone.\1.{ours}.\2')
               for owner, names in _RENAMES.items() for theirs, ours in names.items()] + [
    (re.compile(r'(bam\d)\.spatial_att\.gate_s\.gate_s_(conv|bn)_di_(\d+)\.(.+)$'),
     lambda m: f'backbone.{m[1]}.spatial_dilated{"_bn" if m[2] == "bn" else ""}.{m[3]}.{m[4]}')]


#: the key that marks each attention variant (``rclb.cfc``: the official SRM code's layout)
_VARIANT_MARKS = (('se_', ('.se.fc.', )), ('sk_', ('.conv2g.', )), ('cbam_', ('.cbam.', )),
                  ('bam_', ('bam1.', )), ('gc_', ('.gc.', )), ('sge_', ('.sge.', )),
                  ('srm_', ('.srm.cfc', '.rclb.cfc')))
_DEPTHS = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101}
_BLOCK_KEY = re.compile(r'^layer([1-4])\.(\d+)\.')


def pytorchinsight_arch_candidates(state):
    """Every architecture of :data:`PI_ARCHS` whose state dict looks exactly like ``state``.

    The key names and shapes identify the depth and the attention variant, but not whether the
    convolutions are weight-standardised: ``ws_resnet50`` re-parameterises its conv weights in
    the forward pass and stores them raw, under the same names and shapes as ``resnet50``.
    Their values do not settle it reliably either: the scale of a conv followed by BatchNorm is
    free in both networks, and a WS net's raw per-filter means are whatever its init and weight
    decay left. A plain-ResNet layout therefore has two candidates, ``resnet<d>`` and
    ``ws_resnet<d>``, and only the user can say which.

    Raises:
        ValueError: if the layout is none of :data:`PI_ARCHS` (the message says why).
    """
    state = strip_prefix(state)
    blocks = {}
    for key in state:
        match = _BLOCK_KEY.match(key)
        if match:
            blocks.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    counts = tuple(len(blocks.get(stage, ())) for stage in (1, 2, 3, 4))
    depth = _DEPTHS.get(counts)
    if depth is None:
        raise ValueError(f'not a PytorchInsight ResNet-50/101 state dict: blocks per stage '
                         f'{counts} (ResNet-50 has (3, 4, 6, 3), ResNet-101 (3, 4, 23, 3))')
    if 'layer1.0.conv3.weight' not in state:
        raise ValueError('layer1.0 has no conv3: a BasicBlock ResNet (18/34), not one of the '
                         'convertible bottleneck architectures ' + ', '.join(PI_ARCHS))
    conv2 = state.get('layer1.0.conv2.weight')
    if conv2 is not None and conv2.dim() == 4 and conv2.shape[0] != conv2.shape[1]:
        raise ValueError(f'layer1.0.conv2 has shape {tuple(conv2.shape)}: a grouped (ResNeXt) '
                         f'3x3, not one of the convertible architectures ' + ', '.join(PI_ARCHS))
    found = [prefix for prefix, marks in _VARIANT_MARKS
             if any(mark in k for k in state for mark in marks)]
    if len(found) > 1:
        raise ValueError(f'ambiguous checkpoint: keys of several variants {found}')
    if found:
        return (f'{found[0]}resnet{depth}', )
    return (f'resnet{depth}', f'ws_resnet{depth}')


def infer_pytorchinsight_arch(state):
    """The architecture name (e.g. ``'sge_resnet50'``) of a PytorchInsight state dict.

    Raises:
        ValueError: if the layout fits no architecture, or several (a plain-ResNet layout is
            ``resnet<d>`` or the weight-standardised ``ws_resnet<d>``): the message names the
            candidates and the ``--arch`` flag that chooses between them.
    """
    candidates = pytorchinsight_arch_candidates(state)
    if len(candidates) > 1:
        raise ValueError(
            f'cannot infer the architecture: the checkpoint fits {" and ".join(candidates)} '
            f'alike (weight standardisation leaves no trace in the keys or shapes, and the raw '
            f'weights do not reliably reveal it); name it with '
            + ' or '.join(f'--arch {c}' for c in candidates))
    return candidates[0]


def convert_pytorchinsight_state_dict(state):
    """Map a PytorchInsight state dict to an mmpretrain ImageClassifier state dict.

    Raises:
        KeyError: listing every key that has no mapping.
    """
    return rename_or_fail(strip_prefix(state), _RULES, 'PytorchInsight')
