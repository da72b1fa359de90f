"""PytorchInsight classification checkpoints -> mmpretrain ``ImageClassifier`` state dicts.

PytorchInsight releases ``*.pth.tar`` files ``{epoch, state_dict, best_acc, optimizer}`` whose
keys carry a ``module.`` prefix (DataParallel) and follow torchvision's naming. The trunk keys
map 1:1 onto our ``resvariants.ResNet`` (mmdet naming is torchvision's); the classifier ``fc``
becomes ``head.fc``; attention modules are renamed (and SE's Linear weights reshaped to 1x1
convs) as below. Nothing is dropped silently: an unknown key is an error.

SRM was never implemented in PytorchInsight; its checkpoints come from the official SRM code,
whose blocks hold the module as ``rclb`` (``layerX.Y.rclb.cfc``, ``rclb.bn.*``).

The architecture is read from the keys where they decide it. They cannot tell a plain ResNet
(ResNeXt) from the weight-standardised one of ``resnet_ws.py`` (same names, same shapes; the
standardisation happens in the forward pass). For that layout :func:`infer_pytorchinsight_arch`
asks the BatchNorm statistics (:mod:`.ws_evidence`: were they produced by the raw or by the
standardised weights?) and refuses, naming the ``--arch`` choices, when they do not decide it.

The ShuffleNetV2 release has its own layout and rules (:mod:`.pytorchinsight_shufflenet`);
:func:`convert_pytorchinsight_state_dict` dispatches on the keys.
"""
import re

from resvariants.utils.safe_load import strip_prefix
from .pytorchinsight_shufflenet import (SHUFFLENET_ARCHS, convert_shufflenet_state_dict,
                                        infer_shufflenet_arch, is_shufflenet_layout)
from .resnet_layout import linear_as_conv1x1, rename_or_fail
from .ws_evidence import weight_standardisation_evidence

#: the ResNet variants at depth 50 and 101, each with a config ``configs/imagenet/<arch>_in1k.py``;
#: ``ws_`` = resnet_ws.py
PI_ARCHS = tuple(f'{v}resnet{d}' for v in ('', 'ws_', 'se_', 'sk_', 'cbam_', 'bam_', 'gc_',
                                           'sge_', 'srm_') for d in (50, 101))
#: the other releases: the WS nets trained with the e-shifted L2 (``*_eshift``: the same networks
#: as ``ws_resnet<d>``, the configs of that recipe), the ResNeXt-32x4d layout (plain or WS) and
#: ShuffleNetV2 1x; each name is a config ``configs/imagenet/<name>_in1k.py``
PI_OTHER_ARCHS = ('ws_resnet50_eshift', 'ws_resnet101_eshift', 'resnext50_32x4d',
                  'resnext101_32x4d', 'ws_resnext50_32x4d_eshift', 'ws_resnext101_32x4d_eshift',
                  *SHUFFLENET_ARCHS.values())
#: a name whose network is another name's (same keys, same forward pass)
SAME_NETWORK = {'ws_resnet50_eshift': 'ws_resnet50', 'ws_resnet101_eshift': 'ws_resnet101'}

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
_ALL = PI_ARCHS + PI_OTHER_ARCHS


def pytorchinsight_arch_candidates(state):
    """Every architecture of :data:`PI_ARCHS` / :data:`PI_OTHER_ARCHS` whose network has exactly
    the keys and shapes of ``state`` (``*_eshift`` aliases excepted: see :data:`SAME_NETWORK`).

    The key names and shapes identify the depth, the grouped 3x3 of ResNeXt-32x4d and the
    attention variant, but not whether the convolutions are weight-standardised:
    ``ws_resnet50`` re-parameterises its conv weights in the forward pass and stores them raw,
    under the same names and shapes as ``resnet50``. A plain-ResNet layout therefore has two
    candidates, ``resnet<d>`` and ``ws_resnet<d>`` (ResNeXt: ``resnext<d>_32x4d`` and
    ``ws_resnext<d>_32x4d_eshift``); :func:`infer_pytorchinsight_arch` decides between them.

    Raises:
        ValueError: if the layout is none of these (the message says why).
    """
    state = strip_prefix(state)
    if is_shufflenet_layout(state):
        return (infer_shufflenet_arch(state), )
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
                         'convertible bottleneck architectures ' + ', '.join(_ALL))
    found = [prefix for prefix, marks in _VARIANT_MARKS
             if any(mark in k for k in state for mark in marks)]
    if len(found) > 1:
        raise ValueError(f'ambiguous checkpoint: keys of several variants {found}')
    conv2 = state.get('layer1.0.conv2.weight')
    if conv2 is not None and conv2.dim() == 4 and conv2.shape[0] != conv2.shape[1]:
        if tuple(conv2.shape) != (128, 4, 3, 3) or found:
            raise ValueError(f'layer1.0.conv2 has shape {tuple(conv2.shape)}: a grouped 3x3 '
                             f'other than the (128, 4, 3, 3) of ResNeXt-32x4d'
                             + (f' with {found[0][:-1].upper()} attention' if found else '')
                             + ', not one of the convertible architectures ' + ', '.join(_ALL))
        return (f'resnext{depth}_32x4d', f'ws_resnext{depth}_32x4d_eshift')
    if found:
        return (f'{found[0]}resnet{depth}', )
    return (f'resnet{depth}', f'ws_resnet{depth}')


