# cls_small (Tiny-ImageNet, 10 classes, 64x64, 2000 train / 500 val images; see
# configs/demo/resnet50_cls-small.py) as a mixin for any mmpretrain config: put it in a
# `_base_` list beside the config and copy the cls_small_* values (e.g.
# configs/demo/resnet50_tricks_cls-small.py). Data root: $RESVARIANTS_DATA if set, else the
# copy that ships in the repo (tests/data/cls_small).
cls_small_root = '{{$RESVARIANTS_DATA:{{ fileDirname }}/../../tests/data}}/cls_small'
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

# The same data through the CIFAR pipeline of the "ResNet with No Res" source (images resized
# 64 -> 32, random 28x28 crop, horizontal + vertical flips; centre 28x28 crop for testing), for
# the CIFAR ResNet configs of projects/resnet_no_res/.
cls_small_cifar_train_dataloader = dict(
    batch_size=64,
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
            dict(type='Resize', scale=(32, 32)),
            dict(type='RandomCrop', crop_size=28),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='RandomFlip', prob=0.5, direction='vertical'),
            dict(type='PackInputs'),
        ]))
cls_small_cifar_val_dataloader = dict(
    batch_size=250,
    num_workers=2,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=cls_small_root,
        ann_file='meta/val.txt',
        data_prefix='val',
        classes=cls_small_root + '/meta/classes.txt',
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(32, 32)),
            dict(type='CenterCrop', crop_size=28),
            dict(type='PackInputs'),
        ]))
# test loaders: their own entries, since mmengine consumes a dict's `_delete_` on first use
cls_small_test_dataloader = cls_small_val_dataloader
cls_small_cifar_test_dataloader = cls_small_cifar_val_dataloader
