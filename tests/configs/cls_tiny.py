# Integration-test classifier: the demo cls_small config with ResNet-18, 4 iterations of
# batch 8, checkpoints every 2 iterations, deterministic CPU settings, no validation.
_base_ = '../../configs/demo/resnet50_cls-small.py'
model = dict(backbone=dict(depth=18), head=dict(in_channels=512))
train_dataloader = dict(batch_size=8, num_workers=0, persistent_workers=False,
                        dataset=dict(indices=64))
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(indices=16))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=4)
param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=4)]
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(by_epoch=False, interval=2, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0, deterministic=True)
