# "ResNet with No Res" on ImageNet-1k: plain ResNet-18 (no residual additions, no shortcut
# modules) distilled stage by stage from the residual ResNet-18 (resnet18_in1k.py).
# The source only ran CIFAR; this applies its schedule per phase unchanged: 4 stage phases
# (per-element L1 to the teacher's stage output, lr 0.1) + 1 cross-entropy fine-tuning phase
# (lr 0.001), 30 epochs each, lr x0.1 from each phase's 15th and 25th epoch, SGD momentum 0.9,
# no weight decay; data pipeline and batch (8 x 32) of the teacher recipe.
# Teacher weights: $RESVARIANTS_PRETRAINED/resnet18_in1k.pth (default checkpoints/imagenet),
# or --cfg-options model.teacher_checkpoint=PATH (an mmpretrain ResNet-18 checkpoint loads too:
# same keys).
_base_ = ['./resnet18_in1k.py']

pretrained_dir = '{{$RESVARIANTS_PRETRAINED:checkpoints/imagenet}}'
teacher_checkpoint = pretrained_dir + '/resnet18_in1k.pth'
phase_lengths = [30, 30, 30, 30, 30]  # epochs: stages 1-4, fine-tuning
phase_lrs = [0.1, 0.1, 0.1, 0.1, 0.001]
phase_milestones = [14, 24]

model = dict(
    _delete_=True,
    type='resvariants.StagewiseDistiller',
    teacher={{_base_.model}},
    teacher_checkpoint=teacher_checkpoint,
    backbone=dict(
        type='resvariants.PlainResNet',
        depth=18,
        out_indices=(3, ),
        frozen_stages=-1,
        norm_eval=False,
        style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head={{_base_.model.head}})

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, begin=sum(phase_lengths[:i]),
         end=sum(phase_lengths[:i + 1]), milestones=phase_milestones, gamma=0.1)
    for i in range(len(phase_lengths))
]
custom_hooks = [
    dict(type='resvariants.StagewiseDistillHook', phase_lengths=phase_lengths,
         phase_lrs=phase_lrs)
]
train_cfg = dict(by_epoch=True, max_epochs=sum(phase_lengths), val_interval=5)
find_unused_parameters = True  # phases leave most parameters without gradients (DDP)
