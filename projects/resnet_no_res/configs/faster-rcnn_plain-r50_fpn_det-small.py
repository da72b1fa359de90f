# Distillation route -> detection: Faster R-CNN R50-FPN on det_small whose backbone is the plain
# ResNet-50 distilled by plain-resnet50_stagewise-distill_cls-small.py (no shortcut modules;
# the StrictPretrained init fails on any missing / unexpected key). Schedule and data as
# configs/demo/faster-rcnn_r50_fpn_det-small.py. Checkpoint:
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['../../../configs/demo/faster-rcnn_r50_fpn_det-small.py']
pretrained = 'work_dirs/no_res/plain-resnet50_stagewise-distill_cls-small/iter_60.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='resvariants.PlainResNet',
        depth=50,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='StrictPretrained', checkpoint=pretrained, prefix='backbone.')))
