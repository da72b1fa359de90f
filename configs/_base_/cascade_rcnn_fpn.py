# Cascade R-CNN + FPN on COCO (data/coco, mmdet layout), 1333x800, bbox CocoMetric, 20 epochs.
_base_ = [
    'mmdet::_base_/models/cascade-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    './det_schedule_20e.py',
    './runtime_mmdet.py',
    './det_backbone.py',
]
model = dict(backbone={{_base_.det_backbone}})
