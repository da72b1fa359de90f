"""Convert a public ResNet-family checkpoint into a resvariants classifier checkpoint.

    python tools/model_converters/convert_resnet.py --from torchvision SRC DST
    python tools/model_converters/convert_resnet.py --from timm --arch resnet50.a1_in1k SRC DST
    python tools/model_converters/convert_resnet.py --from mmpretrain SRC DST
    python tools/model_converters/convert_resnet.py --from pytorchinsight SRC DST [--arch ...]
    python tools/model_converters/convert_resnet.py --from ednet SRC DST

SRC is a local file (``.pth``/``.pth.tar``/``.bin`` read weights-only, or ``.safetensors``).
DST (written atomically) is ``{'meta', 'state_dict'}`` with ``backbone.*`` keys of
``resvariants.ResNet`` and ``head.fc.*``; ``meta['backbone']`` holds the backbone arguments
that rebuild it (printed as a config snippet). It initialises

* a classifier: ``load_from=DST`` in an mmpretrain config with that backbone;
* a detector: ``model.backbone.init_cfg=dict(type='StrictPretrained', checkpoint=DST,
  prefix='backbone.')`` (zero missing / unexpected keys enforced);
* an attention variant: the same with ``type='WarmStart'`` (see projects/public_weights).

Checks, all before anything is written:

1. the converted dict loads with strict key/shape checks into the model rebuilt from it;
2. ``--config CFG``: it also loads into that config's model (classifier: backbone + head when
   the class counts agree; detector: backbone), or the error shows both architectures;
3. exactness (torchvision, timm, mmpretrain): the source library's own model holding SRC and
   our model holding DST give the same logits on a random batch (max abs difference below
   ``--tolerance``, default 1e-4). ``--no-verify`` skips it.

An architecture the trunk cannot express exactly (tiered or anti-aliased stems, wide
bottlenecks, other attention, unknown keys) is refused with the reason; nothing is converted to
a "near match". So is a weight-standardised ResNet passed as ``--from torchvision`` (same keys;
its BatchNorm statistics tell it apart): it converts with ``--from pytorchinsight``.
"""
import argparse
import importlib.util
import os.path as osp
import sys
import warnings

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

SOURCES = ('torchvision', 'timm', 'mmpretrain', 'pytorchinsight', 'ednet')


class ConfigMismatch(KeyError):
    """The converted checkpoint does not fit the model of ``--config`` (message says why)."""

    def __str__(self):
        return str(self.args[0])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--from', dest='source', required=True, choices=SOURCES,
                        help='code base the checkpoint comes from')
    parser.add_argument('src', help='source checkpoint file')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    parser.add_argument('--arch', help='source architecture name: required for timm (e.g. '
                        'seresnext50_32x4d or resnet50.a1_in1k, unless a Hugging Face '
                        'config.json lies beside SRC); optional cross-check for torchvision '
                        '(resnet50) and PytorchInsight (sge_resnet50), except that a '
                        'PytorchInsight plain-ResNet layout needs it: resnet50 or the '
                        'weight-standardised ws_resnet50 (same keys)')
    parser.add_argument('--config', help='also check that DST loads into this config\'s model')
    parser.add_argument('--backbone-only', action='store_true',
                        help='drop the classifier head (other class count or head type)')
    parser.add_argument('--no-verify', action='store_true',
                        help='skip the comparison with the source library\'s model')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='max abs logit difference accepted by the exactness check')
    parser.add_argument('--input-size', type=int, default=128,
                        help='side of the random images of the exactness check')
    return parser.parse_args(argv)


