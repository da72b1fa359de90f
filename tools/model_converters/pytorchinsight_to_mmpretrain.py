"""Convert a PytorchInsight classification checkpoint into an mmpretrain checkpoint.

    python tools/model_converters/pytorchinsight_to_mmpretrain.py SRC.pth.tar DST.pth \
        [--arch sge_resnet50]

The architecture is inferred from the keys when they decide it; a plain-ResNet layout fits both
``resnet<d>`` and the weight-standardised ``ws_resnet<d>`` (PytorchInsight's resnet_ws.py: same
keys and shapes), so for it ``--arch`` is required and its absence is an error naming both.

SRC is read with weights-only loading (CUDA tensors are mapped to the CPU). The result loads
strictly into ``configs/imagenet/<arch>_in1k.py``; it is checked here by building that model and
loading with strict key and shape checks, so a mismatch is an error naming the keys, never a
silent partial load. DST is written atomically.
"""
import argparse
import io
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('src', help='PytorchInsight checkpoint (.pth.tar)')
    parser.add_argument('dst', help='output mmpretrain checkpoint (.pth)')
    parser.add_argument('--arch', help='architecture, e.g. sge_resnet50 (default: inferred from '
                        'the keys; required for a plain-ResNet layout: resnet50 or ws_resnet50)')
    return parser.parse_args(argv)


def convert(src, dst, arch=None):
    import torch

    from resvariants.converters import (PI_ARCHS, convert_pytorchinsight_state_dict,
                                        infer_pytorchinsight_arch,
                                        pytorchinsight_arch_candidates)
    from resvariants.engine.atomic_backend import atomic_write
    from resvariants.engine.strict_pretrained import load_state_dict_strictly
    from resvariants.utils import load_checkpoint_safely, state_dict_of
    checkpoint = load_checkpoint_safely(src, map_location='cpu')
    state = state_dict_of(checkpoint, src)
    if arch is None:
        arch = infer_pytorchinsight_arch(state)  # refuses an ambiguous layout, naming --arch
    elif arch not in PI_ARCHS:
        raise ValueError(f'unknown arch {arch!r}; valid: {", ".join(PI_ARCHS)}')
    else:
        candidates = pytorchinsight_arch_candidates(state)
        if arch not in candidates:
            raise ValueError(f'--arch {arch} does not match the checkpoint, which is '
                             f'{" or ".join(candidates)}')
    converted = convert_pytorchinsight_state_dict(state)
    model = build_imagenet_model(arch)
    load_state_dict_strictly(model, converted, source=f'converted {src}')
    meta = dict(converted_from=osp.basename(src), arch=arch,
                config=f'configs/imagenet/{arch}_in1k.py')
    for key in ('epoch', 'best_acc'):
        if key in checkpoint:
            value = checkpoint[key]
            meta[key] = value.item() if hasattr(value, 'item') else value
    buffer = io.BytesIO()
    torch.save(dict(meta=meta, state_dict=model.state_dict()), buffer)
    atomic_write(buffer.getvalue(), dst)
    print(f'converted {src} ({arch}, {len(converted)} tensors) -> {dst}')
    return dst


def build_imagenet_model(arch):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from resvariants.engine.config_loading import register_scope
    register_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'imagenet', f'{arch}_in1k.py'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg.model)


def main(argv=None):
    args = parse_args(argv)
    return convert(args.src, args.dst, args.arch)


if __name__ == '__main__':
    main()
