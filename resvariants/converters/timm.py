"""timm ResNet-family checkpoints -> resvariants classifier checkpoints.

Supported timm architectures, all mapped exactly onto ``resvariants.ResNet``:

* ``resnet{18,34,50,101,152}`` and ``resnext{50,101,152}_{G}x{W}d`` (torchvision stem);
* their ``c`` (deep 3x3 stem 3->32->32->64), ``s`` (deep stem 3->64->64->128) and ``d``
  (deep stem + 2x2 average pool before the 1x1 projection) variants, which are mmdet's
  ``deep_stem`` / ``stem_channels`` / ``avg_down`` options of our trunk;
* the ``se`` prefixed versions (``seresnet50``, ``seresnext101d_32x8d``, ...): timm's
  ``SEModule`` (squeeze ``C/16`` rounded to a multiple of 8, 1x1 convs with bias) is our
  ``SEModule`` (``se_layer.conv1/conv2``) with ``divisor=8`` (for depth >= 50 the rounding
  changes nothing, so ``configs/imagenet/se_resnet*`` fit unchanged).

Refused with a reason: tiered stems (``t``), anti-aliased downsampling (``aa``, ``blur``),
ResNet-RS, GroupNorm, ECA/GC/SK/CBAM attention, wide ResNets and depths our trunk does not have
(26, 200, ...). timm checkpoints do not record their architecture and anti-aliased variants have
the same keys as plain ones, so the timm model name (``--arch resnet50.a1_in1k``, or the
``config.json`` of a Hugging Face download) is required.
"""
import json
import os.path as osp
import re

from .resnet_layout import ArchitectureMismatch, infer_backbone_cfg, rename_or_fail

_NAME = re.compile(r'^(?P<se>se)?res(?P<kind>net|next)(?P<depth>\d+)(?P<variant>[cds]?)'
                   r'(?:_(?P<groups>\d+)x(?P<width>\d+)d)?$')
_UNSUPPORTED_HINTS = [
    ('aa', 'anti-aliased downsampling (an average pool after the strided 3x3)'),
    ('blur', 'blur-pool anti-aliasing'),
    ('rs', 'ResNet-RS (SE with different widths, deep stem variant, no max-pool)'),
    ('gn', 'GroupNorm instead of BatchNorm'),
    ('eca', 'ECA attention'), ('gc', 'global-context attention of timm'),
    ('sk', 'timm\'s SKNet (split-input selective kernel), not PytorchInsight\'s SK*'),
    ('wide', 'wide ResNet bottlenecks'), ('ts', 'timm "ts" ByobNet-style ResNets'),
    ('clip', 'CLIP ResNets (attention pooling, anti-aliased stem)'),
]
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def parse_timm_arch(name):
    """Expected backbone arguments of a timm model name (the ``.tag`` part is ignored).

    Returns a dict with ``depth``, ``groups``, ``base_width``, ``deep_stem``,
    ``stem_channels``, ``avg_down`` and ``se`` (bool).

    Raises:
        ArchitectureMismatch: for names outside the supported grammar, with the reason.
    """
    arch = name.split('.', 1)[0]
    match = _NAME.match(arch)
    if match is None or (match['kind'] == 'next') != (match['groups'] is not None):
        reasons = [why for token, why in _UNSUPPORTED_HINTS if token in arch]
        if re.search(r'resne(t|xt)\d+t', arch):
            reasons.append('a tiered deep stem (3->24->32->64), which our trunk does not build')
        raise ArchitectureMismatch(
            f'timm arch {arch!r} has no exact counterpart in resvariants.ResNet'
            + (f': {"; ".join(reasons)}' if reasons else '')
            + '. Supported: (se)resnet{depth}[c|d|s] and (se)resnext{depth}[c|d|s]_{G}x{W}d, '
              'depth 18/34/50/101/152')
    variant = match['variant']
    return dict(depth=int(match['depth']),
                groups=int(match['groups'] or 1),
                base_width=int(match['width']) if match['groups'] else None,
                deep_stem=bool(variant),
                stem_channels=128 if variant == 's' else 64,
                avg_down=variant == 'd',
                se=bool(match['se']))