def _convert_state(source, state, arch, backbone_only, src):
    """(converted state, backbone cfg, source-model factory or None, extra meta)."""
    from resvariants.converters import resnet_layout
    meta = {}
    if source == 'torchvision':
        from resvariants.converters import torchvision as tv
        converted = tv.convert_torchvision_state_dict(state)
        name, backbone_cfg = tv.infer_torchvision_arch(converted)
        if arch and arch != name:
            raise resnet_layout.ArchitectureMismatch(
                f'--arch {arch} but the checkpoint is a torchvision {name}')
        _refuse_weight_standardised(state, name)
        meta['arch'] = name
        factory = (lambda: tv.source_model(name, state))
    elif source == 'timm':
        from resvariants.converters import timm as tm
        arch = arch or tm.read_hf_architecture(src)
        if not arch:
            raise ValueError('timm checkpoints do not record their architecture and the '
                             'anti-aliased variants have the same keys as the plain ones: pass '
                             '--arch <timm model name>, e.g. --arch resnet50.a1_in1k')
        converted, backbone_cfg = tm.convert_timm_state_dict(state, arch)
        meta['arch'] = arch
        preprocessing = tm.source_preprocessing(arch)
        if preprocessing:
            meta['source_preprocessing'] = preprocessing
            if (tuple(preprocessing['mean']), tuple(preprocessing['std'])) != (
                    tm.IMAGENET_MEAN, tm.IMAGENET_STD):
                warnings.warn(f'timm {arch} was trained with mean {preprocessing["mean"]} / std '
                              f'{preprocessing["std"]}, not the ImageNet values of our configs: '
                              f'set data_preprocessor mean/std accordingly (x255)')
        factory = (lambda: tm.source_model(arch, state))
    elif source == 'mmpretrain':
        from resvariants.converters import mmpretrain as mp
        converted, backbone_cfg = mp.convert_mmpretrain_state_dict(state, backbone_only)
        meta['arch'] = mp.mmpretrain_backbone_cfg(backbone_cfg)['type']
        factory = (lambda: mp.source_model(backbone_cfg, state))
    elif source == 'ednet':
        try:
            from resvariants.converters.ednet import convert_ednet_state_dict
        except ImportError as exc:
            raise ImportError('--from ednet needs resvariants/converters/ednet.py '
                              f'(convert_ednet_state_dict), which is not available: {exc}'
                              ) from exc
        converted = convert_ednet_state_dict(state)
        if isinstance(converted, tuple):
            converted = converted[0]
        backbone_cfg = resnet_layout.infer_backbone_cfg(
            resnet_layout.split_classifier_state(converted)[0])
        factory = None
    else:
        raise ValueError(f'unknown source {source!r}; choose from {SOURCES}')
    if backbone_only:
        converted = type(converted)((k, v) for k, v in converted.items()
                                    if k.startswith('backbone.'))
        if factory is not None:
            factory = _without_head(factory)
    return converted, backbone_cfg, factory, meta


def _refuse_weight_standardised(state, name):
    """A WS release (PytorchInsight resnet_ws.py) has torchvision's keys and would convert, and
    even pass the exactness check, as a plain ``name``: its BatchNorm statistics give it away
    (resvariants/converters/ws_evidence.py)."""
    from resvariants.converters.resnet_layout import ArchitectureMismatch
    from resvariants.converters.ws_evidence import weight_standardisation_evidence
    evidence = weight_standardisation_evidence(state)
    if evidence.verdict == 'ws':
        raise ArchitectureMismatch(
            f'not a torchvision {name}: its BatchNorm statistics were produced by '
            f'weight-standardised convs ({evidence.summary()}); a WS release (PytorchInsight '
            f'resnet_ws.py) converts with --from pytorchinsight')


def _without_head(factory):
    """Source-model factory whose output is the pooled backbone features (no classifier)."""
    import torch.nn as nn

    def build():
        model = factory()
        if hasattr(model, 'extract_feat'):  # mmpretrain classifier: its backbone
            return model.backbone
        if hasattr(model, 'reset_classifier'):  # timm
            model.reset_classifier(0)
        else:  # torchvision
            model.fc = nn.Identity()
        return model
    return build


def verify_exactness(ours, factory, input_size, tolerance, seed=0):
    """Max abs difference between our model's and the source model's outputs."""
    import torch

    from resvariants.converters.resnet_layout import forward_logits
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(2, 3, input_size, input_size, generator=generator)
    source = factory().eval()
    expected = _pooled(forward_logits(source, inputs))
    got = _pooled(forward_logits(ours, inputs))
    if expected.shape != got.shape:
        raise RuntimeError(f'output shapes differ: source {tuple(expected.shape)}, converted '
                           f'{tuple(got.shape)}')
    diff = (expected - got).abs().max().item()
    if not diff < tolerance:
        raise RuntimeError(f'the converted model is not exact: max abs output difference {diff:.3g}'
                           f' >= {tolerance:g} (source architecture differs from the trunk)')
    return diff


def _pooled(out):
    return out.mean(dim=(2, 3)) if out.dim() == 4 else out


