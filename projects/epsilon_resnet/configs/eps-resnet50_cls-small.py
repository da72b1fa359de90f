# epsilon-ResNet-50 smoke run on cls_small (Tiny-ImageNet, 10 classes, 64x64 real photos), the
# machinery of the ImageNet recipe at toy scale: a quarter-width ResNet-50 (base_channels 16,
# 1.5 M parameters) with strict-identity gates on the shared trunk, side supervision (weight
# 0.1) after stage-3 block 0 (its top-1 / top-5 logged as side/accuracy/*), epsilon 0 in epoch
# 1 then 8.0, the adaptive LR rule with
# compressed schedules, discard count/ratio logged every epoch. With batch 8 on 64x64 images
# the last stage (2x2 maps) sees 32 values per channel, so its BN outputs stay within
# sqrt(31) ~ 5.6 (x gamma) in training mode: epsilon 8 discards such blocks, the count rises in
# epoch 2 and the LR schedule restarts. lr 0.01 at batch 8 (the source's 0.1 is for batch
# 256/128). 500 of the 2000 training images (50 per class), 63 iterations per epoch, 4 epochs:
# a few minutes on 2 CPU cores. tests/test_integration/test_epsilon_cls_small.py runs it on 48
# images.
_base_ = '../../../configs/demo/resnet50_cls-small.py'

model = dict(
    type='resvariants.EpsilonImageClassifier',
    side_head=dict(loss_weight=0.1),
    backbone=dict(type='resvariants.EpsilonResNet', epsilon=8.0, base_channels=16,
                  zero_init_residual=False),
    head=dict(in_channels=512))
train_dataloader = dict(batch_size=8, dataset=dict(indices=list(range(0, 2000, 4))))
param_scheduler = []  # EpsilonAdaptiveLRHook drives the learning rate
optim_wrapper = dict(optimizer=dict(lr=0.01))
custom_hooks = [
    dict(type='resvariants.EpsilonResNetHook', begin_epoch=1),
    dict(type='resvariants.EpsilonAdaptiveLRHook',
         schedule=((0, 0.01), (2, 0.001)),          # source: 0.1, 0.01@82, 0.001@123, 2e-4@300
         restart_schedule=((0, 0.01), (1, 0.001))),  # source: 0.1, 0.01@+41, 0.001@+61, ...
]
train_cfg = dict(max_epochs=4, val_interval=1)
val_evaluator = [dict(type='Accuracy', topk=(1, 5)),
                 dict(type='resvariants.SideAccuracy', topk=(1, 5))]
test_evaluator = val_evaluator
