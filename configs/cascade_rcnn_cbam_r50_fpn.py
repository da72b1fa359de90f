# Cascade R-CNN + FPN with a CBAM-ResNet-50 backbone
# initialised from configs/imagenet/cbam_resnet50_in1k.py.
_base_ = './_base_/cascade_rcnn_fpn.py'
model = dict(
    backbone=dict(
        attention=dict(type='CBAM', ratio=16),
        init_cfg=dict(checkpoint='{{$RESVARIANTS_PRETRAINED:checkpoints/imagenet}}'
                      '/cbam_resnet50_in1k.pth')))
