# Mask R-CNN + FPN with an SGE-ResNeXt-101 (32x4d) backbone: mask_rcnn_sge_r101_fpn.py
# with 32 groups of width 4, initialised from configs/imagenet/sge_resnext101_32x4d_in1k.py.
_base_ = './mask_rcnn_sge_r101_fpn.py'
model = dict(
    backbone=dict(
        groups=32,
        base_width=4,
        init_cfg=dict(checkpoint='{{$RESVARIANTS_PRETRAINED:checkpoints/imagenet}}'
                      '/sge_resnext101_32x4d_in1k.pth')))
