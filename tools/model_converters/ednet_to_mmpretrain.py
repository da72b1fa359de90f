"""Convert an ED-Net (megvii-research/ED-Net) checkpoint into an mmpretrain checkpoint.

    python tools/model_converters/ednet_to_mmpretrain.py SRC DST [--config CONFIG]

SRC (a ``state_dict`` or ``{'state_dict': ...}`` file, ``module.`` prefixes allowed) is read with
weights-only loading. The architecture (ED50 / ED101 / ED152 / EDX50 / EDX101 / EDSE50) is
inferred from the keys and the result is checked by loading it, with strict key and shape
checks, into ``configs/imagenet/<arch>_in1k.py`` (or ``--config``, e.g. for a reduced-width -A/-B
model): a mismatch is an error naming the keys. The converted classifier gives the same logits
as the original network on a 224 input, and also runs at any other input size. DST is written
atomically.
"""
import argparse
import io
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('src', help='ED-Net checkpoint (.pth / .pth.tar)')
    parser.add_argument('dst', help='output mmpretrain checkpoint (.pth)')
    parser.add_argument('--config', help='mmpretrain config of the target model (default: '
                        'configs/imagenet/<inferred arch>_in1k.py)')
    return parser.parse_args(argv)


def convert(src, dst, config=None):
    import torch

    from resvariants.converters import convert_ednet_state_dict, infer_ednet_arch
    from resvariants.engine.atomic_backend import atomic_write
    from resvariants.engine.strict_pretrained import load_state_dict_strictly
    from resvariants.utils import load_checkpoint_safely, state_dict_of
    checkpoint = load_checkpoint_safely(src, map_location='cpu')
    state = state_dict_of(checkpoint, src)
    arch, branch_ratio = infer_ednet_arch(state)
    if config is None:
        if abs(branch_ratio - 1) > 1e-6:
            raise ValueError(f'{src} is a reduced-width {arch} (residual branch at '
                             f'{branch_ratio:.3f} of full width); pass --config with the '
                             f'matching branch_ratio, e.g. configs/imagenet/{arch}-a_in1k.py')
        config = osp.join(ROOT, 'configs', 'imagenet', f'{arch}_in1k.py')
        if not osp.isfile(config):
            raise FileNotFoundError(f'no config for the inferred architecture {arch} ({config});'
                                    f' pass --config')
    converted = convert_ednet_state_dict(state)
    model = build_classifier(config)
    load_state_dict_strictly(model, converted, source=f'converted {src}')
    meta = dict(converted_from=osp.basename(src), arch=arch, config=osp.relpath(config, ROOT))
    for key in ('epoch', 'best_acc', 'best_prec1'):
        if key in checkpoint:
            value = checkpoint[key]
            meta[key] = value.item() if hasattr(value, 'item') else value
    buffer = io.BytesIO()
    torch.save(dict(meta=meta, state_dict=model.state_dict()), buffer)
    atomic_write(buffer.getvalue(), dst)
    print(f'converted {src} ({arch}, {len(converted)} tensors) -> {dst}')
    return dst


def build_classifier(config):
    """Build the (randomly initialised) mmpretrain model of ``config``."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from resvariants.engine.config_loading import register_scope
    register_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(config)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg.model)


def main(argv=None):
    args = parse_args(argv)
    return convert(args.src, args.dst, args.config)


if __name__ == '__main__':
    main()
