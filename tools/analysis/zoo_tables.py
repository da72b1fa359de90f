"""Model-zoo tables: the sources' reported figures beside our measured parameters and GFLOPs.

    python tools/analysis/zoo_tables.py imagenet   # PytorchInsight ImageNet table (224x224)
    python tools/analysis/zoo_tables.py detection  # detector backbones at 1333x800 (+ metafile.yml)

ImageNet rows compare every configs/imagenet PytorchInsight config with reference_figures.json
(the original code, measured) and the PytorchInsight README; a second table gives the ResNeXt-50/101
32x4d rows of every attention (configs/imagenet/*resnext*_32x4d_in1k.py), with the ED-Net README's
plain ResNeXt figures beside ours (no source publishes the attention ResNeXts). Detection rows give
the backbone-only
parameters and GFLOPs at 1333x800 (PytorchInsight's detection-table convention) and the source's
reported COCO AP, marked as reported by the source; measured AP is filled by later full runs.
With ``--write`` the tables go to docs/model_zoo.md (detection; configs/metafile.yml is regenerated)
or projects/pytorch_insight/imagenet_table.md (imagenet; paste it into that README).
"""
import argparse
import json
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
REFERENCE = osp.join(ROOT, 'tests', 'data', 'reference', 'reference_figures.json')

VARIANTS = [('', 'ResNet'), ('se_', 'SE-ResNet'), ('sk_', 'SK-ResNet*'), ('cbam_', 'CBAM-ResNet'),
            ('bam_', 'BAM-ResNet'), ('gc_', 'GC-ResNet'), ('sge_', 'SGE-ResNet'),
            ('srm_', 'SRM-ResNet')]
# the detection trunks: (config infix, table name, depth); ResNeXt-101 32x4d is x101_32x4d
TRUNKS = [('r50', 'ResNet', 50), ('r101', 'ResNet', 101), ('x101_32x4d', 'ResNeXt', 101)]
DETECTORS = [('faster_rcnn', 'Faster R-CNN'), ('mask_rcnn', 'Mask R-CNN'),
             ('cascade_rcnn', 'Cascade R-CNN')]
# PytorchInsight README detection table (COCO val AP / AP50 / AP75), docs/architectures.md 1.13
SOURCE_AP = {
    ('faster_rcnn', '', 50): (37.5, 59.1, 40.6), ('faster_rcnn', 'sge_', 50): (38.7, 60.8, 41.7),
    ('mask_rcnn', '', 50): (38.6, 60.0, 41.9), ('mask_rcnn', 'sge_', 50): (39.6, 61.5, 42.9),
    ('cascade_rcnn', '', 50): (41.1, 59.3, 44.8), ('cascade_rcnn', 'sge_', 50): (42.6, 61.4, 46.2),
    ('faster_rcnn', '', 101): (39.4, 60.7, 43.0), ('faster_rcnn', 'se_', 101): (40.4, 61.9, 44.2),
    ('faster_rcnn', 'sge_', 101): (41.0, 63.0, 44.3), ('mask_rcnn', '', 101): (40.4, 61.6, 44.2),
    ('mask_rcnn', 'se_', 101): (41.5, 63.0, 45.3), ('mask_rcnn', 'sge_', 101): (42.1, 63.7, 46.1),
    ('cascade_rcnn', '', 101): (42.6, 60.9, 46.4), ('cascade_rcnn', 'se_', 101): (43.4, 62.2, 47.2),
    ('cascade_rcnn', 'sge_', 101): (44.4, 63.2, 48.4),
}
SOURCE_BACKBONE = {('', 50): (23.51, 88.0), ('sge_', 50): (23.51, 88.1), ('', 101): (42.50, 167.9),
                   ('se_', 101): (47.28, 168.3), ('sge_', 101): (42.50, 168.1)}
# ED-Net README, plain ResNeXt 32x4d baselines (top-1 error, GFLOPs); docs/architectures.md 3.5
SOURCE_RESNEXT = {50: (22.59, 4.2), 101: (21.34, 8.0)}


