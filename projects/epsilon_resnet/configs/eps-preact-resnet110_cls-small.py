# Real-data smoke run of the CIFAR recipe (eps-preact-resnet110_cifar10.py) on cls_small
# (Tiny-ImageNet, 10 classes; 500 of the 2000 training images, resized to 32x32 to match the
# CIFAR network), batch 64 (lr 0.05, the source's 0.1 is for batch 128): epsilon 0 in epoch 1,
# then 12.0, large enough to close some gates of a freshly initialised network (its branch
# outputs reach 7-20), and compressed LR schedules. 8 iterations per epoch, 4 epochs: a few
# minutes on 2 CPU cores. Data root: $RESVARIANTS_DATA (default tests/data).
_base_ = './eps-preact-resnet110_cifar10.py'

data_root = '{{$RESVARIANTS_DATA:{{ fileDirname }}/../../../tests/data}}/cls_small'
data_preprocessor = dict(mean=[123.675, 116.28, 103.53], to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32)),
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32)),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64, num_workers=2,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root,
                 ann_file='meta/train.txt', data_prefix='train',
                 indices=list(range(0, 2000, 4)),
                 classes=data_root + '/meta/classes.txt', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=100, num_workers=2,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root,
                 ann_file='meta/val.txt', data_prefix='val',
                 classes=data_root + '/meta/classes.txt', pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=4)
optim_wrapper = dict(optimizer=dict(lr=0.05))
custom_hooks = [
    dict(type='resvariants.EpsilonResNetHook', epsilon=12.0, begin_epoch=1),
    dict(type='resvariants.EpsilonAdaptiveLRHook', schedule=((0, 0.05), (2, 0.005)),
         restart_schedule=((0, 0.05), (1, 0.005))),
]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=1, max_keep_ckpts=2))
randomness = dict(seed=0)
