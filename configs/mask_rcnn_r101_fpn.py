# Mask R-CNN + FPN with a ResNet-101 backbone
# initialised from configs/imagenet/resnet101_in1k.py.
_base_ = './_base_/mask_rcnn_fpn.py'
model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(checkpoint='{{$RESVARIANTS_PRETRAINED:checkpoints/imagenet}}'
                      '/resnet101_in1k.pth')))
