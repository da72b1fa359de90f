# "ResNet with No Res" student: plain ResNet-20 (no residual additions, no shortcut modules)
# distilled stage by stage from the trained residual teacher (resnet20_1xb1024_cifar100.py).
# Source schedule (docs/architectures.md 4.2): 4 phases x 30 epochs, SGD momentum 0.9, no weight
# decay, batch 1024; phases 1-3 train only student stage k with the per-element L1 distance to
# the teacher's stage-k output at lr 0.1; phase 4 fine-tunes the whole student with
# cross-entropy at lr 0.001; in every phase lr x0.1 from its 15th and 25th epoch.
# Teacher weights: work_dirs/resnet20_1xb1024_cifar100/epoch_160.pth, or set
#   --cfg-options model.teacher_checkpoint=PATH
_base_ = ['./resnet20_1xb1024_cifar100.py']

teacher_checkpoint = 'work_dirs/resnet20_1xb1024_cifar100/epoch_160.pth'
phase_lengths = [30, 30, 30, 30]  # epochs: stage 1, stage 2, stage 3, fine-tuning
phase_lrs = [0.1, 0.1, 0.1, 0.001]
phase_milestones = [14, 24]  # epochs into each phase (the source's (epoch + 1) == 15, 25)

model = dict(
    _delete_=True,
    type='resvariants.StagewiseDistiller',
    teacher={{_base_.model}},
    teacher_checkpoint=teacher_checkpoint,
    backbone=dict(
        type='resvariants.PlainResNet',
        depth=20,
        out_indices=(2, ),
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
# phases leave most parameters without gradients: needed by DistributedDataParallel
find_unused_parameters = True