def read_hf_architecture(checkpoint_path):
    """The timm architecture recorded in ``config.json`` beside a Hugging Face download."""
    config = osp.join(osp.dirname(osp.abspath(checkpoint_path)), 'config.json')
    if not osp.isfile(config):
        return None
    with open(config) as f:
        data = json.load(f)
    return data.get('architecture')


def _rules(deep_stem):
    stem = [(re.compile(r'^conv1\.([0134]|6)\.(\w+)$'), r'backbone.stem.\1.\2'),
            (re.compile(r'^bn1\.(\w+)$'), r'backbone.stem.7.\1')] if deep_stem else [
            (re.compile(r'^conv1\.weight$'), r'backbone.conv1.weight'),
            (re.compile(r'^bn1\.(\w+)$'), r'backbone.bn1.\1')]
    block = r'^(layer\d+\.\d+)\.'
    return stem + [
        (re.compile(r'^fc\.(weight|bias)$'), r'head.fc.\1'),
        (re.compile(block + r'(conv[123]|bn[123])\.(\w+)$'), r'backbone.\1.\2.\3'),
        (re.compile(block + r'downsample\.(\d+)\.(\w+)$'), r'backbone.\1.downsample.\2.\3'),
        (re.compile(block + r'se\.fc1\.(weight|bias)$'), r'backbone.\1.se_layer.conv1.conv.\2'),
        (re.compile(block + r'se\.fc2\.(weight|bias)$'), r'backbone.\1.se_layer.conv2.conv.\2'),
    ]


def _backbone_signature(backbone_cfg):
    """The parts of our backbone config that a timm name determines."""
    return dict(depth=backbone_cfg['depth'], groups=backbone_cfg.get('groups', 1),
                base_width=backbone_cfg.get('base_width') if backbone_cfg.get('groups') else None,
                deep_stem=backbone_cfg.get('deep_stem', False),
                stem_channels=backbone_cfg.get('stem_channels',
                                               backbone_cfg.get('base_channels', 64)),
                avg_down=backbone_cfg.get('avg_down', False),
                se='attention' in backbone_cfg)


def convert_timm_state_dict(state, arch):
    """Map a timm ResNet-family state dict onto our classifier layout.

    Args:
        state (dict): The timm state dict (``module.`` already stripped).
        arch (str): The timm model name, e.g. ``'seresnext50_32x4d'`` or
            ``'resnet50.a1_in1k'``.

    Returns:
        tuple: (converted state dict, our backbone config).

    Raises:
        ArchitectureMismatch: when the arch is unsupported or the keys describe another one.
        KeyError: listing keys that have no counterpart in our trunk.
    """
    expected = parse_timm_arch(arch)
    converted = rename_or_fail(state, _rules('conv1.0.weight' in state), f'timm {arch}')
    backbone = {k[len('backbone.'):]: v for k, v in converted.items()
                if k.startswith('backbone.')}
    backbone_cfg = infer_backbone_cfg(backbone)
    found = _backbone_signature(backbone_cfg)
    if found != expected:
        diff = {k: (expected[k], found[k]) for k in expected if expected[k] != found[k]}
        raise ArchitectureMismatch(f'the checkpoint is not a timm {arch}: (name, weights) '
                                   f'differ in {diff}')
    return converted, backbone_cfg


def source_preprocessing(arch):
    """timm's recorded mean/std/input size of a pretrained tag (None if unknown)."""
    try:
        from timm.models import get_pretrained_cfg
    except ImportError:
        return None
    cfg = get_pretrained_cfg(arch) if '.' in arch else None
    if cfg is None:
        return None
    return dict(mean=list(cfg.mean), std=list(cfg.std), input_size=list(cfg.input_size),
                test_input_size=list(cfg.test_input_size or cfg.input_size),
                crop_pct=cfg.crop_pct, interpolation=cfg.interpolation)


def source_model(arch, state):
    """The timm model ``arch`` (random init, no download) holding ``state`` (strict)."""
    import timm
    num_classes = state['fc.weight'].shape[0] if 'fc.weight' in state else 0
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes)
    model.load_state_dict(state, strict=True)
    return model.eval()


__all__ = ['convert_timm_state_dict', 'parse_timm_arch', 'read_hf_architecture',
           'source_preprocessing', 'source_model', 'IMAGENET_MEAN', 'IMAGENET_STD']
