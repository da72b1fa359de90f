# Faster R-CNN + FPN with an SK-ResNet*-50 backbone
# initialised from configs/imagenet/sk_resnet50_in1k.py.
_base_ = './_base_/faster_rcnn_fpn.py'
model = dict(
    backbone=dict(
        sk=dict(groups=32, ratio=16),
        init_cfg=dict(checkpoint='{{$RESVARIANTS_PRETRAINED:checkpoints/imagenet}}'
                      '/sk_resnet50_in1k.pth')))
