"""What every public-weights converter shares: our checkpoint layout and its architecture.

A converter maps a source state dict onto an mmpretrain ``ImageClassifier`` state dict whose
backbone is ``resvariants.ResNet`` (``backbone.*`` in torchvision naming, ``head.fc.*``). From
those keys alone :func:`infer_backbone_cfg` recovers the backbone arguments (depth, ResNeXt
groups/width, deep stem, average-pool shortcut, SE squeeze width), so a checkpoint carries what
is needed to rebuild its model, and :func:`build_classifier` / :func:`load_converted` check it
with strict key and shape matching. An architecture our trunk cannot express exactly raises
:class:`ArchitectureMismatch` naming the difference; nothing is loaded approximately.
"""
import io
import os.path as osp
import re
from collections import OrderedDict

import torch

from resvariants.utils.safe_load import load_checkpoint_safely, state_dict_of

#: keys of the plain trunk (stem, residual branches, projections) in our layout
TRUNK_KEY = re.compile(r'^(conv1\.weight|bn1\.\w+|stem\.\d+\.\w+|'
                       r'layer\d+\.\d+\.(conv[123]|bn[123]|downsample\.\d+)\.\w+)$')
#: default arguments of the backbone we build (ImageNet classification settings)
CLASSIFIER_BACKBONE_DEFAULTS = dict(out_indices=(3, ), frozen_stages=-1, norm_eval=False,
                                    style='pytorch')


class ArchitectureMismatch(ValueError):
    """The source architecture differs from anything ``resvariants.ResNet`` builds exactly."""


def read_checkpoint(path):
    """Read a torch or ``.safetensors`` checkpoint (``torch.load`` reads both, weights-only)
    into a tensor dict."""
    return state_dict_of(load_checkpoint_safely(path, map_location='cpu'), source=path)


def split_classifier_state(state):
    """Split an mmpretrain-layout dict into (backbone dict without prefix, head dict)."""
    backbone = OrderedDict((k[len('backbone.'):], v) for k, v in state.items()
                           if k.startswith('backbone.'))
    head = OrderedDict((k, v) for k, v in state.items() if not k.startswith('backbone.'))
    return backbone, head


def _block_counts(backbone):
    counts = []
    for stage in range(1, 5):
        blocks = {int(m.group(1)) for k in backbone
                  for m in [re.match(rf'layer{stage}\.(\d+)\.', k)] if m}
        if not blocks:
            break
        if blocks != set(range(len(blocks))):
            raise ArchitectureMismatch(f'layer{stage} block indices are not contiguous: '
                                       f'{sorted(blocks)}')
        counts.append(len(blocks))
    return tuple(counts)


def _infer_depth(backbone):
    from resvariants.models.backbones.resnet import Bottleneck, ResNet
    counts = _block_counts(backbone)
    bottleneck = 'layer1.0.conv3.weight' in backbone
    for depth, (block, stage_blocks) in ResNet.arch_settings.items():
        if tuple(stage_blocks) == counts and (block is Bottleneck) == bottleneck:
            return depth, bottleneck
    kind = 'bottleneck' if bottleneck else 'basic'
    supported = ', '.join(f'{d}: {tuple(s)}' for d, (b, s) in ResNet.arch_settings.items()
                          if (b is Bottleneck) == bottleneck)
    raise ArchitectureMismatch(
        f'{kind}-block stages with {counts} blocks are not a depth of our trunk (its {kind} '
        f'depths, blocks per stage: {supported})')


def _infer_stem(backbone):
    if 'stem.0.weight' in backbone:
        shapes = [tuple(backbone[f'stem.{i}.weight'].shape) for i in (0, 3, 6)
                  if f'stem.{i}.weight' in backbone]
        if len(shapes) != 3 or any(s[2:] != (3, 3) for s in shapes):
            raise ArchitectureMismatch(f'deep stem with convs {shapes}: our deep stem is three '
                                       f'3x3 convs')
        half, channels = shapes[0][0], shapes[2][0]
        if not (shapes[0][1] == 3 and shapes[1][:2] == (half, half)
                and shapes[2][1] == half and channels == 2 * half):
            raise ArchitectureMismatch(
                f'deep stem widths 3->{shapes[0][0]}->{shapes[1][0]}->{channels}: our trunk\'s '
                f'deep stem (ResNet-C/D) is 3->c/2->c/2->c; tiered stems such as timm\'s "t" '
                f'variants (3->24->32->64) are not supported')
        return dict(deep_stem=True, stem_channels=channels)
    if 'conv1.weight' in backbone:
        shape = tuple(backbone['conv1.weight'].shape)
        if shape[1:] != (3, 7, 7):
            raise ArchitectureMismatch(
                f'stem conv of shape {shape}: our trunk\'s stem is a 7x7 stride-2 conv on 3 '
                f'channels (+ max-pool); a 3x3 stem is the CIFAR ResNet, not supported')
        return dict(deep_stem=False, stem_channels=shape[0])
    raise ArchitectureMismatch('no stem found (neither conv1.weight nor stem.0.weight)')


