# Teacher of "ResNet with No Res" (tgjjj/ResNet-Distillation, docs/architectures.md 4.1-4.2):
# CIFAR ResNet-20 with projection shortcuts on CIFAR-100, the source recipe: SGD lr 0.1,
# momentum 0.9, no weight decay, batch 1024, 160 epochs, lr x0.1 at epochs 120 and 145, plain
# cross-entropy; random 28x28 crop (no padding), horizontal and vertical flips, ImageNet
# mean / std; test on the 28x28 centre crop.
# Data: data/cifar100/cifar-100-python/{train,test,meta} (the official python pickles; mmpretrain
# downloads them there when the machine is online).
_base_ = [
    'mmpretrain::_base_/datasets/cifar100_bs16.py',
    '../../../configs/_base_/runtime_mmpretrain.py',
]
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='resvariants.CifarResNet',
        depth=20,
        out_indices=(2, ),
        frozen_stages=-1,
        norm_eval=False,
        zero_init_residual=False,  # torchvision default, as in the source
        style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

data_preprocessor = dict(
    num_classes=100,
    mean=[123.675, 116.28, 103.53],  # the source normalises with ImageNet statistics
    std=[58.395, 57.12, 57.375],
    to_rgb=False)  # CIFAR pickles are RGB already
train_pipeline = [
    dict(type='RandomCrop', crop_size=28),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='CenterCrop', crop_size=28), dict(type='PackInputs')]
train_dataloader = dict(batch_size=1024, num_workers=4,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=1024, num_workers=4, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[120, 145], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=160, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)
