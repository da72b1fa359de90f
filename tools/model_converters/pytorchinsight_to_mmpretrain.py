"""Convert a PytorchInsight classification checkpoint into an mmpretrain checkpoint.

    python tools/model_converters/pytorchinsight_to_mmpretrain.py SRC.pth.tar DST.pth \
        [--arch sge_resnet50] [--ignore-bn-evidence]

Every release converts: the ResNet-50/101 variants (plain, SE, SK*, CBAM, BAM, GC, SGE, SRM),
the weight-standardised nets (WS-ResNet-50/101, WS-ResNeXt-50/101 32x4d) and ShuffleNetV2 1x.
The architecture is inferred from the keys when they decide it. A plain-ResNet (ResNeXt) layout
fits both the plain and the weight-standardised network of resnet_ws.py (same keys and shapes);
the BatchNorm statistics decide between them when they can (were they produced by the raw or the
standardised conv weights? resvariants/converters/ws_evidence.py), and otherwise ``--arch`` is
required and its absence is an error naming both. An ``--arch`` that the statistics contradict
is refused too (``--ignore-bn-evidence`` overrides). ``--arch ws_resnet50_eshift`` (101 alike)
converts into the config of the e-shifted L2 recipe (the same network as ``ws_resnet50``).

SRC is read with weights-only loading (CUDA tensors are mapped to the CPU). The result loads
strictly into ``configs/imagenet/<arch>_in1k.py``; it is checked here by building that model and
loading with strict key and shape checks, so a mismatch is an error naming the keys, never a
silent partial load. DST is written atomically; its meta names the arch, the config and, when
the statistics were consulted, what they said (``arch_evidence``).
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
                        'the keys and, for a plain-ResNet layout, from the BatchNorm statistics; '
                        'required when they do not decide: resnet50 or ws_resnet50)')
    parser.add_argument('--ignore-bn-evidence', action='store_true',
                        help='convert as --arch even if the BatchNorm statistics say the other '
                        'of plain / weight-standardised')
    return parser.parse_args(argv)


def convert(src, dst, arch=None, ignore_bn_evidence=False):
    from resvariants.converters import convert_pytorchinsight_state_dict
    from resvariants.converters.pytorchinsight import (check_pytorchinsight_arch,
                                                       infer_pytorchinsight_arch,
                                                       pytorchinsight_arch_candidates)
    from resvariants.converters.resnet_layout import convert_release
    from resvariants.converters.ws_evidence import weight_standardisation_evidence

    def config_for(state):
        candidates = pytorchinsight_arch_candidates(state)  # refuses layouts outside the table
        evidence = weight_standardisation_evidence(state) if len(candidates) > 1 else None
        if arch is None:
            name = infer_pytorchinsight_arch(state, evidence)  # refuses when undecided
        else:
            check_pytorchinsight_arch(state, arch, evidence, ignore_evidence=ignore_bn_evidence)
            name = arch
        meta = {} if evidence is None else dict(arch_evidence=evidence.summary(),
                                                arch_named_by='--arch' if arch else 'evidence')
        return name, imagenet_config(name), meta

    return convert_release(src, dst, convert_pytorchinsight_state_dict, config_for)


def imagenet_config(arch):
    return osp.join(ROOT, 'configs', 'imagenet', f'{arch}_in1k.py')


def build_imagenet_model(arch):
    """The (randomly initialised) classifier of ``configs/imagenet/<arch>_in1k.py``."""
    from resvariants.engine.config_loading import build_model, read_config
    return build_model(read_config(imagenet_config(arch)))


def main(argv=None):
    args = parse_args(argv)
    return convert(args.src, args.dst, args.arch, args.ignore_bn_evidence)


if __name__ == '__main__':
    main()