def _infer_se(backbone, cfg):
    keys = [k for k in backbone if '.se_layer.' in k]
    if not keys:
        return
    from mmpretrain.models.utils import make_divisible
    squeeze = {k[:-len('.se_layer.conv1.conv.weight')]: tuple(v.shape[:2])
               for k, v in backbone.items() if k.endswith('.se_layer.conv1.conv.weight')}
    hidden, channels = squeeze[max(squeeze, key=lambda k: squeeze[k][1])]
    ratio = channels // hidden
    rounding = {1: lambda c: c // ratio, 8: lambda c: make_divisible(c // ratio, 8)}
    for divisor, squeeze_width in rounding.items():
        if all(h == squeeze_width(c) for h, c in squeeze.values()):
            cfg['attention'] = dict(type='SEModule', ratio=ratio, divisor=divisor)
            return
    widths = sorted(set(squeeze.values()))
    raise ArchitectureMismatch(f'SE squeeze widths (hidden, channels) {widths} follow neither '
                               f'C//{ratio} nor its rounding to multiples of 8')


def infer_backbone_cfg(backbone):
    """Arguments of ``resvariants.ResNet`` that reproduce a backbone state dict (our layout).

    Returns a dict with ``depth`` and, where they differ from the defaults, ``deep_stem``,
    ``stem_channels``, ``avg_down``, ``base_channels``, ``groups``, ``base_width`` and
    ``attention`` (SE). ED-Net layouts (``ed_path`` keys) give ``type='resvariants.EDResNet'``.

    Raises:
        ArchitectureMismatch: when the layout is not one our trunk builds exactly.
    """
    depth, bottleneck = _infer_depth(backbone)
    cfg = dict(type='resvariants.ResNet', depth=depth)
    stem = _infer_stem(backbone)
    if stem['deep_stem']:
        cfg.update(deep_stem=True)
    width = backbone['layer1.0.conv2.weight'].shape[0]
    out_channels = backbone[f'layer1.0.conv{3 if bottleneck else 2}.weight'].shape[0]
    base_channels = out_channels // (4 if bottleneck else 1)
    if base_channels != 64:
        cfg['base_channels'] = base_channels
    if stem['stem_channels'] != base_channels:
        cfg['stem_channels'] = stem['stem_channels']
    if any(re.match(r'layer\d+\.0\.downsample\.2\.weight$', k) for k in backbone):
        cfg['avg_down'] = True
    ed_keys = [k for k in backbone if '.ed_path.' in k]
    full_width = width
    if ed_keys:
        cfg['type'] = 'resvariants.EDResNet'
        encoder = backbone['layer1.0.ed_path.encoder_conv.weight']
        full_width = encoder.shape[0]
        ed_groups = out_channels // encoder.shape[1]
        if ed_groups != 32:
            cfg['ed_groups'] = ed_groups
    if bottleneck:
        groups = width // backbone['layer1.0.conv2.weight'].shape[1]
        if groups == 1 and full_width != base_channels:
            raise ArchitectureMismatch(
                f'bottleneck width {full_width} with groups=1 for {base_channels} planes: a wide '
                f'ResNet (e.g. wide_resnet50_2); our trunk builds width = planes when groups=1')
        if groups > 1:
            cfg.update(groups=groups, base_width=full_width // groups)
            if full_width % groups:
                raise ArchitectureMismatch(f'width {full_width} is not a multiple of the '
                                           f'{groups} groups')
        if ed_keys and width != full_width:
            cfg['branch_ratio'] = width / full_width
    _infer_se(backbone, cfg)
    return cfg


def build_backbone(backbone_cfg, **overrides):
    """Build ``resvariants.ResNet`` (or ``EDResNet``) from an inferred config, eval mode."""
    from resvariants.registry import MODELS
    cfg = dict(CLASSIFIER_BACKBONE_DEFAULTS, **backbone_cfg, **overrides)
    cfg['type'] = cfg['type'].split('.', 1)[-1]
    return MODELS.build(dict(cfg, _scope_='resvariants')).eval()


def build_classifier(backbone_cfg, num_classes):
    """An mmpretrain ``ImageClassifier`` (GAP neck, linear head) around our backbone, eval."""
    from mmengine.registry import DefaultScope
    from mmpretrain.models import ImageClassifier
    expansion = 4 if backbone_cfg['depth'] >= 50 else 1
    channels = backbone_cfg.get('base_channels', 64) * 8 * expansion
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = ImageClassifier(
            backbone=dict(CLASSIFIER_BACKBONE_DEFAULTS, **backbone_cfg),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=channels,
                      loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
    return model.eval()


def build_target_model(state, backbone_cfg):
    """The model a converted state dict belongs to: a classifier if it has ``head.fc``."""
    if 'head.fc.weight' in state:
        return build_classifier(backbone_cfg, state['head.fc.weight'].shape[0])
    return build_backbone(backbone_cfg)


def load_converted(state, backbone_cfg):
    """Build the target model and load ``state`` with strict key and shape checks."""
    from resvariants.engine.strict_pretrained import load_state_dict_strictly
    model = build_target_model(state, backbone_cfg)
    if 'head.fc.weight' not in state:
        state = split_classifier_state(state)[0]
    load_state_dict_strictly(model, state, source='converted checkpoint')
    return model


def forward_logits(model, inputs):
    """Logits of a classifier (last features of a bare backbone) for a normalised batch.

    Works for mmpretrain classifiers (``mode='tensor'``), backbones returning a tuple of
    stages, and plain torch models returning a tensor (torchvision, timm).
    """
    with torch.no_grad():
        if hasattr(model, 'extract_feat'):
            return model(inputs, mode='tensor')
        out = model(inputs)
        return out[-1] if isinstance(out, (tuple, list)) else out


def save_converted(state, dst, meta):
    """Write ``{'meta': meta, 'state_dict': state}`` atomically to ``dst``."""
    from resvariants.engine.atomic_backend import atomic_write
    buffer = io.BytesIO()
    torch.save(dict(meta=meta, state_dict=OrderedDict(state)), buffer)
    atomic_write(buffer.getvalue(), dst)
    return dst


def release_meta(checkpoint, src, arch, config):
    """The ``meta`` of a converted release: its file, architecture, config and the training
    figures the source stored beside the weights (``epoch``, ``best_acc``, ``best_prec1``; an
    mmdet checkpoint's ``meta['epoch']`` and ``meta['mmdet_version']``)."""
    meta = dict(converted_from=osp.basename(src), arch=arch, config=config)
    sources = [checkpoint] if isinstance(checkpoint, dict) else []
    if sources and isinstance(checkpoint.get('meta'), dict):
        sources.append(checkpoint['meta'])
    for source in sources:
        for key in ('epoch', 'best_acc', 'best_prec1', 'mmdet_version'):
            if key in source and key not in meta:
                value = source[key]
                meta[key] = value.item() if hasattr(value, 'item') else value
    return meta


def convert_release(src, dst, convert_state, config_for):
    """The converter tools' whole job: read ``src`` (weights-only), name its architecture and
    config (``config_for(state) -> (arch, config path[, extra meta dict])``), map its keys
    (``convert_state(state)``), load the result strictly into the config's model and write
    that model's state dict atomically to ``dst`` with :func:`release_meta` (plus the extra
    meta)."""
    from resvariants.engine.config_loading import build_model, read_config
    from resvariants.engine.strict_pretrained import load_state_dict_strictly
    checkpoint = load_checkpoint_safely(src, map_location='cpu')
    state = state_dict_of(checkpoint, src)
    arch, config, *extra = config_for(state)
    if not osp.isfile(config):
        raise FileNotFoundError(f'{arch}: its config {config} does not exist')
    converted = convert_state(state)
    model = build_model(read_config(config))
    load_state_dict_strictly(model, converted, source=f'converted {src}')
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    meta = release_meta(checkpoint, src, arch, osp.relpath(config, root))
    meta.update(*extra)
    save_converted(model.state_dict(), dst, meta)
    print(f'converted {src} ({arch}, {len(converted)} tensors) -> {dst}')
    return dst


def complete_bn_counters(state):
    """Add ``num_batches_tracked = 0`` next to every BN ``running_mean`` that lacks it.

    Checkpoints saved before PyTorch 0.4.1 (some early torchvision releases) have no counters;
    ``nn.BatchNorm2d`` fills in 0 when it loads them, which is what this does, so the strict key
    check of the converted file passes. The counter only matters for ``momentum=None``.
    """
    completed = OrderedDict()
    for key, value in state.items():
        completed[key] = value
        if key.endswith('.running_mean'):
            counter = key[:-len('running_mean')] + 'num_batches_tracked'
            if counter not in state:
                completed[counter] = torch.tensor(0, dtype=torch.long)
    return completed


def linear_as_conv1x1(value):
    """A Linear weight ``(out, in)`` as the 1x1 conv weight ``(out, in, 1, 1)`` holding the
    same map (biases and conv weights pass unchanged)."""
    return value[:, :, None, None] if value.dim() == 2 else value


def rename_or_fail(state, rules, source, target='resvariants.ResNet'):
    """Apply ``[(compiled regex, replacement[, transform])]`` to every key (the first rule that
    matches wins); unmatched keys are an error.

    A rule with replacement None drops the key on purpose (e.g. a parameter-free module's
    buffer); a transform maps the value (e.g. :func:`linear_as_conv1x1`). Missing BN counters
    are completed (:func:`complete_bn_counters`). Raises ``KeyError`` counting every key no
    rule matched and naming the first 20 (``target``: the model the keys were meant for).
    """
    renamed, unknown = OrderedDict(), []
    for key, value in state.items():
        for pattern, replacement, *transform in rules:
            if pattern.match(key):
                if replacement is not None:
                    renamed[pattern.sub(replacement, key)] = (transform[0](value) if transform
                                                              else value)
                break
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(f'{len(unknown)} {source} keys have no counterpart in {target} '
                       f'(a different architecture?): ' + ', '.join(unknown[:20])
                       + (' ...' if len(unknown) > 20 else ''))
    return complete_bn_counters(renamed)
