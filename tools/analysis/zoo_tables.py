"""Model-zoo tables: the sources' reported figures beside our measured parameters and GFLOPs.

    python tools/analysis/zoo_tables.py imagenet   # PytorchInsight ImageNet table (224x224)
    python tools/analysis/zoo_tables.py detection  # detector backbones at 1333x800 (+ metafile.yml)

ImageNet rows compare every configs/imagenet PytorchInsight config with reference_figures.json
(the original code, measured) and the PytorchInsight README. Detection rows give the backbone-only
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


def detection_rows():
    from resvariants.analysis import count_complexity
    from tools.analysis.get_flops import build_model_from_config
    measured = {}
    for depth in (50, 101):
        for variant, name in VARIANTS:
            config = osp.join(ROOT, 'configs', f'faster_rcnn_{variant}r{depth}_fpn.py')
            backbone = build_model_from_config(config).backbone
            result = count_complexity(backbone, (800, 1333))
            measured[(variant, depth)] = (result.params / 1e6, result.gflops)
            print(f'{name}-{depth}: {result.params / 1e6:.2f} M, {result.gflops:.1f} GFLOPs',
                  flush=True)
    return measured


def detection_markdown(measured):
    out = []
    for det, det_name in DETECTORS:
        out += [f'### {det_name} + FPN (COCO, {"20" if det == "cascade_rcnn" else "24"} epochs)',
                '', '| backbone | config | backbone #params (ours) | backbone GFLOPs at 1333x800 '
                '(ours) | source #params / GFLOPs | AP / AP50 / AP75 reported by the source | '
                'AP measured here |', '|---|---|---|---|---|---|---|']
        for depth in (50, 101):
            for variant, name in VARIANTS:
                params, gflops = measured[(variant, depth)]
                src = SOURCE_BACKBONE.get((variant, depth))
                src = f'{src[0]:.2f}M / {src[1]:.1f}' if src else '—'
                ap = SOURCE_AP.get((det, variant, depth))
                ap = ' / '.join(f'{v:.1f}' for v in ap) if ap else '—'
                out.append(f'| {name}-{depth} | `configs/{det}_{variant}r{depth}_fpn.py` | '
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
        for depth in (50, 101):
            for variant, name in VARIANTS:
                params, gflops = measured[(variant, depth)]
                cfg = f'configs/{det}_{variant}r{depth}_fpn.py'
                lines += [f'  - Name: {det}_{variant}r{depth}_fpn',
                          f'    In Collection: {det_name} (resvariants)', f'    Config: {cfg}',
                          '    Metadata:', '      Training Data: COCO',
                          f'      Epochs: {20 if det == "cascade_rcnn" else 24}',
                          f'      Backbone Parameters (M): {params:.2f}',
                          f'      Backbone FLOPs (G, 1333x800): {gflops:.1f}']
                ap = SOURCE_AP.get((det, variant, depth))
                if ap:
                    lines += ['      Reported By Source (not measured here):',
                              f'        box AP: {ap[0]}', f'        box AP50: {ap[1]}',
                              f'        box AP75: {ap[2]}']
                lines += ['    Results: []']
    return '\n'.join(lines) + '\n'


def _write_zoo_doc(tables):
    """Replace the tables of docs/model_zoo.md (everything from the first '### ' heading)."""
    from resvariants.engine.atomic_backend import atomic_write
    path = osp.join(ROOT, 'docs', 'model_zoo.md')
    with open(path) as f:
        text = f.read()
    head = text[:text.index('### ')] if '### ' in text else text + '\n'
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
        table = imagenet_table()
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
