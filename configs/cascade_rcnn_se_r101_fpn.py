# Cascade R-CNN + FPN with a SE-ResNet-101 backbone
# initialised from configs/imagenet/se_resnet101_in1k.py.
_base_ = './_base_/cascade_rcnn_fpn.py'
model = dict(
    backbone=dict(
        depth=101,
        attention=dict(type='SEModule', ratio=16),
        init_cfg=dict(checkpoint='{{$RESVARIANTS_PRETRAINED:checkpoints/imagenet}}'
                      '/se_resnet101_in1k.pth')))
