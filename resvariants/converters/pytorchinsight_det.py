"""PytorchInsight detection-fork checkpoints (mmdet v0.6 / 1.x layout) -> mmdet 3.x state dicts.

The fork (docs/architectures.md 1.13) trains Faster / Mask / Cascade R-CNN with FPN on ResNet-50 /
101 backbones, plain, SE or SGE. Its checkpoints are mmdet-v1 detectors; our configs
(``configs/{faster,mask,cascade}_rcnn_[se_|sge_]r{50,101}_fpn.py``) are mmdet 3.x detectors
with ``resvariants.ResNet``. What changes between the two layouts:

* ``backbone.*``: the fork's backbones name their modules as the classification models
  (``layerX.Y.conv1``, ``bn1``, SE ``se.fc.0/2``, SGE ``sge.weight/bias``), so the PytorchInsight
  classification rules map them (SE's Linear weights become 1x1 convs);
* ``neck.*`` (FPN ``lateral_convs.i.conv`` / ``fpn_convs.i.conv``) and ``rpn_head.*``
  (``rpn_conv``, ``rpn_cls`` with one sigmoid logit per anchor, ``rpn_reg``): unchanged;
* the RoI heads move under ``roi_head.`` (mmdet 2.0 introduced ``RoIHead``); Cascade R-CNN's
  per-stage heads ``bbox_head.N`` become ``roi_head.bbox_head.N``;
* classes: v1 heads have C + 1 = 81 outputs with the background **first**; mmdet 2.x / 3.x put it
  **last** in ``fc_cls`` (C + 1 softmax logits) and have **no background slot** in the
  class-specific ``fc_reg`` (4C) or in the mask head's ``conv_logits`` (C). So ``fc_cls`` rows
  [1..C, 0] are kept in that order, ``fc_reg`` rows 4..4C+3 (class-specific; Cascade's
  class-agnostic 4 rows pass unchanged) and ``conv_logits`` channels 1..C.

These are the facts mmdet's own ``upgrade_model_version.py`` applies; this module implements them
on the :func:`~.resnet_layout.rename_or_fail` framework (an unknown key is an error). To *run* a
converted detector as the fork did, the configs under
``projects/public_weights/configs/pytorchinsight_det/`` add v1's anchor generator, box coder and
RoIAlign (``aligned=False``) to ours.
"""
import re

import torch

from .pytorchinsight import _RULES as _CLASSIFICATION_RULES
from .pytorchinsight import pytorchinsight_arch_candidates
from .resnet_layout import rename_or_fail

#: (detector, backbone) pairs of the fork's two-stage configs; backbone = '<variant>r<depth>'
DETECTORS = ('faster_rcnn', 'mask_rcnn', 'cascade_rcnn')
BACKBONES = ('r50', 'se_r50', 'sge_r50', 'r101', 'se_r101', 'sge_r101')
#: where the configs that run a converted detector live (relative to the repository)
CONFIG_DIR = 'projects/public_weights/configs/pytorchinsight_det'


def detector_of(state):
    """``'faster_rcnn'``, ``'mask_rcnn'`` or ``'cascade_rcnn'`` from the head keys of a v1 state.

    Raises:
        ValueError: if the keys are not one of the fork's two-stage detectors.
    """
    missing = [p for p in ('backbone.', 'neck.', 'rpn_head.', 'bbox_head.')
               if not any(k.startswith(p) for k in state)]
    if missing:
        if any(k.startswith('roi_head.') for k in state):
            raise ValueError('the checkpoint has roi_head.* keys: it is an mmdet 2.x / 3.x '
                             'detector already, not an mmdet v1 (PytorchInsight fork) one')
        raise ValueError(f'not a two-stage mmdet v1 detector: no {", ".join(missing)} keys '
                         f'(the fork\'s Faster / Mask / Cascade R-CNN have backbone, neck, '
                         f'rpn_head and bbox_head)')
    if any(re.match(r'^bbox_head\.\d+\.', k) for k in state):
        if any(k.startswith('mask_head.') for k in state):
            raise ValueError('Cascade Mask R-CNN (bbox_head.N and mask_head keys): the fork has '
                             'no such detector and our configs do not build it')
        return 'cascade_rcnn'
    return 'mask_rcnn' if any(k.startswith('mask_head.') for k in state) else 'faster_rcnn'


