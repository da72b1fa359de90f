"""Print the 3-line summary of tools/run_demo.sh from the logs the runs wrote.

    python tools/misc/demo_summary.py --cls-dir work_dirs/demo/cls --det-dir work_dirs/demo/det \
        --test-dir work_dirs/demo/det_test

Line 1: the classifier's last validation top-1 / top-5 (mmpretrain ``accuracy/top1``).
Line 2: the detector's COCO bbox AP / AP50 / AP75 from ``tools/test.py`` (``coco/bbox_mAP*``).
Line 3: where the checkpoints are.
Exits non-zero with the reason when a figure cannot be found (a failed stage never looks done).
"""
import argparse
import glob
import json
import os.path as osp
import sys


def _records(work_dir):
    """Every json-lines record mmengine's logger wrote under ``work_dir`` (oldest run first)."""
    paths = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')) +
                   glob.glob(osp.join(work_dir, '*', '*.json')))
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        continue


def last_metrics(work_dir, key):
    """The last record of ``work_dir``'s logs that holds ``key``."""
    found = None
    for record in _records(work_dir):
        if key in record:
            found = record
    if found is None:
        raise LookupError(f'no {key!r} in the logs under {work_dir}')
    return found


def latest_checkpoint(work_dir):
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            return f.read().strip()
    ckpts = sorted(glob.glob(osp.join(work_dir, '*.pth')), key=osp.getmtime)
    if not ckpts:
        raise LookupError(f'no checkpoint in {work_dir}')
    return ckpts[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cls-dir', required=True)
    parser.add_argument('--det-dir', required=True)
    parser.add_argument('--test-dir', required=True)
    args = parser.parse_args(argv)
    try:
        cls = last_metrics(args.cls_dir, 'accuracy/top1')
        det = last_metrics(args.test_dir, 'coco/bbox_mAP_50')
        cls_ckpt, det_ckpt = latest_checkpoint(args.cls_dir), latest_checkpoint(args.det_dir)
    except LookupError as e:
        print(f'demo summary: {e}', file=sys.stderr)
        return 1
    top5 = cls.get('accuracy/top5')
    print(f'classifier: top-1 {cls["accuracy/top1"]:.1f} %'
          + (f' / top-5 {top5:.1f} %' if top5 is not None else '')
          + ' on the 500 cls_small val images (chance 10 %)')
    print(f'detector:   COCO bbox AP {det["coco/bbox_mAP"]:.3f} / AP50 {det["coco/bbox_mAP_50"]:.3f}'
          f' / AP75 {det["coco/bbox_mAP_75"]:.3f} on the det_small val images')
    print(f'checkpoints: classifier {cls_ckpt}, detector {det_ckpt}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
