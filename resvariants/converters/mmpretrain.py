"""mmpretrain ResNet-family checkpoints -> resvariants classifier checkpoints.

mmpretrain's ``ResNet``, ``ResNetV1c``, ``ResNetV1d``, ``ResNeXt``, ``SEResNet`` and
``SEResNeXt`` use torchvision names for the plain stem and the blocks, and the same
``se_layer.conv1/conv2.conv`` names as our SE module, so most keys carry over. Two layouts
differ from mmdet's (our trunk's), as ECOSYSTEM.md 1.6 found:

* the deep stem is three ``ConvModule`` s (``stem.0.conv``, ``stem.0.bn``, ...) where mmdet has a
  flat ``Sequential`` (``stem.0`` conv, ``stem.1`` BN, ``stem.3``, ``stem.4``, ``stem.6``,
  ``stem.7``);
* with ``avg_down`` mmpretrain adds the average pool only when the stride is 2, so the
  stride-1 projection of ``layer1.0`` is ``downsample.0/1`` there and ``downsample.1/2`` in mmdet
  (whose stride-1 pool is an identity).

Both are renamed; everything else (``ResNet_CIFAR``, ResNeSt, Res2Net, non-linear heads) is
refused. Backbone-only checkpoints (self-supervised ones) convert to backbone-only files.
"""
import re
from collections import OrderedDict

from .resnet_layout import infer_backbone_cfg, rename_or_fail

_STEM_CONV = {'0': '0', '1': '3', '2': '6'}
_STEM_NORM = {'0': '1', '1': '4', '2': '7'}
_BLOCK = r'^backbone\.(layer\d+\.\d+)\.'
_RULES = [
    (re.compile(r'^backbone\.stem\.([012])\.conv\.weight$'),
     lambda m: f'backbone.stem.{_STEM_CONV[m[1]]}.weight'),
    (re.compile(r'^backbone\.stem\.([012])\.bn\.(\w+)$'),
     lambda m: f'backbone.stem.{_STEM_NORM[m[1]]}.{m[2]}'),
    (re.compile(r'^backbone\.(conv1\.weight|bn1\.\w+)$'), r'\g<0>'),
    (re.compile(_BLOCK + r'(conv[123]|bn[123]|downsample\.\d+)\.(\w+)$'), r'\g<0>'),
    (re.compile(_BLOCK + r'se_layer\.conv[12]\.conv\.(weight|bias)$'), r'\g<0>'),
    (re.compile(r'^head\.fc\.(weight|bias)$'), r'\g<0>'),
]


def _shift_stride1_avg_down(state):
    """``layerX.Y.downsample.0/1`` -> ``.1/.2`` where mmpretrain omitted the stride-1 pool."""
    blocks_with_pool = {m[1] for k in state
                        for m in [re.match(_BLOCK + r'downsample\.2\.', k)] if m}
    if not blocks_with_pool:
        return state
    shifted = OrderedDict()
    for key, value in state.items():
        m = re.match(_BLOCK + r'downsample\.([01])\.(\w+)$', key)
        if m and m[1] not in blocks_with_pool:
            key = f'backbone.{m[1]}.downsample.{int(m[2]) + 1}.{m[3]}'
        shifted[key] = value
    return shifted


def convert_mmpretrain_state_dict(state, backbone_only=False):
    """Map an mmpretrain ResNet-family classifier state dict onto our layout.

    Args:
        state (dict): ``backbone.*`` / ``head.fc.*`` keys of an mmpretrain checkpoint.
        backbone_only (bool): Drop ``head.*`` / ``neck.*`` keys (e.g. a head with another
            number of classes or a non-linear head) instead of converting them.

    Returns:
        tuple: (converted state dict, our backbone config).

    Raises:
        KeyError: listing keys with no counterpart in our trunk (another architecture).
        ArchitectureMismatch: for layouts our trunk cannot build exactly.
    """
    if backbone_only:
        state = OrderedDict((k, v) for k, v in state.items()
                            if not k.startswith(('head.', 'neck.')))
    if not any(k.startswith('backbone.') for k in state):
        state = OrderedDict((f'backbone.{k}' if not k.startswith('head.') else k, v)
                            for k, v in state.items())
    converted = rename_or_fail(_shift_stride1_avg_down(state), _RULES, 'mmpretrain')
    backbone = {k[len('backbone.'):]: v for k, v in converted.items()
                if k.startswith('backbone.')}
    return converted, infer_backbone_cfg(backbone)


def mmpretrain_backbone_cfg(backbone_cfg):
    """The mmpretrain backbone config whose architecture equals our ``backbone_cfg``."""
    with_se = 'attention' in backbone_cfg
    groups = backbone_cfg.get('groups', 1)
    cfg = dict(depth=backbone_cfg['depth'])
    if groups > 1:
        cfg.update(type='SEResNeXt' if with_se else 'ResNeXt', groups=groups,
                   width_per_group=backbone_cfg['base_width'])
    else:
        cfg['type'] = 'SEResNet' if with_se else 'ResNet'
    if with_se:
        cfg['se_ratio'] = backbone_cfg['attention']['ratio']
    for key in ('deep_stem', 'avg_down', 'stem_channels', 'base_channels'):
        if key in backbone_cfg:
            cfg[key] = backbone_cfg[key]
    if 'base_channels' in cfg:
        # our (mmdet's) stem defaults to base_channels wide, mmpretrain's to 64
        cfg.setdefault('stem_channels', cfg['base_channels'])
    return cfg


def build_mmpretrain_model(backbone_cfg, num_classes=None):
    """mmpretrain's own model of that architecture (random init), eval mode."""
    from mmengine.registry import DefaultScope
    from mmpretrain.models import ImageClassifier
    from mmpretrain.registry import MODELS
    backbone = mmpretrain_backbone_cfg(backbone_cfg)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        if not num_classes:
            model = MODELS.build(dict(backbone, out_indices=(3, )))
            model.eval()  # mmpretrain's ResNet.train() returns None, so eval() does too
            return model
        expansion = 4 if backbone_cfg['depth'] >= 50 else 1
        channels = backbone_cfg.get('base_channels', 64) * 8 * expansion
        return ImageClassifier(
            backbone=backbone, neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=num_classes,
                      in_channels=channels)).eval()


def source_model(backbone_cfg, state):
    """mmpretrain's model of that architecture holding ``state`` (strict)."""
    num_classes = state['head.fc.weight'].shape[0] if 'head.fc.weight' in state else None
    model = build_mmpretrain_model(backbone_cfg, num_classes)
    if num_classes is None:
        state = OrderedDict((k[len('backbone.'):] if k.startswith('backbone.') else k, v)
                            for k, v in state.items() if not k.startswith(('head.', 'neck.')))
    model.load_state_dict(state, strict=True)
    return model


__all__ = ['convert_mmpretrain_state_dict', 'mmpretrain_backbone_cfg', 'build_mmpretrain_model',
           'source_model']
