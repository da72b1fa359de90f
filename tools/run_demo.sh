#!/usr/bin/env bash
# The main job, end to end on the small real data in the repo (README command (a)):
#   1. set up .venv (tools/setup_env.sh; builds mmcv once, then cached)
#   2. pretrain a ResNet-18 classifier with mmpretrain on cls_small
#   3. train Faster R-CNN R18-FPN (person) on det_small from that backbone
#      (StrictPretrained init: the run fails if any backbone key is missing or unexpected)
#   4. tools/test.py: COCO bbox AP of the detector on the det_small val images
#   5. a 3-line summary: classifier top-1, detector AP / AP50, where the checkpoints are
# Data root: RESVARIANTS_DATA (default tests/data, in the repo). Work dir: work_dirs/demo.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash tools/setup_env.sh
PY=.venv/bin/python
export RESVARIANTS_DATA="${RESVARIANTS_DATA:-$ROOT/tests/data}"  # the small real datasets ship in the repo
WORK=work_dirs/demo
CLS_CFG=configs/demo/resnet18_cls-small.py
DET_CFG=configs/demo/faster-rcnn_r18_fpn_person_det-small.py
rm -rf "$WORK/cls" "$WORK/det" "$WORK/det_test"  # this demo's outputs only
T0=$SECONDS
stage_time() { printf '=== stage took %d min %02d s\n' $(((SECONDS - $1) / 60)) $(((SECONDS - $1) % 60)); }

echo "=== [1/3] pretraining ResNet-18 on cls_small ($RESVARIANTS_DATA/cls_small)"
T=$SECONDS
$PY tools/train.py "$CLS_CFG" --work-dir "$WORK/cls"
CLS_CKPT="$(cat "$WORK/cls/last_checkpoint")"
stage_time $T

echo "=== [2/3] training Faster R-CNN R18-FPN (person) on det_small from $CLS_CKPT"
T=$SECONDS
$PY tools/train.py "$DET_CFG" --work-dir "$WORK/det" \
    --cfg-options "model.backbone.init_cfg.checkpoint=$CLS_CKPT"
grep -h "StrictPretrained: loaded" "$WORK"/det/*/*.log | tail -1
DET_CKPT="$(cat "$WORK/det/last_checkpoint")"
stage_time $T

echo "=== [3/3] COCO evaluation with tools/test.py"
T=$SECONDS
$PY tools/test.py "$DET_CFG" "$DET_CKPT" --work-dir "$WORK/det_test"
stage_time $T

printf '=== demo finished in %d min %02d s (setup excluded)\n' $(((SECONDS - T0) / 60)) $(((SECONDS - T0) % 60))
$PY tools/misc/demo_summary.py --cls-dir "$WORK/cls" --det-dir "$WORK/det" --test-dir "$WORK/det_test"
