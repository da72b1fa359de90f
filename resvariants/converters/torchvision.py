"""torchvision ResNet / ResNeXt checkpoints -> resvariants classifier checkpoints.

torchvision's ``ResNet`` (v1.5: stride on the 3x3 conv) names its modules exactly as our trunk
does (``conv1``, ``bn1``, ``layerX.Y.conv1/bn1/...``, ``layerX.0.downsample.0/1``), so the
conversion is a prefix (``backbone.``) and the classifier rename ``fc`` -> ``head.fc``. Supported:
resnet18/34/50/101/152, resnext50_32x4d, resnext101_32x8d, resnext101_64x4d. The wide ResNets
(bottleneck width 2x the planes with one group) are refused: our trunk does not build them.
"""
import re

from .resnet_layout import TRUNK_KEY, ArchitectureMismatch, infer_backbone_cfg, rename_or_fail

#: torchvision model names this converter maps exactly
TORCHVISION_ARCHS = ('resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152',
                     'resnext50_32x4d', 'resnext101_32x8d', 'resnext101_64x4d')
_RULES = [(re.compile(r'^fc\.(weight|bias)$'), r'head.fc.\1'),
          (TRUNK_KEY, r'backbone.\g<0>')]


def convert_torchvision_state_dict(state):
    """Map a torchvision ResNet/ResNeXt state dict onto our classifier layout.

    Raises:
        KeyError: listing the keys that are not part of a torchvision ResNet.
        ArchitectureMismatch: for layouts our trunk cannot build (e.g. wide ResNets).
    """
    converted = rename_or_fail(state, _RULES, 'torchvision')
    if 'backbone.stem.0.weight' in converted:
        raise ArchitectureMismatch('torchvision ResNets have a single 7x7 stem conv; this '
                                   'checkpoint has a deep stem (use --from timm/mmpretrain)')
    infer_torchvision_arch(converted)
    return converted


def torchvision_arch_of(backbone_cfg):
    """The torchvision model name that has the architecture ``backbone_cfg``."""
    depth, groups = backbone_cfg['depth'], backbone_cfg.get('groups', 1)
    if groups == 1:
        name = f'resnet{depth}'
    else:
        name = f'resnext{depth}_{groups}x{backbone_cfg["base_width"]}d'
    extra = sorted(set(backbone_cfg) - {'type', 'depth', 'groups', 'base_width'})
    if name not in TORCHVISION_ARCHS or extra:
        what = f'{name} {extra}' if extra else name
        raise ArchitectureMismatch(f'{what} is not a torchvision ResNet '
                                   f'(supported: {", ".join(TORCHVISION_ARCHS)})')
    return name


def infer_torchvision_arch(converted):
    """(torchvision name, our backbone config) of a converted state dict."""
    backbone = {k[len('backbone.'):]: v for k, v in converted.items()
                if k.startswith('backbone.')}
    backbone_cfg = infer_backbone_cfg(backbone)
    return torchvision_arch_of(backbone_cfg), backbone_cfg


def build_torchvision_model(arch, num_classes=1000):
    """The torchvision model ``arch`` with random weights (nothing is downloaded)."""
    import torchvision
    if arch not in TORCHVISION_ARCHS:
        raise ArchitectureMismatch(f'unsupported torchvision arch {arch!r}; supported: '
                                   f'{", ".join(TORCHVISION_ARCHS)}')
    return torchvision.models.get_model(arch, weights=None, num_classes=num_classes).eval()


def source_model(arch, state):
    """torchvision model ``arch`` holding ``state`` (strict), to compare outputs with."""
    if 'fc.weight' not in state:
        raise KeyError('a torchvision ResNet checkpoint has fc.weight; this one does not')
    model = build_torchvision_model(arch, num_classes=state['fc.weight'].shape[0])
    model.load_state_dict(state, strict=True)
    return model


__all__ = ['TORCHVISION_ARCHS', 'convert_torchvision_state_dict', 'infer_torchvision_arch',
           'build_torchvision_model', 'torchvision_arch_of', 'source_model']
