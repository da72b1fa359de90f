# Smoke run of the teacher recipe on real data: CIFAR ResNet-20 on cls_small (Tiny-ImageNet,
# 10 classes, 2000 train / 500 val images), images resized 64 -> 32 so the source's CIFAR
# pipeline applies unchanged (random 28x28 crop, h + v flips; centre 28x28 crop for testing).
# Short schedule for 2 CPU cores: 15 epochs of 32 iterations, lr 0.1 x0.1 at epoch 12.
_base_ = ['./resnet20_1xb1024_cifar100.py', '../../../configs/_recipes/cls_small_data.py']

model = dict(head=dict(num_classes=10))
data_preprocessor = dict(num_classes=10)
train_dataloader = {{_base_.cls_small_cifar_train_dataloader}}
val_dataloader = {{_base_.cls_small_cifar_val_dataloader}}
test_dataloader = {{_base_.cls_small_cifar_test_dataloader}}
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[12], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=15, val_interval=5)
default_hooks = dict(logger=dict(interval=16), checkpoint=dict(interval=5, max_keep_ckpts=1))
randomness = dict(seed=0)
auto_scale_lr = dict(base_batch_size=64)