def backbone_of(state):
    """``'<variant>r<depth>'`` (e.g. ``'sge_r101'``) of a v1 detector's ``backbone.*`` keys.

    A plain layout is the plain ResNet: the fork has no weight-standardised backbone.

    Raises:
        ValueError: if the backbone is none of :data:`BACKBONES`.
    """
    backbone = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    arch = pytorchinsight_arch_candidates(backbone)[0]
    variant, _, depth = arch.rpartition('resnet')
    name = f'{variant}r{depth}'
    if name not in BACKBONES:
        raise ValueError(f'backbone {arch}: the fork trains two-stage detectors only on '
                         f'{", ".join(BACKBONES)} (its CBAM / BAM / GC / SK backbones are '
                         f'RetinaNet-only); not converted')
    return name


def config_name(detector, backbone):
    """The run config of a converted detector, e.g. ``faster_rcnn_sge_r50_fpn_v1``."""
    return f'{detector}_{backbone}_fpn_v1'


def classes_of(state):
    """C, the number of object classes (v1 ``fc_cls`` has C + 1 rows, background first)."""
    key = next((k for k in state if re.match(r'^bbox_head\.(\d+\.)?fc_cls\.weight$', k)), None)
    if key is None:
        raise ValueError('no bbox_head fc_cls weight: cannot read the class count')
    return state[key].shape[0] - 1


def background_last(value):
    """v1 ``fc_cls`` (C + 1 rows, background row 0) -> mmdet 2.x+ (background row C)."""
    return torch.cat([value[1:], value[:1]])


def _drop_background(per_class, classes):
    """Drop the leading background block of ``per_class`` rows from a (C + 1) x per_class-row
    tensor; raise if the rows are not (C + 1) blocks."""
    def transform(value):
        if value.shape[0] != (classes + 1) * per_class:
            raise ValueError(f'{value.shape[0]} rows where (C + 1) x {per_class} = '
                             f'{(classes + 1) * per_class} were expected (C = {classes})')
        return value[per_class:]
    return transform


def _rules(classes, detector):
    head = r'(\d+\.)?' if detector == 'cascade_rcnn' else ''

    def fc_reg(value):  # class-specific: drop the background's 4 rows; agnostic (4): unchanged
        return value if value.shape[0] == 4 else _drop_background(4, classes)(value)
    rules = [
        (re.compile(r'^(neck\.(lateral|fpn)_convs\.\d+\.conv\.(weight|bias))$'), r'\1'),
        (re.compile(r'^(rpn_head\.rpn_(conv|cls|reg)\.(weight|bias))$'), r'\1'),
        (re.compile(rf'^(bbox_head\.{head}shared_fcs\.\d+\.(weight|bias))$'), r'roi_head.\1'),
        (re.compile(rf'^(bbox_head\.{head}fc_cls\.(weight|bias))$'), r'roi_head.\1',
         background_last),
        (re.compile(rf'^(bbox_head\.{head}fc_reg\.(weight|bias))$'), r'roi_head.\1', fc_reg),
    ]
    if detector == 'mask_rcnn':
        rules += [
            (re.compile(r'^(mask_head\.(convs\.\d+\.conv|upsample)\.(weight|bias))$'),
             r'roi_head.\1'),
            (re.compile(r'^(mask_head\.conv_logits\.(weight|bias))$'), r'roi_head.\1',
             _drop_background(1, classes)),
        ]
    return rules


def convert_pytorchinsight_det_state_dict(state):
    """Map a PytorchInsight detection-fork (mmdet v1) state dict onto our mmdet 3.x detector.

    Returns ``(converted state, detector, backbone)``.

    Raises:
        ValueError: the checkpoint is not one of the fork's two-stage detectors.
        KeyError: naming every key without a counterpart.
    """
    detector, backbone = detector_of(state), backbone_of(state)
    trunk = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    converted = rename_or_fail(trunk, _CLASSIFICATION_RULES,
                               'PytorchInsight detection (mmdet v1) backbone')
    stray = [k for k in converted if not k.startswith('backbone.')]
    if stray:
        raise KeyError(f'the backbone holds keys of a classifier head: '
                       f'{", ".join("backbone." + k[len("head."):] for k in stray)}')
    rest = {k: v for k, v in state.items() if not k.startswith('backbone.')}
    converted.update(rename_or_fail(rest, _rules(classes_of(state), detector),
                                    'PytorchInsight detection (mmdet v1)',
                                    target=f'our mmdet 3.x {detector}'))
    return converted, detector, backbone
