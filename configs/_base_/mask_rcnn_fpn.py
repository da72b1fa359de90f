# Mask R-CNN + FPN on COCO (data/coco, mmdet layout), 1333x800, bbox + segm CocoMetric.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    './det_schedule_2x.py',
    './runtime_mmdet.py',
    './det_backbone.py',
]
model = dict(backbone={{_base_.det_backbone}})
