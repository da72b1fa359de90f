# Faster R-CNN + FPN with a ResNet-50 backbone
# initialised from configs/imagenet/resnet50_in1k.py.
_base_ = './_base_/faster_rcnn_fpn.py'
model = dict(
    backbone=dict(
        init_cfg=dict(checkpoint='{{$RESVARIANTS_PRETRAINED:checkpoints/imagenet}}'
                      '/resnet50_in1k.pth')))
