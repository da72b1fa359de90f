# Faster R-CNN + FPN with an ED-ResNet-50 backbone (ED path in every block; any input size)
# initialised from configs/imagenet/ed_resnet50_in1k.py.
_base_ = './_base_/faster_rcnn_fpn.py'
model = dict(
    backbone=dict(
        type='resvariants.EDResNet',
        depth=50,
        init_cfg=dict(checkpoint='{{$RESVARIANTS_PRETRAINED:checkpoints/imagenet}}'
                      '/ed_resnet50_in1k.pth')))
