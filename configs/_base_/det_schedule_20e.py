# PytorchInsight Cascade R-CNN schedule: as det_schedule_2x but 20 epochs, x0.1 at 16 and 19.
_base_ = 'mmdet::_base_/schedules/schedule_20e.py'
param_scheduler = [
    dict(type='LinearLR', start_factor=1. / 3, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=20, by_epoch=True, milestones=[16, 19], gamma=0.1)
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