def _undecided_message(candidates, evidence):
    return (f'cannot infer the architecture: the checkpoint fits {" and ".join(candidates)} '
            f'alike (weight standardisation leaves no trace in the keys or shapes, and the '
            f'BatchNorm statistics do not decide it: {evidence.summary()}); name it with '
            + ' or '.join(f'--arch {c}' for c in candidates))


def infer_pytorchinsight_arch(state, evidence=None):
    """The architecture name (e.g. ``'sge_resnet50'``) of a PytorchInsight state dict.

    A plain-ResNet (ResNeXt) layout is the plain or the weight-standardised network as the
    BatchNorm statistics decide (``evidence``: a precomputed
    :func:`~resvariants.converters.ws_evidence.weight_standardisation_evidence`).

    Raises:
        ValueError: if the layout fits no architecture, or two that the statistics do not
            decide between: the message names the candidates, the evidence and the ``--arch``
            flag that chooses.
    """
    candidates = pytorchinsight_arch_candidates(state)
    if len(candidates) == 1:
        return candidates[0]
    if evidence is None:
        evidence = weight_standardisation_evidence(strip_prefix(state))
    if evidence.verdict is None:
        raise ValueError(_undecided_message(candidates, evidence))
    return candidates[1] if evidence.verdict == 'ws' else candidates[0]


def check_pytorchinsight_arch(state, arch, evidence=None, ignore_evidence=False):
    """Check a user-named architecture against the checkpoint; returns the evidence used.

    Raises:
        ValueError: ``arch`` is unknown, its keys are not the checkpoint's, or (unless
            ``ignore_evidence``) the BatchNorm statistics decisively say the other of plain /
            weight-standardised.
    """
    if arch not in _ALL:
        raise ValueError(f'unknown arch {arch!r}; valid: {", ".join(_ALL)}')
    candidates = pytorchinsight_arch_candidates(state)
    if SAME_NETWORK.get(arch, arch) not in candidates:
        raise ValueError(f'--arch {arch} does not match the checkpoint, which is '
                         f'{" or ".join(candidates)}')
    if len(candidates) == 1 or ignore_evidence:
        return evidence
    if evidence is None:
        evidence = weight_standardisation_evidence(strip_prefix(state))
    wants_ws = SAME_NETWORK.get(arch, arch).startswith('ws_')
    if evidence.verdict is not None and (evidence.verdict == 'ws') != wants_ws:
        other = candidates[1] if evidence.verdict == 'ws' else candidates[0]
        raise ValueError(f'--arch {arch} contradicts the BatchNorm statistics, which were '
                         f'produced by the {"standardised" if evidence.verdict == "ws" else "raw"}'
                         f' conv weights ({evidence.summary()}): the checkpoint is {other}; '
                         f'pass --ignore-bn-evidence to convert it as {arch} anyway')
    return evidence


def convert_pytorchinsight_state_dict(state):
    """Map a PytorchInsight state dict (a ResNet variant or ShuffleNetV2) to an mmpretrain
    ImageClassifier state dict.

    Raises:
        KeyError: listing every key that has no mapping.
    """
    if is_shufflenet_layout(state):
        return convert_shufflenet_state_dict(state)
    return rename_or_fail(strip_prefix(state), _RULES, 'PytorchInsight')
