# The bag-of-tricks recipe (configs/imagenet/resnet50_tricks_in1k.py) on cls_small: its model,
# optimizer (no bias / bn decay) and loss, with label smoothing set for K = 10 (targets 0.9 and
# 0.1 / 9), 1 warmup epoch (exactly lr * (t + 1) / N, N = 63 iterations) + cosine, 4 epochs.
# Mixup / CutMix on every batch:
#   --cfg-options model.train_cfg.probs="[1.0,0.0]"   or   model.train_cfg.probs="[0.0,1.0]"
_base_ = ['../imagenet/resnet50_tricks_in1k.py', '../_recipes/cls_small_data.py']
num_classes = 10
epochs = 4
iters_per_epoch = 63  # ceil(2000 / 32)

model = dict(
    backbone=dict(zero_init_residual=True),
    head=dict(
        num_classes=num_classes,
        topk=(1, 5),
        loss=dict(num_classes=num_classes,
                  label_smooth_val=0.1 * num_classes / (num_classes - 1))))
data_preprocessor = {{_base_.cls_small_data_preprocessor}}
train_dataloader = {{_base_.cls_small_train_dataloader}}
val_dataloader = {{_base_.cls_small_val_dataloader}}
test_dataloader = {{_base_.cls_small_test_dataloader}}
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
