"""Write (or check) the SyncBN variant of every detection zoo config.

    python tools/misc/make_syncbn_configs.py          # write the missing / outdated ones
    python tools/misc/make_syncbn_configs.py --check  # exit 1 if any is missing / outdated

``configs/{faster_rcnn,mask_rcnn,cascade_rcnn}_<variant>_r<depth>_fpn.py`` gets
``configs/syncbn/<same stem without _fpn>_syncbn_fpn.py``: mmdet's ``*-syncbn`` recipe (gcnet,
objects365 configs), i.e. the backbone BN synchronized over all GPUs of all nodes and trained
(``norm_cfg=SyncBN``, ``norm_eval=False``), plus ``GlobalBatchLrRescaleHook`` so that a run
resumed on another world size keeps ``auto_scale_lr``'s lr; everything else, ``auto_scale_lr``
included, is inherited from the zoo config.
"""
import argparse
import glob
import os.path as osp
import re
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ZOO_PATTERN = re.compile(r'^(faster_rcnn|mask_rcnn|cascade_rcnn)_(?:[a-z]+_)?r\d+_fpn\.py$')
ATTENTION_BN_NOTE = {
    'bam': 'BAM', 'cbam': 'CBAM', 'sk': 'SK', 'srm': 'SRM'}

TEMPLATE = """\
# {description}, synchronized BN (mmdet's `-syncbn` recipe):
# backbone BN statistics over all GPUs of all nodes, trained (norm_eval=False); stem and
# stage 1 stay frozen. Needs CUDA and a distributed launch (tools/dist_train.sh,
# tools/slurm_train.sh); docs/distributed.md.{extra}
_base_ = '../{zoo_name}'
model = dict(
    backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True), norm_eval=False))
# `--resume` on another world size with `--auto-scale-lr`: lr rescaled to the new global batch
custom_hooks = [dict(type='resvariants.GlobalBatchLrRescaleHook')]
"""


def zoo_configs(root=ROOT):
    """File names of the detection zoo configs (configs/*_r<depth>_fpn.py)."""
    names = [osp.basename(p) for p in glob.glob(osp.join(root, 'configs', '*_fpn.py'))]
    return sorted(n for n in names if ZOO_PATTERN.match(n))


def syncbn_name(zoo_name):
    """``faster_rcnn_se_r50_fpn.py`` -> ``faster_rcnn_se_r50_syncbn_fpn.py``."""
    if not zoo_name.endswith('_fpn.py'):
        raise ValueError(f'not a detection zoo config name: {zoo_name}')
    return zoo_name[:-len('_fpn.py')] + '_syncbn_fpn.py'


def syncbn_config_text(zoo_name, root=ROOT):
    with open(osp.join(root, 'configs', zoo_name)) as f:
        first_line = f.readline().strip()
    description = first_line.lstrip('# ').rstrip('.') or zoo_name
    variant = zoo_name.split('_')[2]
    extra = ''
    if variant in ATTENTION_BN_NOTE:
        extra = (f'\n# The BN layers inside the {ATTENTION_BN_NOTE[variant]} modules stay per-GPU '
                 f'BN; add\n# `--cfg-options sync_bn=torch` to synchronize them too.')
    return TEMPLATE.format(description=description, zoo_name=zoo_name, extra=extra)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--check', action='store_true',
                        help='only report missing or outdated SyncBN configs')
    args = parser.parse_args(argv)
    stale = []
    for zoo_name in zoo_configs():
        path = osp.join(ROOT, 'configs', 'syncbn', syncbn_name(zoo_name))
        text = syncbn_config_text(zoo_name)
        current = open(path).read() if osp.exists(path) else None
        if current == text:
            continue
        stale.append(osp.relpath(path, ROOT))
        if not args.check:
            with open(path, 'w') as f:
                f.write(text)
    verb = 'outdated or missing' if args.check else 'written'
    print(f'{len(stale)} SyncBN configs {verb}' + ''.join(f'\n  {p}' for p in stale))
    return 1 if args.check and stale else 0


if __name__ == '__main__':
    sys.exit(main())
