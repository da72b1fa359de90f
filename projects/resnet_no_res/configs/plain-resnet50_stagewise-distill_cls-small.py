# Distillation route on real data for the detector demo: the demo ResNet-50 classifier
# (configs/demo/resnet50_cls-small.py, checkpoint work_dirs/demo/cls/epoch_4.pth from
# tools/run_demo.sh) distilled into a plain ResNet-50 on cls_small. Short, iteration-based
# phases for 2 CPU cores: stages 1-4 by L1 (10 iterations each, lr 0.1), then 20 iterations of
# cross-entropy fine-tuning (lr 0.001); batch 32 of 64x64 images.
_base_ = ['../../../configs/demo/resnet50_cls-small.py']

teacher_checkpoint = 'work_dirs/demo/cls/epoch_4.pth'
phase_lengths = [10, 10, 10, 10, 20]  # iterations
phase_lrs = [0.1, 0.1, 0.1, 0.1, 0.001]

model = dict(
    _delete_=True,
    type='resvariants.StagewiseDistiller',
    teacher={{_base_.model}},
    teacher_checkpoint=teacher_checkpoint,
    backbone=dict(
        type='resvariants.PlainResNet',
        depth=50,
        out_indices=(3, ),
        frozen_stages=-1,
        norm_eval=False,
        style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head={{_base_.model.head}})

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.))
param_scheduler = []  # constant rate inside each (short) phase
custom_hooks = [
    dict(type='resvariants.StagewiseDistillHook', phase_lengths=phase_lengths,
         phase_lrs=phase_lrs, by_epoch=False)
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=sum(phase_lengths),
                 val_interval=sum(phase_lengths))
default_hooks = dict(logger=dict(interval=5),
                     checkpoint=dict(by_epoch=False, interval=sum(phase_lengths),
                                     max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
find_unused_parameters = True
