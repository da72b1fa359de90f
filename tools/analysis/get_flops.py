"""Parameters and GFLOPs of a config's model, in PytorchInsight's convention.

    python tools/analysis/get_flops.py configs/imagenet/sge_resnet50_in1k.py [--shape H W]

Prints ``Params:`` (all parameters of the built model) and ``GFLOPs:`` (PytorchInsight's
README column: MACs of conv/linear plus conv-bias, BN, ReLU and pooling elements), and the
plain conv+linear GMACs. Detector configs report the backbone + neck (the FPN features).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Count parameters and GFLOPs of a model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--shape', type=int, nargs='+', default=[224, 224],
                        help='input size: H W, or one number for a square input')
    parser.add_argument('--cfg-options', nargs='+', default=None,
                        help='key=value overrides, as in tools/train.py')
    return parser.parse_args(argv)


def build_model_from_config(path, cfg_options=None):
    """The config's model, without loading any pretrained weights (counting needs none)."""
    from resvariants.engine.config_loading import build_model, read_config
    return build_model(read_config(path, cfg_options), without_checkpoint=True)


def main(argv=None):
    args = parse_args(argv)
    shape = tuple(args.shape * 2 if len(args.shape) == 1 else args.shape)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f'--shape takes H W (or one size), got {args.shape}')
    import resvariants  # noqa: F401
    from resvariants.analysis import count_complexity
    model = build_model_from_config(args.config, args.cfg_options)
    result = count_complexity(model, shape)
    print(f'Config: {args.config}')
    print(f'Input shape: (1, 3, {shape[0]}, {shape[1]})')
    print(f'Params: {result.params:,} ({result.params / 1e6:.2f} M)')
    print(f'GFLOPs: {result.gflops:.4f}  (PytorchInsight counter convention)')
    print(f'GMACs (conv + linear only): {result.gmacs:.4f}')
    return result


if __name__ == '__main__':
    main()
