#!/usr/bin/env bash
# The main job, end to end on the small real data (README command (a)):
#   1. set up .venv (tools/setup_env.sh; builds mmcv once, ~20-40 min, then cached)
#   2. pretrain a ResNet-50 classifier with mmpretrain on cls_small          (~2.5 min)
#   3. train Faster R-CNN R50-FPN on det_small from that backbone            (~6 min)
#      (StrictPretrained init: the run fails if any backbone key is missing or unexpected)
#   4. tools/test.py: COCO bbox mAP of the detector on det_small val         (~1 min)
# Data root: RESVARIANTS_DATA (default tests/data, in the repo). Work dir: work_dirs/demo.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash tools/setup_env.sh
PY=.venv/bin/python
export RESVARIANTS_DATA="${RESVARIANTS_DATA:-$ROOT/tests/data}"  # the small real datasets ship in the repo
WORK=work_dirs/demo
rm -rf "$WORK/cls" "$WORK/det" "$WORK/det_test"  # this demo's outputs only
echo "=== [1/3] pretraining ResNet-50 on cls_small ($RESVARIANTS_DATA/cls_small)"
$PY tools/train.py configs/demo/resnet50_cls-small.py --work-dir "$WORK/cls"
CLS_CKPT="$WORK/cls/epoch_4.pth"
echo "=== [2/3] training Faster R-CNN R50-FPN on det_small from $CLS_CKPT"
$PY tools/train.py configs/demo/faster-rcnn_r50_fpn_det-small.py --work-dir "$WORK/det" \
    --cfg-options "model.backbone.init_cfg.checkpoint=$CLS_CKPT"
grep -h "StrictPretrained: loaded" "$WORK"/det/*/*.log | tail -1
echo "=== [3/3] COCO evaluation with tools/test.py"
$PY tools/test.py configs/demo/faster-rcnn_r50_fpn_det-small.py "$WORK/det/epoch_2.pth" \
    --work-dir "$WORK/det_test"
echo "=== demo finished: classifier $CLS_CKPT, detector $WORK/det/epoch_2.pth"
