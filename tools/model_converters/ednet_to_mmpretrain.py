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
    from resvariants.converters import convert_ednet_state_dict, infer_ednet_arch
    from resvariants.converters.resnet_layout import convert_release

    def config_for(state):
        arch, branch_ratio = infer_ednet_arch(state)
        if config is not None:
            return arch, config
        if abs(branch_ratio - 1) > 1e-6:
            raise ValueError(f'{src} is a reduced-width {arch} (residual branch at '
                             f'{branch_ratio:.3f} of full width); pass --config with the '
                             f'matching branch_ratio, e.g. configs/imagenet/{arch}-a_in1k.py')
        path = osp.join(ROOT, 'configs', 'imagenet', f'{arch}_in1k.py')
        if not osp.isfile(path):
            raise FileNotFoundError(f'no config for the inferred architecture {arch} ({path});'
                                    f' pass --config')
        return arch, path

    return convert_release(src, dst, convert_ednet_state_dict, config_for)


def main(argv=None):
    args = parse_args(argv)
    return convert(args.src, args.dst, args.config)


if __name__ == '__main__':
    main()
