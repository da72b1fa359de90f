"""Print parameters and GFLOPs of every ED path config beside the source's table.

    python projects/ed_path/flops_table.py [--shape H W] [--only NAME ...]

GFLOPs are resvariants.analysis.count_complexity's (PytorchInsight's counter convention: conv /
linear MACs plus BN, ReLU and pooling elements), i.e. what tools/analysis/get_flops.py prints.
The source column is the ED-Net README (reference_figures.json ``ed_net.readme``); "-" where the
README gives none.
"""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis'))

#: config name -> row of the source's table
ROWS = [
    ('ed_resnet50', 'ResNet-50+ED'), ('ed_resnet50-a', 'ED-ResNet-50-A'),
    ('ed_resnet50-b', 'ED-ResNet-50-B'), ('ed_resnet101', 'ResNet-101+ED'),
    ('ed_resnet101-a', 'ED-ResNet-101-A'), ('ed_resnet101-b', 'ED-ResNet-101-B'),
    ('ed_resnet152', 'ResNet-152+ED'), ('ed_resnet152-a', 'ED-ResNet-152-A'),
    ('ed_resnet152-b', 'ED-ResNet-152-B'), ('ed_resnext50', 'ResNeXt-50+ED'),
    ('ed_resnext50-a', 'ED-ResNeXt-50-A'), ('ed_resnext50-b', 'ED-ResNeXt-50-B'),
    ('ed_resnext101', 'ResNeXt-101+ED'), ('ed_resnext101-a', 'ED-ResNeXt-101-A'),
    ('ed_resnext101-b', 'ED-ResNeXt-101-B'), ('ed_se_resnet50', None),
]
FIGURES = osp.join(ROOT, 'tests', 'data', 'reference', 'reference_figures.json')


def source_table():
    import json
    if not osp.isfile(FIGURES):
        return {}
    with open(FIGURES) as f:
        return json.load(f)['ed_net']['readme']


def main(argv=None):
    parser = argparse.ArgumentParser(description='ED path params / GFLOPs table')
    parser.add_argument('--shape', type=int, nargs=2, default=[224, 224])
    parser.add_argument('--only', nargs='+', help='config names (default: all)')
    args = parser.parse_args(argv)
    import resvariants  # noqa: F401
    from get_flops import build_model_from_config

    from resvariants.analysis import count_complexity
    source = source_table()
    print('| config | branch_ratio | params (M) | GFLOPs (ours) | GMACs | GFLOPs (source) '
          '| delta |')
    print('|---|---|---|---|---|---|---|')
    for name, row in ROWS:
        if args.only and name not in args.only:
            continue
        path = osp.join(ROOT, 'configs', 'imagenet', f'{name}_in1k.py')
        model = build_model_from_config(path)
        result = count_complexity(model, tuple(args.shape))
        reference = source.get(row, [None] * 3)[2] if row else None
        delta = f'{100 * (result.gflops / reference - 1):+.1f}%' if reference else '-'
        print(f'| {name} | {model.backbone.branch_ratio:g} | {result.params / 1e6:.2f} '
              f'| {result.gflops:.3f} | {result.gmacs:.3f} | {reference or "-"} | {delta} |',
              flush=True)


if __name__ == '__main__':
    main()
