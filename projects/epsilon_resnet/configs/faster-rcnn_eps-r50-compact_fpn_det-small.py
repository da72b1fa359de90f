# Faster R-CNN R50-FPN on det_small (COCO128) with the COMPACT backbone of a trained
# epsilon-ResNet: the blocks it discarded are gone, and the backbone is initialised from the
# exported checkpoint with the StrictPretrained init (zero missing / unexpected keys).
# First export the classifier (see projects/epsilon_resnet/README.md):
#   python tools/model_converters/epsilon_compact.py CONFIG CKPT work_dirs/epsilon_resnet/compact
# which writes compact_backbone.py there; another directory: set $EPSILON_COMPACT_DIR.
_base_ = [
    '../../../configs/demo/faster-rcnn_r50_fpn_det-small.py',
    '{{$EPSILON_COMPACT_DIR:../../../work_dirs/epsilon_resnet/compact}}/compact_backbone.py',
]
model = dict(
    backbone={{_base_.compact_det_backbone}},
    neck=dict(in_channels={{_base_.compact_fpn_in_channels}}))
