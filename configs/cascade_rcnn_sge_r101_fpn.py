# Cascade R-CNN + FPN with an SGE-ResNet-101 backbone
# initialised from configs/imagenet/sge_resnet101_in1k.py.
_base_ = './_base_/cascade_rcnn_fpn.py'
model = dict(
    backbone=dict(
        depth=101,
        attention=dict(type='SGE', groups=64),
        init_cfg=dict(checkpoint='{{$RESVARIANTS_PRETRAINED:checkpoints/imagenet}}'
                      '/sge_resnet101_in1k.pth')))
