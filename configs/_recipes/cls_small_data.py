# cls_small (Tiny-ImageNet, 10 classes, 64x64, 2000 train / 500 val images; see
# configs/demo/resnet50_cls-small.py) as a mixin for any mmpretrain config: put it in a
# `_base_` list beside the config and copy the cls_small_* values (e.g.
# configs/demo/resnet50_tricks_cls-small.py). Data root: $RESVARIANTS_DATA
# (default ../shared/data, relative to the repo root).
cls_small_root = '{{$RESVARIANTS_DATA:../shared/data}}/cls_small'
cls_small_num_classes = 10
cls_small_data_preprocessor = dict(num_classes=cls_small_num_classes)
cls_small_train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=cls_small_root,
        ann_file='meta/train.txt',
        data_prefix='train',
        classes=cls_small_root + '/meta/classes.txt',
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='RandomResizedCrop', scale=64, crop_ratio_range=(0.35, 1.0)),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='PackInputs'),
        ]))
cls_small_val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=cls_small_root,
        ann_file='meta/val.txt',
        data_prefix='val',
        classes=cls_small_root + '/meta/classes.txt',
        pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')]))
