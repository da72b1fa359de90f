"""PytorchInsight's ShuffleNetV2 release -> mmpretrain ``ShuffleNetV2`` classifier state dicts.

``shufflenetv2.py`` (docs/architectures.md 1.11) is the standard ShuffleNetV2 and the same network
as mmpretrain's ``ShuffleNetV2(widen_factor=1.0)`` (``configs/imagenet/shufflenetv2_1x_in1k.py``);
only the module names differ:

==================================  =========================================
PytorchInsight                      mmpretrain
==================================  =========================================
``conv1.0`` / ``conv1.1``           ``backbone.conv1.conv`` / ``.bn``
``features.N`` (N = 0..15)          ``backbone.layers.S.B`` (stages of 4, 8, 4 units)
``banch1.{0,1,2,3}`` (sic)          ``branch1.{0.conv,0.bn,1.conv,1.bn}``
``banch2.{0,1,3,4,5,6}``            ``branch2.{0.conv,0.bn,1.conv,1.bn,2.conv,2.bn}``
``conv_last.0`` / ``conv_last.1``   ``backbone.layers.3.conv`` / ``.bn``
``classifier.0``                    ``head.fc``
==================================  =========================================

(``banch2.2`` and ``banch2.7`` are ReLUs, without tensors.) Both split a stride-1 unit's input into
halves (first half identity), concatenate [identity or branch1, branch2] and shuffle two groups the
same way, so the tensors move unchanged. The source pools with ``AvgPool2d(input / 32)``, which is
the global average pool of mmpretrain's neck on the inputs it was written for.
"""
import re

from resvariants.utils.safe_load import strip_prefix
from .resnet_layout import rename_or_fail

#: PytorchInsight ShuffleNetV2 width -> the architecture name of our config, for the widths that
#: have one (the 0.5x of shufflenetv2.py was never released and has no config here)
SHUFFLENET_ARCHS = {116: 'shufflenetv2_1x'}
#: units per stage (4, 8, 4): the flat ``features.N`` index -> (stage, unit)
STAGE_UNITS = (4, 8, 4)
_SOURCE_WIDTHS = {48: '0.5x', 116: '1x', 176: '1.5x', 224: '2x'}


def _unit(index):
    for stage, units in enumerate(STAGE_UNITS):
        if index < units:
            return stage, index
        index -= units
    raise KeyError(f'features.{index + sum(STAGE_UNITS)}: ShuffleNetV2 has '
                   f'{sum(STAGE_UNITS)} units (features.0-{sum(STAGE_UNITS) - 1})')


_BRANCH = {('banch1', '0'): 'branch1.0.conv', ('banch1', '1'): 'branch1.0.bn',
           ('banch1', '2'): 'branch1.1.conv', ('banch1', '3'): 'branch1.1.bn',
           ('banch2', '0'): 'branch2.0.conv', ('banch2', '1'): 'branch2.0.bn',
           ('banch2', '3'): 'branch2.1.conv', ('banch2', '4'): 'branch2.1.bn',
           ('banch2', '5'): 'branch2.2.conv', ('banch2', '6'): 'branch2.2.bn'}


def _feature_key(match):
    stage, unit = _unit(int(match[1]))
    return f'backbone.layers.{stage}.{unit}.{_BRANCH[match[2], match[3]]}.{match[4]}'


_RULES = [
    (re.compile(r'^conv1\.0\.weight$'), 'backbone.conv1.conv.weight'),
    (re.compile(r'^conv1\.1\.(\w+)$'), r'backbone.conv1.bn.\1'),
    (re.compile(r'^features\.(\d+)\.(banch1)\.([0-3])\.(\w+)$'), _feature_key),
    (re.compile(r'^features\.(\d+)\.(banch2)\.([013456])\.(\w+)$'), _feature_key),
    (re.compile(r'^conv_last\.0\.weight$'), 'backbone.layers.3.conv.weight'),
    (re.compile(r'^conv_last\.1\.(\w+)$'), r'backbone.layers.3.bn.\1'),
    (re.compile(r'^classifier\.0\.(weight|bias)$'), r'head.fc.\1'),
]


def is_shufflenet_layout(state):
    """Whether ``state`` has the key layout of PytorchInsight's ``shufflenetv2.py``."""
    return any(re.match(r'^(module\.)?features\.\d+\.banch[12]\.', k) for k in state)


def infer_shufflenet_arch(state):
    """The architecture name (``'shufflenetv2_1x'``) of a PytorchInsight ShuffleNetV2 state dict.

    Raises:
        ValueError: for another width (0.5x, 1.5x, 2x: no config here) or a unit count other
            than 4 + 8 + 4.
    """
    state = strip_prefix(state)
    units = sorted({int(m[1]) for k in state for m in [re.match(r'^features\.(\d+)\.', k)] if m})
    if units != list(range(sum(STAGE_UNITS))):
        raise ValueError(f'not a ShuffleNetV2 of PytorchInsight: units features.{units[:1]}..'
                         f'{units[-1:]} ({len(units)}), the network has {sum(STAGE_UNITS)} '
                         f'(stages of {STAGE_UNITS})')
    # the first unit's branch2 ends in half the stage-1 width
    width = 2 * state['features.0.banch2.5.weight'].shape[0]
    if width not in SHUFFLENET_ARCHS:
        size = _SOURCE_WIDTHS.get(width, f'stage-1 width {width}')
        raise ValueError(f'ShuffleNetV2 {size} (stage-1 width {width}): only the 1x (width 116, '
                         f'configs/imagenet/shufflenetv2_1x_in1k.py) is convertible')
    return SHUFFLENET_ARCHS[width]


def convert_shufflenet_state_dict(state):
    """Map a PytorchInsight ShuffleNetV2 state dict onto mmpretrain's ``ShuffleNetV2`` classifier.

    Raises:
        KeyError: naming every key that has no counterpart.
    """
    return rename_or_fail(strip_prefix(state), _RULES, 'PytorchInsight ShuffleNetV2',
                          target='mmpretrain ShuffleNetV2')