def _trunk_name(variant_name, trunk):
    """'SE-ResNet' + ('x101_32x4d', 'ResNeXt', 101) -> 'SE-ResNeXt-101 32x4d'."""
    infix, family, depth = trunk
    name = variant_name.replace('ResNet', family)
    return f'{name}-{depth}' + (' 32x4d' if family == 'ResNeXt' else '')


def _reference(figures, variant, depth):
    if variant == 'gc_':
        return figures['pytorchinsight_constructed'][f'gc_resnet{depth}']
    if variant == 'srm_':
        return figures['third_party_reference_impls'][f'srm_resnet{depth}_official']
    return figures['pytorchinsight'][f'{variant}resnet{depth}']


def imagenet_table():
    from resvariants.analysis import count_complexity
    from tools.analysis.get_flops import build_model_from_config
    with open(REFERENCE) as f:
        figures = json.load(f)
    rows = ['| model | config | source #params | ours #params | source GFLOPs (README) | '
            'source GFLOPs (counter, measured) | ours GFLOPs | ours GMACs | source top-1 '
            '(reported) |', '|---|---|---|---|---|---|---|---|---|']
    for depth in (50, 101):
        for variant, name in VARIANTS:
            config = f'configs/imagenet/{variant}resnet{depth}_in1k.py'
            ref = _reference(figures, variant, depth)
            ours = count_complexity(build_model_from_config(osp.join(ROOT, config)), (224, 224))
            readme = ref.get('readme') or [None, None, None, None]
            top1 = f'{readme[2]:.3f}' if readme[2] else '—'
            readme_g = f'{readme[1]:.3f}' if readme[1] else '—'
            rows.append(f'| {name}-{depth} | `{config}` | {ref["params"]:,} | {ours.params:,} | '
                        f'{readme_g} | {ref["pytorchinsight_counter_G"]:.4f} | '
                        f'{ours.gflops:.4f} | {ours.gmacs:.4f} | {top1} |')
            print(rows[-1], flush=True)
    return '\n'.join(rows)


def resnext_imagenet_table():
    """ResNeXt-50/101 32x4d with every attention at 224x224: ours beside the source's figures."""
    from resvariants.analysis import count_complexity
    from tools.analysis.get_flops import build_model_from_config
    rows = ['| model | config | ours #params | ours GFLOPs | ours GMACs | source GFLOPs (ED-Net '
            'README) | source top-1 (ED-Net README, reported) |', '|---|---|---|---|---|---|---|']
    for depth in (50, 101):
        for variant, name in VARIANTS:
            config = f'configs/imagenet/{variant}resnext{depth}_32x4d_in1k.py'
            ours = count_complexity(build_model_from_config(osp.join(ROOT, config)), (224, 224))
            source = SOURCE_RESNEXT[depth] if not variant else None
            top1 = f'{100 - source[0]:.2f}' if source else '—'
            gflops = f'{source[1]:.1f}' if source else '—'
            rows.append(f'| {_trunk_name(name, ("", "ResNeXt", depth))} | `{config}` | '
                        f'{ours.params:,} | {ours.gflops:.4f} | {ours.gmacs:.4f} | {gflops} | '
                        f'{top1} |')
            print(rows[-1], flush=True)
    return '\n'.join(rows)


def detection_configs(det):
    """(config path, variant, trunk) of every zoo detector of type ``det``, in table order."""
    return [(f'configs/{det}_{variant}{trunk[0]}_fpn.py', variant, trunk)
            for trunk in TRUNKS for variant, _ in VARIANTS]


def detection_rows():
    from resvariants.analysis import count_complexity
    from tools.analysis.get_flops import build_model_from_config
    names = dict(VARIANTS)
    measured = {}
    for config, variant, trunk in detection_configs('faster_rcnn'):  # same backbone in all three
        backbone = build_model_from_config(osp.join(ROOT, config)).backbone
        result = count_complexity(backbone, (800, 1333))
        measured[(variant, trunk[0])] = (result.params / 1e6, result.gflops)
        print(f'{_trunk_name(names[variant], trunk)}: {result.params / 1e6:.2f} M, '
              f'{result.gflops:.1f} GFLOPs', flush=True)
    return measured


