# Demo stage 2 with an Oct-ResNet-50 backbone: configs/demo/faster-rcnn_r50_fpn_det-small.py
# with the octave backbone initialised (StrictPretrained, zero missing / unexpected keys) from
# the classifier of configs/demo/oct_resnet50_cls-small.py. Set it with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = './faster-rcnn_r50_fpn_det-small.py'
model = dict(
    backbone=dict(
        type='resvariants.OctResNet',
        alpha=0.5,
        init_cfg=dict(checkpoint='work_dirs/demo/oct_cls/epoch_4.pth')))
