# Smoke run of the distillation recipe on real data (cls_small, see resnet20_cls-small.py):
# the teacher is resnet20_cls-small.py's checkpoint; 4 phases of 3 epochs (32 iterations
# each): stages 1-3 by L1 at lr 0.1 (x0.1 from the phase's 3rd epoch), then cross-entropy
# fine-tuning at lr 0.001.
_base_ = ['./plain-resnet20_stagewise-distill_1xb1024_cifar100.py', '../../../configs/_recipes/cls_small_data.py']

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
train_dataloader = {{_base_.cls_small_cifar_train_dataloader}}
val_dataloader = {{_base_.cls_small_cifar_val_dataloader}}
test_dataloader = {{_base_.cls_small_cifar_test_dataloader}}
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
