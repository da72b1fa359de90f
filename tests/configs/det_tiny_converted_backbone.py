# Integration test: the demo Faster R-CNN R50-FPN for 2 iterations at 320x256 with the backbone
# from a converted public checkpoint (set model.backbone.init_cfg.checkpoint). StrictPretrained
# (from the demo config) fails on any missing / unexpected / mis-shaped trunk key.
_base_ = '../../configs/demo/faster-rcnn_r50_fpn_det-small.py'
img_scale = (320, 256)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(num_workers=0, persistent_workers=False,
                        dataset=dict(pipeline=train_pipeline))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=2, val_interval=1000)
# the test checkpoint is random (not ImageNet-trained): a small, clipped step keeps it finite
optim_wrapper = dict(optimizer=dict(lr=0.002), clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [dict(type='LinearLR', start_factor=1. / 3, by_epoch=False, begin=0, end=2)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(by_epoch=False, interval=2))
log_processor = dict(by_epoch=False)
