# Faster R-CNN + FPN with a BAM-ResNet-101 backbone
# initialised from configs/imagenet/bam_resnet101_in1k.py.
_base_ = './_base_/faster_rcnn_fpn.py'
model = dict(
    backbone=dict(
        depth=101,
        attention=dict(type='BAM', ratio=16),
        init_cfg=dict(checkpoint='{{$RESVARIANTS_PRETRAINED:checkpoints/imagenet}}'
                      '/bam_resnet101_in1k.pth')))
