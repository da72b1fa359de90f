"""Export the compact network an epsilon-ResNet leaves after discarding blocks.

The source's ``compressModel.py`` (docs/architectures.md 2.6) removes every discarded block,
renumbers the remaining blocks of each stage contiguously, keeps a parameter-free (CIFAR) or
projection (ImageNet) shortcut where a stage's first block was discarded, keeps stem, last norm
and fc, and drops the side head. Here the decision comes from the checkpoint
(``meta['epsilon_resnet']``, written by ``EpsilonResNetHook``): a block is discarded when its
gate was 0 on every training step of the last finished epoch. Because a gated network in eval
mode applies those decisions, the compact network computes exactly what the gated one does.

Gated -> compact backbone types: ``EpsilonResNet`` -> ``CompactResNet`` (post-activation trunk
blocks, ``relu(downsample(x))`` for a discarded first block); ``PreActResNetCIFAR(epsilon=e)``
-> ``PreActResNetCIFAR(epsilon=None, stage_blocks=..., ...)``.
"""
import copy
import io
import os
import os.path as osp
from dataclasses import dataclass, field

import torch

from resvariants.models.backbones.epsilon_resnet import EpsilonResNet
from resvariants.models.backbones.preact_resnet_cifar import PreActResNetCIFAR
from resvariants.models.backbones.strict_identity import apply_discard_record

META_KEY = 'epsilon_resnet'
EPSILON_HOOKS = ('EpsilonResNetHook', 'EpsilonAdaptiveLRHook')


@dataclass
class CompactPlan:
    """Which blocks survive, and where each kept block's weights come from."""
    stage_blocks: tuple
    shortcut_only_stages: tuple
    first_block_preact: bool
    removed: list
    total_blocks: int
    block_map: dict = field(default_factory=dict)  # new 'layerS.j.' -> old 'layerS.i.'

    @property
    def removed_ratio(self):
        return len(self.removed) / self.total_blocks if self.total_blocks else 0.0


def _short_type(cfg):
    """The registered name of a config's ``type`` without its scope (``''`` if none)."""
    return str(cfg.get('type') or '').rpartition('.')[2]


def plan_compaction(backbone, discarded):
    """Plan the compact network of a gated ``backbone``.

    Args:
        backbone: An ``EpsilonResNet`` or a gated ``PreActResNetCIFAR``.
        discarded (Iterable[str]): Discarded block names relative to the backbone
            (``'layer3.5'``).
    """
    if not isinstance(backbone, (EpsilonResNet, PreActResNetCIFAR)) or \
            getattr(backbone, 'epsilon', None) is None:
        raise TypeError(f'{type(backbone).__name__} is not a gated epsilon backbone '
                        f'(EpsilonResNet, or PreActResNetCIFAR with epsilon)')
    discarded = set(discarded)
    names = {f'{layer}.{i}' for layer in backbone.res_layers
             for i in range(len(getattr(backbone, layer)))}
    unknown = sorted(discarded - names)
    if unknown:
        raise KeyError(f'discarded blocks not in {type(backbone).__name__}: {unknown}')
    stage_blocks, shortcut_only, block_map = [], [], {}
    for layer_name in backbone.res_layers:
        layer = getattr(backbone, layer_name)
        new = 0
        keep_shortcut = f'{layer_name}.0' in discarded and layer[0].downsample is not None
        if keep_shortcut:
            new = 1  # layer index 0 is the shortcut: same key prefix as the old block 0
        kept = 0
        for i in range(len(layer)):
            if f'{layer_name}.{i}' in discarded:
                continue
            block_map[f'{layer_name}.{new}.'] = f'{layer_name}.{i}.'
            new += 1
            kept += 1
        stage_blocks.append(kept)
        shortcut_only.append(keep_shortcut)
    first_name = f'{backbone.res_layers[0]}.0'
    return CompactPlan(
        stage_blocks=tuple(stage_blocks), shortcut_only_stages=tuple(shortcut_only),
        first_block_preact=isinstance(backbone, PreActResNetCIFAR) and first_name in discarded,
        removed=sorted(discarded, key=lambda n: (n.split('.')[0], int(n.split('.')[1]))),
        total_blocks=len(names), block_map=block_map)


def compact_backbone_cfg(backbone_cfg, plan):
    """The config of the ordinary (ungated) backbone described by ``plan``."""
    cfg = copy.deepcopy(dict(backbone_cfg))
    gated_type = _short_type(cfg)
    cfg.pop('epsilon', None)
    init = cfg.get('init_cfg')
    if isinstance(init, dict) and _short_type(init).endswith('Pretrained'):
        cfg['init_cfg'] = None  # the compact checkpoint carries the weights
    if gated_type == 'EpsilonResNet':
        cfg['type'] = 'resvariants.CompactResNet'
    elif gated_type == 'PreActResNetCIFAR':
        cfg['type'] = 'resvariants.PreActResNetCIFAR'
        cfg['epsilon'] = None
        cfg['first_block_preact'] = plan.first_block_preact
    else:
        raise TypeError(f'cannot compact a backbone of type {cfg.get("type")!r}')
    cfg['stage_blocks'] = plan.stage_blocks
    cfg['shortcut_only_stages'] = plan.shortcut_only_stages
    return cfg


