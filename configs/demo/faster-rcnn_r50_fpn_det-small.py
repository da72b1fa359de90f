# Demo stage 2: Faster R-CNN R50-FPN on det_small (COCO128: 96 train / 32 val images), with the
# backbone initialised from the demo classifier (stage 1) and zero missing / unexpected keys
# enforced by the StrictPretrained init. Small images (max 512x384) and 2 epochs: about
# 6 min on 2 CPU cores. Set the classifier checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# (default: work_dirs/demo/cls/epoch_4.pth, what tools/run_demo.sh writes).
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    '../_base_/runtime_mmdet.py',
    '../_recipes/det_small_data.py',
]
data_root = {{_base_.det_small_root}}
pretrained = 'work_dirs/demo/cls/epoch_4.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='resvariants.ResNet',
        depth=50,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='StrictPretrained', checkpoint=pretrained, prefix='backbone.')))

train_pipeline = {{_base_.det_small_train_pipeline}}
test_pipeline = {{_base_.det_small_test_pipeline}}
train_dataloader = {{_base_.det_small_train_dataloader}}
val_dataloader = {{_base_.det_small_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.det_small_evaluator}}
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1. / 3, by_epoch=False, begin=0, end=20),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=2, milestones=[2], gamma=0.1),
]
# evaluation is done once, by tools/test.py after training
train_cfg = dict(max_epochs=2, val_interval=100)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=1, max_keep_ckpts=2))
randomness = dict(seed=0)
auto_scale_lr = dict(base_batch_size=16)
