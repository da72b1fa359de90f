# Mask R-CNN + FPN with a SE-ResNet-50 backbone
# initialised from configs/imagenet/se_resnet50_in1k.py.
_base_ = './_base_/mask_rcnn_fpn.py'
model = dict(
    backbone=dict(
        attention=dict(type='SEModule', ratio=16),
        init_cfg=dict(checkpoint='{{$RESVARIANTS_PRETRAINED:checkpoints/imagenet}}'
                      '/se_resnet50_in1k.pth')))