def compact_state_dict(gated_state, compact_model, plan, prefix='backbone.'):
    """Map the gated checkpoint onto ``compact_model``'s keys (every key must be found)."""
    mapped, problems = {}, []
    for key, target in compact_model.state_dict().items():
        source = key
        if key.startswith(prefix):
            rest = key[len(prefix):]
            for new, old in plan.block_map.items():
                if rest.startswith(new):
                    source = prefix + old + rest[len(new):]
                    break
        if source not in gated_state:
            problems.append(f'{key} <- {source}: not in the gated checkpoint')
        elif gated_state[source].shape != target.shape:
            problems.append(f'{key} <- {source}: shape {tuple(gated_state[source].shape)} vs '
                            f'{tuple(target.shape)}')
        else:
            mapped[key] = gated_state[source]
    if problems:
        raise KeyError('cannot map the gated weights onto the compact network:\n  '
                       + '\n  '.join(problems[:20]))
    return mapped


def _build_model(cfg):
    from mmengine.registry import DefaultScope

    from resvariants.engine.config_loading import register_scope
    scope = cfg.get('default_scope', 'mmpretrain')
    register_scope(scope)
    with DefaultScope.overwrite_default_scope(scope):
        if scope == 'mmdet':
            from mmdet.registry import MODELS
        else:
            from mmpretrain.registry import MODELS
        return MODELS.build(copy.deepcopy(cfg.model))


def _tensor_outputs(model, x):
    """(backbone outputs, final outputs) of a classifier / detector in eval mode."""
    feats = model.extract_feat(x)
    if hasattr(model, 'head') and getattr(model, 'with_head', False):
        final = (model.head(feats), )
    else:
        final = tuple(feats)
    return tuple(model.backbone(x)), final


def max_abs_diff(a, b):
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


def _complexity_target(model):
    # classifiers: backbone + neck + head; detectors: the backbone (what the export changes)
    return model if hasattr(model, 'head') else model.backbone


def _deploy_params(model):
    side = getattr(model, 'side_head', None)
    side_params = sum(p.numel() for p in side.parameters()) if side is not None else 0
    return sum(p.numel() for p in model.parameters()) - side_params


def compact_config(cfg, backbone_cfg):
    """The full config of the compact model: ordinary classifier/detector, no epsilon hooks."""
    cfg = copy.deepcopy(cfg)
    cfg.model.backbone = backbone_cfg
    if _short_type(cfg.model) == 'EpsilonImageClassifier':
        cfg.model.type = 'mmpretrain.ImageClassifier'
        cfg.model.pop('side_head', None)
        cfg.model.pop('side_position', None)
    hooks = [h for h in cfg.get('custom_hooks', [])
             if _short_type(h) not in EPSILON_HOOKS]
    cfg.custom_hooks = hooks
    for key in ('val_evaluator', 'test_evaluator'):  # the side head is gone: so is its metric
        metrics = cfg.get(key)
        if isinstance(metrics, (list, tuple)):
            cfg[key] = [m for m in metrics if _short_type(m) != 'SideAccuracy']
    return cfg


@dataclass
class ExportResult:
    plan: CompactPlan
    config_path: str
    checkpoint_path: str
    backbone_snippet_path: str
    max_abs_diff: float
    params_before: int
    params_after: int
    gflops_before: float
    gflops_after: float
    shape: tuple
    flops_of: str = 'model'


