# epsilon-ResNet-101 on ImageNet-1k, epsilon 2.0 (source: 20.12 % of the blocks removed,
# top-1 error ~23 %, curves overlapping the plain ResNet-101). The source recipe
# (docs/architectures.md 2.5): 256 images per step, SGD Nesterov momentum 0.9, wd 1e-4 on conv/fc
# weights only, lr 0.1 -> x0.1 at 30/60/85/95, 110 epochs; constant epsilon (no schedule),
# side supervision weight 0.1 after stage-3 block 8, its top-1 / top-5 evaluated beside the main
# head's (side/accuracy/top1); the ImageNet runs use a fixed LR schedule (no adaptive rule).
# Differences: our trunk's post-activation blocks (the source's tensorpack pre-activation
# ResNet is eps-preact-resnet101_8xb32_in1k_eps2.0.py) and mmpretrain's RandomResizedCrop +
# flip augmentation (the source adds colour jitter and PCA lighting). Data: data/imagenet
# (mmpretrain layout).
_base_ = '../../../configs/imagenet/resnet101_in1k.py'

model = dict(
    type='resvariants.EpsilonImageClassifier',
    side_head=dict(loss_weight=0.1),  # reads layer3[8]: EpsilonResNet.side_supervision_point
    backbone=dict(type='resvariants.EpsilonResNet', epsilon=2.0, zero_init_residual=False))
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60, 85, 95],
                       gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=110, val_interval=1)
custom_hooks = [dict(type='resvariants.EpsilonResNetHook')]
val_evaluator = [dict(type='Accuracy', topk=(1, 5)),
                 dict(type='resvariants.SideAccuracy', topk=(1, 5))]
test_evaluator = val_evaluator
