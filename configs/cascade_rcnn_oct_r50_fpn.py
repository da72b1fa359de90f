# Cascade R-CNN + FPN with an Oct-ResNet-50 (alpha 0.5) backbone initialised from
# configs/imagenet/oct_resnet50_in1k.py. The backbone returns one tensor per stage (the
# low-frequency part upsampled and concatenated to the high one), so the FPN is unchanged.
_base_ = './_base_/cascade_rcnn_fpn.py'
model = dict(
    backbone=dict(
        type='resvariants.OctResNet',
        alpha=0.5,
        init_cfg=dict(checkpoint='{{$RESVARIANTS_PRETRAINED:checkpoints/imagenet}}'
                      '/oct_resnet50_in1k.pth')))
