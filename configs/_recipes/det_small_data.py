# det_small (COCO128 in COCO json: 96 train / 32 val images, boxes and masks) as a mixin for any
# mmdet config, at 512x384 for CPU runs: put it in a `_base_` list beside the config and copy
# the det_small_* values, e.g. configs/demo/faster-rcnn_sge-r50_fpn_det-small.py. Data root:
# $RESVARIANTS_DATA if set, else the copy that ships in the repo (tests/data/det_small).
det_small_root = '{{$RESVARIANTS_DATA:{{ fileDirname }}/../../tests/data}}/det_small/'
det_small_scale = (512, 384)
det_small_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=det_small_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
det_small_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=det_small_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
det_small_train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    dataset=dict(
        data_root=det_small_root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='images/'),
        pipeline=det_small_train_pipeline))
det_small_val_dataloader = dict(
    batch_size=2,
    num_workers=2,
    dataset=dict(
        data_root=det_small_root,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='images/'),
        pipeline=det_small_test_pipeline))
det_small_evaluator = dict(ann_file=det_small_root + 'annotations/instances_val.json')