def export_compact(config_path, checkpoint_path, out_dir, shape=None, tolerance=1e-5,
                   count_flops=True):
    """Write the compact config + checkpoint of a trained epsilon-ResNet; verify equality.

    Returns an :class:`ExportResult`. Raises when the checkpoint holds no discard record, or
    when the compact network's outputs differ from the gated one's by ``tolerance`` or more
    on a random batch.
    """
    from mmengine.config import Config

    from resvariants.analysis import count_complexity
    from resvariants.engine.atomic_backend import atomic_write
    from resvariants.engine.strict_pretrained import load_state_dict_strictly
    from resvariants.utils.safe_load import load_checkpoint_safely

    if not osp.isfile(config_path):
        raise FileNotFoundError(f'config file not found: {config_path}')
    cfg = Config.fromfile(config_path)
    checkpoint = load_checkpoint_safely(checkpoint_path, map_location='cpu')
    state = checkpoint.get('state_dict', checkpoint)
    record = checkpoint.get('meta', {}).get(META_KEY)
    if record is None:
        raise KeyError(f'{checkpoint_path} holds no discard record (meta["{META_KEY}"]): '
                       f'train with resvariants.EpsilonResNetHook in custom_hooks')
    if not record.get('decided', False):
        raise ValueError(f'{checkpoint_path} was saved before any epoch ended: no block has a '
                         f'discard decision yet')

    gated = _build_model(cfg)
    load_state_dict_strictly(gated, state, source=checkpoint_path)
    apply_discard_record(gated, record)
    gated.eval()
    discarded = [n[len('backbone.'):] for n in record['discarded'] if n.startswith('backbone.')]
    plan = plan_compaction(gated.backbone, discarded)

    backbone_cfg = compact_backbone_cfg(cfg.model.backbone, plan)
    new_cfg = compact_config(cfg, backbone_cfg)
    compact = _build_model(new_cfg)
    mapped = compact_state_dict(state, compact, plan)
    load_state_dict_strictly(compact, mapped, source='mapped gated weights')
    compact.eval()

    if shape is None:
        shape = (32, 32) if isinstance(gated.backbone, PreActResNetCIFAR) else (224, 224)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, *shape, generator=gen)
    with torch.no_grad():
        gated_out = _tensor_outputs(gated, x)
        compact_out = _tensor_outputs(compact, x)
    diff = max(max_abs_diff(gated_out[0], compact_out[0]),
               max_abs_diff(gated_out[1], compact_out[1]))
    if not diff < tolerance:
        raise RuntimeError(f'the compact network differs from the gated one by {diff:.3g} '
                           f'(tolerance {tolerance:g})')

    params_before, params_after = _deploy_params(gated), _deploy_params(compact)
    gflops_before = gflops_after = float('nan')
    if count_flops:
        gflops_before = count_complexity(_complexity_target(gated), shape).gflops
        gflops_after = count_complexity(_complexity_target(compact), shape).gflops

    os.makedirs(out_dir, exist_ok=True)
    stem = osp.splitext(osp.basename(config_path))[0] + '_compact'
    config_out = osp.join(out_dir, stem + '.py')
    ckpt_out = osp.abspath(osp.join(out_dir, stem + '.pth'))
    meta = dict(compacted_from=osp.abspath(checkpoint_path), source_config=config_path,
                removed_blocks=plan.removed, removed_ratio=plan.removed_ratio,
                stage_blocks=plan.stage_blocks,
                shortcut_only_stages=plan.shortcut_only_stages,
                max_abs_diff=diff, params_before=params_before, params_after=params_after)
    buffer = io.BytesIO()
    torch.save(dict(meta=meta, state_dict=compact.state_dict()), buffer)
    atomic_write(buffer.getvalue(), ckpt_out)
    header = (f'# Compact network exported by tools/model_converters/epsilon_compact.py\n'
              f'# from {config_path} + {checkpoint_path}\n'
              f'# {len(plan.removed)}/{plan.total_blocks} blocks removed: '
              f'{", ".join(plan.removed) or "none"}\n'
              f'# weights: {ckpt_out}\n')
    atomic_write((header + new_cfg.pretty_text).encode(), config_out)
    snippet_out = osp.join(out_dir, 'compact_backbone.py')
    atomic_write(_backbone_snippet(backbone_cfg, ckpt_out, compact, header).encode(),
                 snippet_out)
    flops_of = 'model' if _complexity_target(gated) is gated else 'backbone'
    return ExportResult(plan, config_out, ckpt_out, snippet_out, diff, params_before,
                        params_after, gflops_before, gflops_after, tuple(shape), flops_of)


def _plain(obj):
    """ConfigDicts / lists / tuples as plain Python literals (for writing config files)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj


def _backbone_snippet(backbone_cfg, ckpt_path, compact_model, header):
    """A config fragment for detectors: the compact backbone with detection settings."""
    backbone_cfg = _plain(backbone_cfg)
    det = dict(backbone_cfg)
    det.update(_delete_=True, out_indices=(0, 1, 2, 3), frozen_stages=1, norm_eval=True,
               init_cfg=dict(type='StrictPretrained', checkpoint=ckpt_path, prefix='backbone.'))
    if str(det['type']).endswith('CompactResNet'):
        det['style'] = 'pytorch'
    backbone = compact_model.backbone
    x = torch.zeros(1, 3, 64, 64)
    saved = backbone.out_indices
    backbone.out_indices = tuple(range(len(backbone.res_layers)))
    with torch.no_grad():
        channels = [int(o.shape[1]) for o in backbone(x)]
    backbone.out_indices = saved
    return (header
            + '# Use it in a detector config:\n'
            + '#   _base_ = [..., "<this dir>/compact_backbone.py"]\n'
            + '#   model = dict(backbone={{_base_.compact_det_backbone}},\n'
            + '#                neck=dict(in_channels={{_base_.compact_fpn_in_channels}}))\n'
            + f'compact_checkpoint = {ckpt_path!r}\n'
            + f'compact_backbone = {backbone_cfg!r}\n'
            + f'compact_det_backbone = {det!r}\n'
            + f'compact_fpn_in_channels = {channels!r}\n')
