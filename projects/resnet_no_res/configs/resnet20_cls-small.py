# Smoke run of the teacher recipe on real data: CIFAR ResNet-20 on cls_small (Tiny-ImageNet,
# 10 classes, 2000 train / 500 val images), images resized 64 -> 32 so the source's CIFAR
# pipeline applies unchanged (random 28x28 crop, h + v flips; centre 28x28 crop for testing).
# Short schedule for 2 CPU cores: 15 epochs of 32 iterations, lr 0.1 x0.1 at epoch 12.
_base_ = ['./resnet20_1xb1024_cifar100.py']

data_root = '{{$RESVARIANTS_DATA:../shared/data}}/cls_small'
model = dict(head=dict(num_classes=10))
data_preprocessor = dict(num_classes=10)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32)),
    dict(type='RandomCrop', crop_size=28),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32)),
    dict(type='CenterCrop', crop_size=28),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=data_root,
        ann_file='meta/train.txt',
        data_prefix='train',
        classes=data_root + '/meta/classes.txt',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=250,
    num_workers=2,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=data_root,
        ann_file='meta/val.txt',
        data_prefix='val',
        classes=data_root + '/meta/classes.txt',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[12], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=15, val_interval=5)
default_hooks = dict(logger=dict(interval=16), checkpoint=dict(interval=5, max_keep_ckpts=1))
randomness = dict(seed=0)
auto_scale_lr = dict(base_batch_size=64)
