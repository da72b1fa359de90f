# Cascade R-CNN + FPN with a GC-ResNet-50 backbone
# initialised from configs/imagenet/gc_resnet50_in1k.py.
_base_ = './_base_/cascade_rcnn_fpn.py'
model = dict(
    backbone=dict(
        attention=dict(type='ContextBlock', ratio=1. / 16),
        init_cfg=dict(checkpoint='{{$RESVARIANTS_PRETRAINED:checkpoints/imagenet}}'
                      '/gc_resnet50_in1k.pth')))
