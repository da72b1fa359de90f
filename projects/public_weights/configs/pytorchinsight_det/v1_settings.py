# What an mmdet v1 detector of the PytorchInsight detection fork (docs/architectures.md 1.13)
# needs to run in mmdet 3.x as it did there, once its weights are converted
# (tools/model_converters/pytorchinsight_det_to_mmdet.py). The *_fpn_v1.py configs beside this
# file apply it to our configs; it defines variables only (no model), so it can be a second base.
#
# * RPN: v1's anchors (LegacyAnchorGenerator, center_offset 0.5: centres at (stride - 1) / 2,
#   v1's "+1" corners, rounded; scale 8, ratios 0.5 / 1 / 2, strides 4-64; equal to v1's
#   formula, tested) and box coder (LegacyDeltaXYWHBBoxCoder: v1's "+1" widths); 2000
#   proposals kept before and after the per-level NMS (0.7), as the fork's test_cfg
#   (nms_pre = nms_post = max_num = 2000).
# * RoI heads: RoIAlign without the half-pixel alignment (aligned=False) and 2 samples per bin
#   (7x7 boxes, 14x14 masks); the legacy coder with the target stds of each (cascade) stage.
# * Pixels: RGB, ImageNet mean / std (x255), padded to a multiple of 32: the fork's img_norm_cfg
#   with to_rgb (its issue #8), not the caffe BGR values.
# Left as mmdet 3.x does them (mmdet's legacy_1.x README measures converted v1 models within
# 0.5 AP of v1): the legacy coder does not move decoded corners 0.5 px inwards as v1 did (mmdet's
# choice, +0.5 AP), and the RoI-to-FPN-level scale and NMS areas have no "+1". Training settings
# (assigners, losses) stay our configs' mmdet 3.x ones.
v1_data_preprocessor = dict(
    type='DetDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_size_divisor=32)
v1_rpn_head = dict(
    anchor_generator=dict(
        type='LegacyAnchorGenerator',
        center_offset=0.5,
        scales=[8],
        ratios=[0.5, 1.0, 2.0],
        strides=[4, 8, 16, 32, 64]),
    bbox_coder=dict(
        type='LegacyDeltaXYWHBBoxCoder',
        target_means=[.0, .0, .0, .0],
        target_stds=[1.0, 1.0, 1.0, 1.0]))
v1_rpn_proposals = dict(nms_pre=2000, max_per_img=2000, nms=dict(type='nms', iou_threshold=0.7),
                        min_bbox_size=0)
v1_bbox_roi_extractor = dict(
    roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=2, aligned=False))
v1_mask_roi_extractor = dict(
    roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=2, aligned=False))


v1_bbox_head = dict(
    bbox_coder=dict(type='LegacyDeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                    target_stds=[0.1, 0.1, 0.2, 0.2]))
# Cascade: three class-agnostic stages (a list replaces the base's list, so written in full)
v1_cascade_bbox_heads = [
    dict(type='Shared2FCBBoxHead', in_channels=256, fc_out_channels=1024, roi_feat_size=7,
         num_classes=80, reg_class_agnostic=True,
         bbox_coder=dict(type='LegacyDeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                         target_stds=stds),
         loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
         loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
    for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])]

v1_faster_rcnn = dict(
    data_preprocessor=v1_data_preprocessor,
    backbone=dict(init_cfg=None),  # the converted detector holds the backbone
    rpn_head=v1_rpn_head,
    roi_head=dict(bbox_roi_extractor=v1_bbox_roi_extractor, bbox_head=v1_bbox_head),
    train_cfg=dict(rpn_proposal=v1_rpn_proposals),
    test_cfg=dict(rpn=v1_rpn_proposals))
v1_mask_rcnn = dict(
    data_preprocessor=v1_data_preprocessor,
    backbone=dict(init_cfg=None),
    rpn_head=v1_rpn_head,
    roi_head=dict(bbox_roi_extractor=v1_bbox_roi_extractor, bbox_head=v1_bbox_head,
                  mask_roi_extractor=v1_mask_roi_extractor),
    train_cfg=dict(rpn_proposal=v1_rpn_proposals),
    test_cfg=dict(rpn=v1_rpn_proposals))
v1_cascade_rcnn = dict(
    data_preprocessor=v1_data_preprocessor,
    backbone=dict(init_cfg=None),
    rpn_head=v1_rpn_head,
    roi_head=dict(bbox_roi_extractor=v1_bbox_roi_extractor, bbox_head=v1_cascade_bbox_heads),
    train_cfg=dict(rpn_proposal=v1_rpn_proposals),
    test_cfg=dict(rpn=v1_rpn_proposals))
