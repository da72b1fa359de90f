# WS-ResNet-50 with the e-shifted L2 regulariser (configs/imagenet/ws_resnet50_eshift_in1k.py:
# ConvWS everywhere, conv weights out of the weight decay and regularised toward std eps) on
# cls_small, with the schedule of configs/demo/resnet50_cls-small.py (4 epochs).
_base_ = ['../imagenet/ws_resnet50_eshift_in1k.py', '../_recipes/cls_small_data.py']
model = dict(backbone=dict(zero_init_residual=True), head=dict(num_classes=10, topk=(1, 5)))
data_preprocessor = {{_base_.cls_small_data_preprocessor}}
train_dataloader = {{_base_.cls_small_train_dataloader}}
val_dataloader = {{_base_.cls_small_val_dataloader}}
test_dataloader = {{_base_.cls_small_test_dataloader}}
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=4, eta_min=1e-3),
]
train_cfg = dict(max_epochs=4, val_interval=1)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=1, max_keep_ckpts=2))
randomness = dict(seed=0)
auto_scale_lr = dict(base_batch_size=32)
