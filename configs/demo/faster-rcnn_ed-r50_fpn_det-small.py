# Faster R-CNN with an ED-ResNet-50 backbone on det_small (COCO128) at the full detection scale
# 1333x800 (the released ED-Net code only runs 224x224 inputs). A short check that the ED path
# trains in a detector: 16 iterations of 2 images from scratch (no ImageNet ED checkpoint here,
# so BN statistics are trained and no stage is frozen), no evaluation (a detector this young
# scores 0 mAP). From scratch, every block starts as the identity (zero-gamma last norm of the
# residual branch and of the ED decoder) and gradients are clipped as in mmdet's from-scratch
# recipes; without both, this run diverged (NaN after ~20 iterations at lr 0.01).
# To start from an ED classifier instead:
#   --cfg-options model.backbone.init_cfg="dict(type='StrictPretrained',checkpoint='PATH',
#                                                prefix='backbone.')"
_base_ = './faster-rcnn_r50_fpn_det-small.py'
model = dict(
    backbone=dict(type='resvariants.EDResNet', frozen_stages=-1, norm_eval=False,
                  zero_init_residual=True, init_cfg=None))
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))

img_scale = (1333, 800)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=16, val_interval=1000)
param_scheduler = [
    dict(type='LinearLR', start_factor=1. / 3, by_epoch=False, begin=0, end=8),
]
default_hooks = dict(logger=dict(interval=2),
                     checkpoint=dict(by_epoch=False, interval=16, max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size=2)  # each line: the mean of its 2 iterations
