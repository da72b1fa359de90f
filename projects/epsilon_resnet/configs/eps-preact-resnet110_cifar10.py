# epsilon-ResNet-110 on CIFAR-10, the source's recipe (docs/architectures.md 2.1-2.5; source
# result: 5.24 % test error, pre-act ResNet-110 baseline 6.05 %):
# pre-activation ResNet-110 (n = 18, widths 16/32/64, parameter-free down-sampling shortcut),
# strict-identity gates with epsilon 0 for epochs 0-149 and 2.5 from epoch 150, side
# supervision (BN-ReLU-GAP-fc, weight 0.1) after block 9 of stage 2, its top-1 evaluated beside
# the main head's (side/accuracy/top1), batch 128, SGD momentum 0.9 (no Nesterov), weight decay
# on conv/fc weights only, 2e-4 x 0.2^floor(iteration / 480000) (the source's staircase, per
# iteration), the adaptive learning rate (0.1 /
# 0.01@82 / 0.001@123 / 2e-4@300, restarted 0.1 / +41 / +61 / +150 when the discarded count
# rises), pad-4 random crop + flip, up to 1000 epochs (390 iterations each).
# Input: (pixel - mean) / 128 with the per-channel CIFAR mean (the source subtracts a
# per-pixel mean image, which mmpretrain's data preprocessor cannot express).
#
# Data: CIFAR-10 is not downloaded by this config (download=False). mmpretrain's CIFAR10 dataset
# expects the python version of the archive (cifar-10-python.tar.gz, extracted) at
#   data/cifar10/cifar-10-batches-py/{data_batch_1..data_batch_5, test_batch, batches.meta}
# (md5-checked); set another root with --cfg-options train_dataloader.dataset.data_root=...
_base_ = [
    'mmpretrain::_base_/datasets/cifar10_bs16.py',
    '../../../configs/_base_/runtime_mmpretrain.py',
]

model = dict(
    type='resvariants.EpsilonImageClassifier',
    backbone=dict(type='resvariants.PreActResNetCIFAR', depth=110, epsilon=2.5),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=64,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    side_head=dict(loss_weight=0.1))  # reads layer2[9]: PreActResNetCIFAR.side_supervision_point
data_preprocessor = dict(num_classes=10, mean=[125.307, 122.961, 113.8575],
                         std=[128.0, 128.0, 128.0], to_rgb=False)
train_dataloader = dict(batch_size=128, dataset=dict(download=False))
val_dataloader = dict(batch_size=128, dataset=dict(download=False))
test_dataloader = val_dataloader
val_evaluator = [dict(type='Accuracy', topk=(1, )),
                 dict(type='resvariants.SideAccuracy', topk=(1, ))]
test_evaluator = val_evaluator

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, nesterov=False, weight_decay=2e-4),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
# EpsilonAdaptiveLRHook drives the learning rate; the weight decay follows the source's
# staircase, 2e-4 x 0.2^floor(step / 480000), stepped every iteration
param_scheduler = [
    dict(type='StepParamScheduler', param_name='weight_decay', step_size=480000, gamma=0.2,
         by_epoch=False),
]
train_cfg = dict(by_epoch=True, max_epochs=1000, val_interval=1)
val_cfg = dict()
test_cfg = dict()
custom_hooks = [
    dict(type='resvariants.EpsilonResNetHook', epsilon=2.5, begin_epoch=150),
    dict(type='resvariants.EpsilonAdaptiveLRHook'),  # the source's schedules are the defaults
]
auto_scale_lr = dict(base_batch_size=128)
