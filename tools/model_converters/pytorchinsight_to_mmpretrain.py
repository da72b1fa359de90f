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
    from resvariants.converters import (PI_ARCHS, convert_pytorchinsight_state_dict,
                                        infer_pytorchinsight_arch,
                                        pytorchinsight_arch_candidates)
    from resvariants.converters.resnet_layout import convert_release

    def config_for(state):
        name = arch
        if name is None:
            name = infer_pytorchinsight_arch(state)  # refuses an ambiguous layout, naming --arch
        elif name not in PI_ARCHS:
            raise ValueError(f'unknown arch {name!r}; valid: {", ".join(PI_ARCHS)}')
        elif name not in pytorchinsight_arch_candidates(state):
            raise ValueError(f'--arch {name} does not match the checkpoint, which is '
                             f'{" or ".join(pytorchinsight_arch_candidates(state))}')
        return name, imagenet_config(name)

    return convert_release(src, dst, convert_pytorchinsight_state_dict, config_for)


def imagenet_config(arch):
    return osp.join(ROOT, 'configs', 'imagenet', f'{arch}_in1k.py')


def build_imagenet_model(arch):
    """The (randomly initialised) classifier of ``configs/imagenet/<arch>_in1k.py``."""
    from resvariants.engine.config_loading import build_model, read_config
    return build_model(read_config(imagenet_config(arch)))


def main(argv=None):
    args = parse_args(argv)
    return convert(args.src, args.dst, args.arch)


if __name__ == '__main__':
    main()
