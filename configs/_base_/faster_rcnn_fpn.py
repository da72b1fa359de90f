# Faster R-CNN + FPN on COCO (data/coco, mmdet layout), 1333x800, bbox CocoMetric.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    './det_schedule_2x.py',
    './runtime_mmdet.py',
    './det_backbone.py',
]
model = dict(backbone={{_base_.det_backbone}})
