# Cascade R-CNN + FPN with an SGE-ResNet-50 backbone
# initialised from configs/imagenet/sge_resnet50_in1k.py.
_base_ = './_base_/cascade_rcnn_fpn.py'
model = dict(
    backbone=dict(
        attention=dict(type='SGE', groups=64),
        init_cfg=dict(checkpoint='{{$RESVARIANTS_PRETRAINED:checkpoints/imagenet}}'
                      '/sge_resnet50_in1k.pth')))
