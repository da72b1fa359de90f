"""Remove the residual connections of a trained ResNet exactly (RMNet-style deploy form).

    python tools/model_converters/remove_residual.py CONFIG CKPT OUT_DIR \
        [--shape H W] [--tolerance 1e-4] [--latency-runs 10] [--cfg-options k=v ...]

CONFIG is an mmpretrain classifier or mmdet detector config whose backbone is
``resvariants.ResNet`` / ``CifarResNet`` (residual; basic or bottleneck blocks) or
``resvariants.PlainResNet`` (a distilled plain student: only the norms are folded); a
``StagewiseDistiller`` config converts its student. CKPT is read weights-only and must match
the config strictly. OUT_DIR receives

* ``<config name>_rm-plain.py``: the same config with ``type='resvariants.RMPlainResNet'``,
* ``<config name>_rm-plain.pth``: its weights (written atomically),

after checking that the converted model reproduces the original in eval mode (backbone
outputs and the classifier logits / detector neck features, max abs difference below
``--tolerance``; the tool exits with an error otherwise). It prints params, GFLOPs
(PytorchInsight convention), GMACs and batch-1 CPU latency before and after. The .pth loads into
the written config (``tools/test.py OUT_DIR/x_rm-plain.py OUT_DIR/x_rm-plain.pth``) or, with
``init_cfg=dict(type='StrictPretrained', checkpoint=..., prefix='backbone.')``, into any
mmdet / mmpretrain model whose backbone is the same ``RMPlainResNet``.
"""
import argparse
import copy
import io
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Exact residual removal (RMNet-style)')
    parser.add_argument('config', help='classifier / detector config of the trained model')
    parser.add_argument('checkpoint', help='its checkpoint')
    parser.add_argument('out_dir', help='where the plain config and checkpoint are written')
    parser.add_argument('--shape', type=int, nargs='+', default=None,
                        help='check / count at H W (default 32 for the CIFAR stem, else 224)')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='largest allowed max abs difference of the outputs')
    parser.add_argument('--latency-runs', type=int, default=10,
                        help='timed forward passes per model (0 skips the latency)')
    parser.add_argument('--cfg-options', nargs='+', default=None,
                        help='key=value overrides of CONFIG')
    return parser.parse_args(argv)


def load_config(path, cfg_options=None):
    from resvariants.engine.config_loading import read_config
    cfg = read_config(path, cfg_options)
    model = cfg.model
    if str(model.get('type', '')).split('.')[-1] == 'StagewiseDistiller':
        # the deployable part of a distiller is its student: an ordinary classifier
        cfg.model = dict(type='ImageClassifier', backbone=model.backbone,
                         neck=model.get('neck'), head=model.get('head'))
        cfg.pop('custom_hooks', None)
    return cfg


def read_state_dict(path):
    from resvariants.utils import load_checkpoint_safely, state_dict_of
    return state_dict_of(load_checkpoint_safely(path, map_location='cpu'), path)


def max_abs_diff(a, b):
    import torch
    if isinstance(a, torch.Tensor):
        return (a - b).abs().max().item()
    if len(a) != len(b):
        raise ValueError(f'{len(a)} vs {len(b)} outputs')
    return max(max_abs_diff(x, y) for x, y in zip(a, b))


