# ShuffleNetV2 1x with the mobile recipe (configs/imagenet/shufflenetv2_1x_in1k.py: exact label
# smoothing, no decay on BN / bias / depthwise convs, per-iteration warmup + cosine) on
# cls_small: K = 10 (targets 0.9 and 0.1 / 9), batch 32, lr 0.1, 1 warmup epoch (N = 63
# iterations) + cosine to 0, 6 epochs.
_base_ = ['../imagenet/shufflenetv2_1x_in1k.py', '../_recipes/cls_small_data.py']
num_classes = 10
epochs = 6
iters_per_epoch = 63  # ceil(2000 / 32)

model = dict(
    head=dict(
        num_classes=num_classes,
        topk=(1, 5),
        loss=dict(num_classes=num_classes,
                  label_smooth_val=0.1 * num_classes / (num_classes - 1))))
data_preprocessor = {{_base_.cls_small_data_preprocessor}}
train_dataloader = {{_base_.cls_small_train_dataloader}}
val_dataloader = {{_base_.cls_small_val_dataloader}}
test_dataloader = {{_base_.cls_small_test_dataloader}}
optim_wrapper = dict(optimizer=dict(lr=0.1))
param_scheduler = [
    dict(type='LinearLR', start_factor=1. / iters_per_epoch, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=epochs - 1, eta_min=0., by_epoch=True, begin=1,
         end=epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=epochs, val_interval=1)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=1, max_keep_ckpts=2))
randomness = dict(seed=0)
auto_scale_lr = dict(base_batch_size=32)
