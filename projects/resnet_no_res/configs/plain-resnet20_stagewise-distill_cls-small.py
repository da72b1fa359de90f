# Smoke run of the distillation recipe on real data (cls_small, see resnet20_cls-small.py):
# the teacher is resnet20_cls-small.py's checkpoint; 4 phases of 3 epochs (32 iterations
# each): stages 1-3 by L1 at lr 0.1 (x0.1 from the phase's 3rd epoch), then cross-entropy
# fine-tuning at lr 0.001.
_base_ = ['./plain-resnet20_stagewise-distill_1xb1024_cifar100.py']

data_root = '{{$RESVARIANTS_DATA:../shared/data}}/cls_small'
teacher_checkpoint = 'work_dirs/no_res/resnet20_cls-small/epoch_15.pth'
phase_lengths = [3, 3, 3, 3]
phase_lrs = [0.1, 0.1, 0.1, 0.001]
phase_milestones = [2]

head = dict(type='LinearClsHead', num_classes=10, in_channels=64,
            loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, 5))
model = dict(
    teacher=dict(head=head),
    teacher_checkpoint=teacher_checkpoint,
    head=head)
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
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, begin=sum(phase_lengths[:i]),
         end=sum(phase_lengths[:i + 1]), milestones=phase_milestones, gamma=0.1)
    for i in range(len(phase_lengths))
]
custom_hooks = [
    dict(type='resvariants.StagewiseDistillHook', phase_lengths=phase_lengths,
         phase_lrs=phase_lrs)
]
train_cfg = dict(by_epoch=True, max_epochs=sum(phase_lengths), val_interval=3)
default_hooks = dict(logger=dict(interval=16), checkpoint=dict(interval=3, max_keep_ckpts=1))
randomness = dict(seed=0)
auto_scale_lr = dict(base_batch_size=64)
