# Demo stage 2 (tools/run_demo.sh): Faster R-CNN R18-FPN for one class, person (the most frequent
# class of det_small: 199 boxes in 44 of the 96 train images, 55 in 17 of the 32 val images),
# with the backbone initialised from the demo classifier (resnet18_cls-small.py) through
# StrictPretrained (zero missing / unexpected keys enforced). Sized for 2 CPU cores: images at
# most 320x240, FPN / RPN with 128 channels, a 512-wide box head over 128 sampled RoIs, 8 epochs.
# All 96 train images are used: the 52 without a person are negatives, which teaches the
# detector what is not a person (15 of the 32 val images hold none); the trials behind these
# choices are in README.md ("What was measured").
# Set the classifier checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = './faster-rcnn_r50_fpn_det-small.py'

classes = ('person', )
scale = (320, 240)
max_epochs = 8
pretrained = 'work_dirs/demo/cls/epoch_6.pth'

model = dict(
    backbone=dict(depth=18, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=128),
    rpn_head=dict(in_channels=128, feat_channels=128),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=128),
        bbox_head=dict(in_channels=128, fc_out_channels=512, num_classes=len(classes))),
    train_cfg=dict(rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=300)))

# the det_small pipelines (configs/_recipes/det_small_data.py) at this demo's scale
train_pipeline = [dict(t, scale=scale) if t['type'] == 'Resize' else t
                  for t in _base_.train_pipeline]
test_pipeline = [dict(t, scale=scale) if t['type'] == 'Resize' else t
                 for t in _base_.test_pipeline]
train_dataloader = dict(
    dataset=dict(metainfo=dict(classes=classes), filter_cfg=dict(filter_empty_gt=False),
                 pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(metainfo=dict(classes=classes), pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=0.02))
param_scheduler = [
    dict(type='LinearLR', start_factor=1. / 3, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs,
         milestones=[max_epochs - 1], gamma=0.1),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=100)  # evaluated by tools/test.py
