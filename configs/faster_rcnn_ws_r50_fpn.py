# Faster R-CNN + FPN with a WS-ResNet-50 backbone (mmcv ConvWS in every conv, BN frozen as
# in the other detectors) initialised from configs/imagenet/ws_resnet50_eshift_in1k.py.
_base_ = './_base_/faster_rcnn_fpn.py'
model = dict(
    backbone=dict(
        conv_cfg=dict(type='ConvWS'),
        init_cfg=dict(checkpoint='{{$RESVARIANTS_PRETRAINED:checkpoints/imagenet}}'
                      '/ws_resnet50_eshift_in1k.pth')))
