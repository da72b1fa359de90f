# Demo stage 1: ResNet-50 (resvariants trunk) pretrained with mmpretrain on cls_small
# (Tiny-ImageNet, 10 classes, 64x64, 2000 train / 500 val). About 2 min on 2 CPU cores.
# Data root: $RESVARIANTS_DATA (default: tests/data, the copy in the repo).
_base_ = ['../imagenet/resnet50_in1k.py', '../_recipes/cls_small_data.py']

# zero-gamma init of the last BN of each block (mmpretrain's default) keeps the first
# iterations stable at lr 0.1 on 64x64 inputs
model = dict(backbone=dict(zero_init_residual=True), head=dict(num_classes=10, topk=(1, 5)))
data_preprocessor = {{_base_.cls_small_data_preprocessor}}
train_dataloader = {{_base_.cls_small_train_dataloader}}
val_dataloader = {{_base_.cls_small_val_dataloader}}
test_dataloader = {{_base_.cls_small_test_dataloader}}
optim_wrapper = dict(optimizer=dict(lr=0.1))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=4, eta_min=1e-3),
]
train_cfg = dict(max_epochs=4, val_interval=1)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=1, max_keep_ckpts=2))
randomness = dict(seed=0)
auto_scale_lr = dict(base_batch_size=32)