def check_config(config_path, state, backbone_cfg):
    """Strictly load ``state`` into the model of ``config_path``; return what was checked."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from resvariants.converters.resnet_layout import split_classifier_state
    from resvariants.engine.config_loading import register_scope
    from resvariants.engine.strict_pretrained import load_state_dict_strictly
    cfg = Config.fromfile(config_path)
    scope = cfg.get('default_scope', 'mmpretrain')
    register_scope(scope)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(cfg.model)
    backbone_state, head_state = split_classifier_state(state)
    try:
        load_state_dict_strictly(model.backbone, backbone_state,
                                 source='backbone.* of the converted checkpoint')
    except KeyError as exc:
        details = str(exc.args[0])
        hint = ''
        attention = backbone_cfg.get('attention') if isinstance(backbone_cfg, dict) else None
        if '.se_layer.' in details and attention and attention.get('divisor') == 8:
            hint = ('\n  the source rounds the SE squeeze width C/16 up to a multiple of 8 '
                    '(timm / mmpretrain); build the config with '
                    "attention=dict(type='SEModule', ratio=16, divisor=8)")
        raise ConfigMismatch(f'{config_path} cannot hold the converted weights exactly:\n'
                             f'{details}\n  converted backbone: {backbone_cfg}\n  config '
                             f'backbone: {dict(cfg.model.backbone)}{hint}') from None
    model_head = {k: v for k, v in model.state_dict().items() if k.startswith('head.fc.')}
    if head_state and model_head and all(
            k in head_state and head_state[k].shape == v.shape for k, v in model_head.items()):
        load_state_dict_strictly(model, state, source='the converted checkpoint')
        return 'backbone + head'
    return 'backbone'


def _imagenet_config_for(backbone_cfg):
    """The configs/imagenet/*.py whose backbone is exactly this one, if any."""
    plain = dict(type='resvariants.ResNet', depth=backbone_cfg['depth'])
    variants = {'resnet': plain,
                'se_resnet': dict(plain, attention=dict(type='SEModule', ratio=16, divisor=1))}
    for prefix, cfg in variants.items():
        if cfg == backbone_cfg:
            path = osp.join('configs', 'imagenet', f'{prefix}{backbone_cfg["depth"]}_in1k.py')
            if osp.isfile(osp.join(ROOT, path)):
                return path
    return None


def convert_pytorchinsight(src, dst, arch=None, config=None):
    """Delegate to tools/model_converters/pytorchinsight_to_mmpretrain.py (strict checks)."""
    spec = importlib.util.spec_from_file_location(
        'pytorchinsight_to_mmpretrain', osp.join(osp.dirname(osp.abspath(__file__)),
                                                 'pytorchinsight_to_mmpretrain.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.convert(src, dst, arch)
    if config:
        from resvariants.converters.resnet_layout import (infer_backbone_cfg,
                                                          split_classifier_state)
        from resvariants.utils import load_checkpoint_safely
        state = load_checkpoint_safely(dst)['state_dict']
        try:
            backbone_cfg = infer_backbone_cfg(split_classifier_state(state)[0])
        except ValueError:
            backbone_cfg = '(attention variant, see the checkpoint meta)'
        print(f'config check ({config}): {check_config(config, state, backbone_cfg)} loads '
              f'strictly')
    return dict(dst=dst)


def convert(source, src, dst, arch=None, config=None, backbone_only=False, verify=True,
            tolerance=1e-4, input_size=128):
    """Convert ``src`` (from ``source``) into ``dst``; returns a summary dict."""
    if source == 'pytorchinsight':
        return convert_pytorchinsight(src, dst, arch, config)
    from resvariants.converters.resnet_layout import load_converted, read_checkpoint, save_converted
    state = read_checkpoint(src)
    converted, backbone_cfg, factory, meta = _convert_state(source, state, arch, backbone_only,
                                                            src)
    model = load_converted(converted, backbone_cfg)
    summary = dict(source=source, src=src, dst=dst, backbone=backbone_cfg,
                   tensors=len(converted), **meta)
    if 'head.fc.weight' in converted:
        summary['num_classes'] = int(converted['head.fc.weight'].shape[0])
    if verify and factory is not None:
        try:
            summary['max_abs_diff'] = verify_exactness(model, factory, input_size, tolerance)
        except ImportError as exc:
            warnings.warn(f'exactness check skipped, the {source} library is missing: {exc}')
    if config:
        summary['config_check'] = f'{config}: {check_config(config, converted, backbone_cfg)}'
    summary['imagenet_config'] = _imagenet_config_for(backbone_cfg)
    save_converted(converted, dst, meta=dict(summary, converted_from=osp.basename(src)))
    _print_summary(summary)
    return summary


def _print_summary(summary):
    print(f'converted {summary["source"]} {summary.get("arch", "")} {summary["src"]} -> '
          f'{summary["dst"]} ({summary["tensors"]} tensors)')
    if 'max_abs_diff' in summary:
        print(f'exact: max abs logit difference vs the source model = '
              f'{summary["max_abs_diff"]:.3g}')
    if 'config_check' in summary:
        print(f'config check {summary["config_check"]} loads strictly')
    backbone = ', '.join(f'{k}={v!r}' for k, v in summary['backbone'].items())
    print(f'backbone: dict({backbone})')
    if summary['imagenet_config']:
        print(f'matching config: {summary["imagenet_config"]}')


def main(argv=None):
    args = parse_args(argv)
    return convert(args.source, args.src, args.dst, arch=args.arch, config=args.config,
                   backbone_only=args.backbone_only, verify=not args.no_verify,
                   tolerance=args.tolerance, input_size=args.input_size)


if __name__ == '__main__':
    main()
