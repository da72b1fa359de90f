"""PytorchInsight classification checkpoints -> mmpretrain ``ImageClassifier`` state dicts.

PytorchInsight releases ``*.pth.tar`` files ``{epoch, state_dict, best_acc, optimizer}`` whose
keys carry a ``module.`` prefix (DataParallel) and follow torchvision's naming. The trunk keys
map 1:1 onto our ``resvariants.ResNet`` (mmdet naming is torchvision's); the classifier ``fc``
becomes ``head.fc``; attention modules are renamed (and SE's Linear weights reshaped to 1x1
convs) as below. Nothing is dropped silently: an unknown key is an error.
"""
import re

PI_ARCHS = tuple(f'{v}resnet{d}' for v in ('', 'se_', 'sk_', 'cbam_', 'bam_', 'gc_', 'sge_',
                                           'srm_') for d in (50, 101))

_BLOCK = r'(layer\d+\.\d+)\.'
_RULES = [
    # SE: Linear -> 1x1 conv of mmpretrain's SELayer layout
    (re.compile(_BLOCK + r'se\.fc\.0\.(weight|bias)$'), r'\1.se_layer.conv1.conv.\2', 'conv'),
    (re.compile(_BLOCK + r'se\.fc\.2\.(weight|bias)$'), r'\1.se_layer.conv2.conv.\2', 'conv'),
    # CBAM
    (re.compile(_BLOCK + r'cbam\.ChannelGate\.mlp\.1\.(.+)$'), r'\1.cbam.channel_fc1.\2', None),
    (re.compile(_BLOCK + r'cbam\.ChannelGate\.mlp\.3\.(.+)$'), r'\1.cbam.channel_fc2.\2', None),
    (re.compile(_BLOCK + r'cbam\.SpatialGate\.spatial\.conv\.(.+)$'), r'\1.cbam.spatial_conv.\2',
     None),
    (re.compile(_BLOCK + r'cbam\.SpatialGate\.spatial\.bn\.(.+)$'), r'\1.cbam.spatial_bn.\2',
     None),
    # SK*: the fusion convs move into the block's ``sk`` module
    (re.compile(_BLOCK + r'(conv_fc1|bn_fc1|conv_fc2)\.(.+)$'), r'\1.sk.\2.\3', None),
    # GC: same sub-keys as mmcv's ContextBlock
    (re.compile(_BLOCK + r'gc\.(.+)$'), r'\1.context_block.\2', None),
    # BAM (stage level)
    (re.compile(r'(bam\d)\.channel_att\.gate_c\.gate_c_fc_0\.(.+)$'), r'\1.channel_fc1.\2', None),
    (re.compile(r'(bam\d)\.channel_att\.gate_c\.gate_c_bn_1\.(.+)$'), r'\1.channel_bn.\2', None),
    (re.compile(r'(bam\d)\.channel_att\.gate_c\.gate_c_fc_final\.(.+)$'), r'\1.channel_fc2.\2',
     None),
    (re.compile(r'(bam\d)\.spatial_att\.gate_s\.gate_s_conv_reduce0\.(.+)$'),
     r'\1.spatial_reduce.\2', None),
    (re.compile(r'(bam\d)\.spatial_att\.gate_s\.gate_s_bn_reduce0\.(.+)$'),
     r'\1.spatial_reduce_bn.\2', None),
    (re.compile(r'(bam\d)\.spatial_att\.gate_s\.gate_s_conv_di_(\d+)\.(.+)$'),
     r'\1.spatial_dilated.\2.\3', None),
    (re.compile(r'(bam\d)\.spatial_att\.gate_s\.gate_s_bn_di_(\d+)\.(.+)$'),
     r'\1.spatial_dilated_bn.\2.\3', None),
    (re.compile(r'(bam\d)\.spatial_att\.gate_s\.gate_s_conv_final\.(.+)$'),
     r'\1.spatial_final.\2', None),
]
_TRUNK = re.compile(r'^(conv1\.weight|bn1\.\w+|' + _BLOCK +
                    r'(conv[123]|bn[123]|conv2g|bn2g|downsample\.[01])\.\w+|'
                    + _BLOCK + r'(sge\.(weight|bias)|srm\.(cfc|bn\.\w+)))$')


def _strip_module(state):
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}


def infer_pytorchinsight_arch(state):
    """Guess the architecture name (e.g. ``'sge_resnet50'``) from a PytorchInsight state dict."""
    keys = set(_strip_module(state))
    n_blocks_stage3 = len({k.split('.')[1] for k in keys if k.startswith('layer3.')})
    depth = {6: 50, 23: 101}.get(n_blocks_stage3)
    if depth is None:
        raise ValueError(f'cannot infer depth: layer3 has {n_blocks_stage3} blocks '
                         f'(50 has 6, 101 has 23)')
    marks = [('se_', '.se.fc.'), ('sk_', '.conv2g.'), ('cbam_', '.cbam.'), ('bam_', 'bam1.'),
             ('gc_', '.gc.'), ('sge_', '.sge.'), ('srm_', '.srm.')]
    found = [prefix for prefix, mark in marks if any(mark in k for k in keys)]
    if len(found) > 1:
        raise ValueError(f'ambiguous checkpoint: keys of several variants {found}')
    return f'{found[0] if found else ""}resnet{depth}'


def convert_pytorchinsight_state_dict(state):
    """Map a PytorchInsight state dict to an mmpretrain ImageClassifier state dict.

    Raises:
        KeyError: listing every key that has no mapping.
    """
    state = _strip_module(state)
    converted, unknown = {}, []
    for key, value in state.items():
        if key in ('fc.weight', 'fc.bias'):
            converted[f'head.{key}'] = value
            continue
        for pattern, repl, kind in _RULES:
            if pattern.match(key):
                new_key = pattern.sub(repl, key)
                if kind == 'conv' and key.endswith('weight') and value.dim() == 2:
                    value = value[:, :, None, None]
                converted[f'backbone.{new_key}'] = value
                break
        else:
            if _TRUNK.match(key):
                converted[f'backbone.{key}'] = value
            else:
                unknown.append(key)
    if unknown:
        raise KeyError(f'{len(unknown)} PytorchInsight keys have no mapping: '
                       + ', '.join(unknown[:20]) + (' ...' if len(unknown) > 20 else ''))
    return converted
