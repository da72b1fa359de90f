# PytorchInsight detection schedule: 16 images (8 GPUs x 2), SGD lr 0.02 momentum 0.9 wd 1e-4,
# linear warmup 500 iterations from 1/3, 24 epochs, x0.1 at 16 and 22. `--auto-scale-lr`
# rescales the lr for another total batch (base_batch_size 16).
_base_ = 'mmdet::_base_/schedules/schedule_2x.py'
param_scheduler = [
    dict(type='LinearLR', start_factor=1. / 3, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=24, by_epoch=True, milestones=[16, 22], gamma=0.1)
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
