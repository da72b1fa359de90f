# Mask R-CNN + FPN with an SRM-ResNet-50 backbone
# initialised from configs/imagenet/srm_resnet50_in1k.py.
_base_ = './_base_/mask_rcnn_fpn.py'
model = dict(
    backbone=dict(
        attention=dict(type='SRM'),
        init_cfg=dict(checkpoint='{{$RESVARIANTS_PRETRAINED:checkpoints/imagenet}}'
                      '/srm_resnet50_in1k.pth')))
