# Cascade R-CNN + FPN with a GC-ResNet-101 backbone
# initialised from configs/imagenet/gc_resnet101_in1k.py.
_base_ = './_base_/cascade_rcnn_fpn.py'
model = dict(
    backbone=dict(
        depth=101,
        attention=dict(type='ContextBlock', ratio=1. / 16),
        init_cfg=dict(checkpoint='{{$RESVARIANTS_PRETRAINED:checkpoints/imagenet}}'
                      '/gc_resnet101_in1k.pth')))
