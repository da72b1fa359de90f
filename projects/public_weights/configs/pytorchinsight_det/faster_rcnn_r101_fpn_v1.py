# Faster R-CNN + FPN, ResNet-101, holding a converted PytorchInsight detection-fork (mmdet v1)
# checkpoint: configs/faster_rcnn_r101_fpn.py with the fork's v1 inference settings
# (v1_settings.py). Convert with tools/model_converters/pytorchinsight_det_to_mmdet.py, then run
# tools/test.py with this config and the converted file.
_base_ = ['../../../../configs/faster_rcnn_r101_fpn.py', './v1_settings.py']
model = {{_base_.v1_faster_rcnn}}