def convert(config, checkpoint, out_dir, shape=None, tolerance=1e-4, latency_runs=10,
            cfg_options=None):
    import torch

    import resvariants  # noqa: F401
    from resvariants.analysis import count_complexity
    from resvariants.analysis.complexity import _TensorForward
    from resvariants.analysis.latency import measure_latency
    from resvariants.converters.remove_residual import remove_residual, rm_backbone_config
    from resvariants.engine.atomic_backend import atomic_write
    from resvariants.engine.strict_pretrained import load_state_dict_strictly
    from resvariants.models.backbones.plain_resnet import PlainResNet

    from resvariants.engine.config_loading import build_model
    cfg = load_config(config, cfg_options)
    model = build_model(cfg, without_checkpoint=True)
    load_state_dict_strictly(model, read_state_dict(checkpoint), source=checkpoint)
    model.eval()
    if not hasattr(model, 'backbone'):
        raise TypeError(f'{type(model).__name__} has no backbone to convert')
    is_plain = isinstance(model.backbone, PlainResNet)

    plain_cfg = copy.deepcopy(cfg)
    plain_cfg.model.backbone = rm_backbone_config(cfg.model.backbone,
                                                  reserve_identity=not is_plain)
    plain_cfg.load_from = None
    plain_model = build_model(plain_cfg, without_checkpoint=True)
    remove_residual(model.backbone, plain=plain_model.backbone)
    state = plain_model.state_dict()
    original = model.state_dict()
    for key in state:
        if not key.startswith('backbone.'):
            state[key] = original[key]
    load_state_dict_strictly(plain_model, state, source='converted weights')
    plain_model.eval()

    if shape is None:
        shape = (32, 32) if getattr(model.backbone, 'stem_type', '') == 'cifar' else (224, 224)
    shape = tuple(shape * 2 if len(shape) == 1 else shape)
    torch.manual_seed(0)
    inputs = torch.randn(2, 3, *shape)
    with torch.no_grad():
        backbone_diff = max_abs_diff(model.backbone(inputs), plain_model.backbone(inputs))
        output_diff = max_abs_diff(_TensorForward(model)(inputs),
                                   _TensorForward(plain_model)(inputs))
    if max(backbone_diff, output_diff) >= tolerance:
        raise RuntimeError(f'conversion is not exact: max abs diff backbone {backbone_diff:.3g}, '
                           f'output {output_diff:.3g} >= tolerance {tolerance:g}')

    rows = []
    for name, net in (('residual' if not is_plain else 'plain (BN)', model),
                      ('rm-plain', plain_model)):
        complexity = count_complexity(net, shape)
        latency = (measure_latency(_TensorForward(net), inputs[:1], runs=latency_runs)
                   if latency_runs > 0 else None)
        rows.append((name, complexity, latency))

    name = osp.splitext(osp.basename(config))[0] + '_rm-plain'
    config_out = osp.join(out_dir, name + '.py')
    ckpt_out = osp.join(out_dir, name + '.pth')
    meta = dict(converted_from=osp.abspath(checkpoint), source_config=osp.abspath(config),
                config=osp.abspath(config_out), max_abs_diff=max(backbone_diff, output_diff),
                check_shape=list(shape))
    buffer = io.BytesIO()
    torch.save(dict(meta=meta, state_dict=plain_model.state_dict()), buffer)
    atomic_write(buffer.getvalue(), ckpt_out)
    atomic_write(plain_cfg.pretty_text.encode(), config_out)

    print(f'converted {checkpoint} -> {ckpt_out}')
    print(f'config: {config_out}')
    print(f'max abs diff (eval, input 2x3x{shape[0]}x{shape[1]}): backbone {backbone_diff:.2e}, '
          f'{"logits" if hasattr(model, "head") else "neck features"} {output_diff:.2e}')
    print(f'| model | params | GFLOPs | GMACs | latency bs1 (ms, median of {latency_runs}) |')
    print('|---|---|---|---|---|')
    for label, complexity, latency in rows:
        ms = f'{latency.median_ms:.2f}' if latency else '-'
        print(f'| {label} | {complexity.params:,} | {complexity.gflops:.4f} | '
              f'{complexity.gmacs:.4f} | {ms} |')
    return dict(config=config_out, checkpoint=ckpt_out, backbone_diff=backbone_diff,
                output_diff=output_diff, rows=rows)


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    if args.shape is not None and (len(args.shape) not in (1, 2) or min(args.shape) < 1):
        raise ValueError(f'--shape takes H W (or one size), got {args.shape}')
    return convert(args.config, args.checkpoint, args.out_dir, args.shape, args.tolerance,
                   args.latency_runs, args.cfg_options)


if __name__ == '__main__':
    main()
