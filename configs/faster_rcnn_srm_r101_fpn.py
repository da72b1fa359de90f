# Faster R-CNN + FPN with an SRM-ResNet-101 backbone
# initialised from configs/imagenet/srm_resnet101_in1k.py.
_base_ = './_base_/faster_rcnn_fpn.py'
model = dict(
    backbone=dict(
        depth=101,
        attention=dict(type='SRM'),
        init_cfg=dict(checkpoint='{{$RESVARIANTS_PRETRAINED:checkpoints/imagenet}}'
                      '/srm_resnet101_in1k.pth')))