def detection_markdown(measured):
    out = []
    for det, det_name in DETECTORS:
        out += [f'### {det_name} + FPN (COCO, {"20" if det == "cascade_rcnn" else "24"} epochs)',
                '', '| backbone | config | backbone #params (ours) | backbone GFLOPs at 1333x800 '
                '(ours) | source #params / GFLOPs | AP / AP50 / AP75 reported by the source | '
                'AP measured here |', '|---|---|---|---|---|---|---|']
        names = dict(VARIANTS)
        for config, variant, trunk in detection_configs(det):
            params, gflops = measured[(variant, trunk[0])]
            source = trunk[1] == 'ResNet'  # the source's table has ResNet rows only
            src = SOURCE_BACKBONE.get((variant, trunk[2])) if source else None
            src = f'{src[0]:.2f}M / {src[1]:.1f}' if src else '—'
            ap = SOURCE_AP.get((det, variant, trunk[2])) if source else None
            ap = ' / '.join(f'{v:.1f}' for v in ap) if ap else '—'
            out.append(f'| {_trunk_name(names[variant], trunk)} | `{config}` | '
                       f'{params:.2f}M | {gflops:.1f} | {src} | {ap} | — |')
        out.append('')
    return '\n'.join(out)


def metafile(measured):
    lines = ['Collections:']
    for det, det_name in DETECTORS:
        lines += [f'  - Name: {det_name} (resvariants)', '    Metadata:',
                  '      Training Data: COCO', '      Training Techniques: [SGD with Momentum]',
                  '      Architecture: [FPN, ResNet]', '    Paper:',
                  '      Title: PytorchInsight (implus) detection fork, see '
                  'projects/pytorch_insight/README.md']
    lines.append('Models:')
    for det, det_name in DETECTORS:
        for cfg, variant, trunk in detection_configs(det):
            params, gflops = measured[(variant, trunk[0])]
            lines += [f'  - Name: {osp.splitext(osp.basename(cfg))[0]}',
                      f'    In Collection: {det_name} (resvariants)', f'    Config: {cfg}',
                      '    Metadata:', '      Training Data: COCO',
                      f'      Epochs: {20 if det == "cascade_rcnn" else 24}',
                      f'      Backbone Parameters (M): {params:.2f}',
                      f'      Backbone FLOPs (G, 1333x800): {gflops:.1f}']
            ap = SOURCE_AP.get((det, variant, trunk[2])) if trunk[1] == 'ResNet' else None
            if ap:
                lines += ['      Reported By Source (not measured here):',
                          f'        box AP: {ap[0]}', f'        box AP50: {ap[1]}',
                          f'        box AP75: {ap[2]}']
            lines += ['    Results: []']
    return '\n'.join(lines) + '\n'


TABLES_START = f'### {DETECTORS[0][1]} + FPN'


def _write_zoo_doc(tables):
    """Replace the tables of docs/model_zoo.md (everything from the first table's heading, so
    the sections above it stay)."""
    from resvariants.engine.atomic_backend import atomic_write
    path = osp.join(ROOT, 'docs', 'model_zoo.md')
    with open(path) as f:
        text = f.read()
    head = text[:text.index(TABLES_START)] if TABLES_START in text else text + '\n'
    atomic_write((head + tables).encode(), path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('kind', choices=['imagenet', 'detection'])
    parser.add_argument('--write', action='store_true',
                        help='write docs/model_zoo.md + configs/metafile.yml (detection) or '
                             'projects/pytorch_insight/imagenet_table.md (imagenet)')
    args = parser.parse_args(argv)
    import resvariants  # noqa: F401
    from resvariants.engine.atomic_backend import atomic_write
    if args.kind == 'imagenet':
        table = imagenet_table() + '\n\n' + resnext_imagenet_table()
        print(table)
        if args.write:
            atomic_write((table + '\n').encode(),
                         osp.join(ROOT, 'projects', 'pytorch_insight', 'imagenet_table.md'))
    else:
        measured = detection_rows()
        text = detection_markdown(measured)
        print(text)
        if args.write:
            _write_zoo_doc(text)
            atomic_write(metafile(measured).encode(), osp.join(ROOT, 'configs', 'metafile.yml'))


if __name__ == '__main__':
    main()
