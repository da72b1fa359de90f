# ShuffleNetV2 1x: mmpretrain's ShuffleNetV2 (widen_factor 1.0), the architecture of
# PytorchInsight's shufflenetv2.py (2,278,604 parameters with the 1000-class head; 0.145 GMACs),
# trained with PytorchInsight's mobile recipe (imagenet_mobile.py; docs/architectures.md 1.12 C):
# * 8 x 128 = 1024 images, SGD lr 0.4 (0.1 x 1024 / 256) momentum 0.9, 300 epochs;
# * per-iteration linear warmup over 5 epochs (exactly lr * (t + 1) / (5 N), N = 1252
#   iterations per epoch), then per-iteration cosine to 0 over the remaining 295 epochs;
# * label smoothing 0.1 as the source defines it (true class 0.9, others 0.1 / 999);
# * weight decay 4e-5, none on BatchNorm parameters, biases and depthwise convs (the source's
#   no-decay rule: grouped convs, BN and biases; the fc weight is decayed);
# * RandomResizedCrop 224 (scale 0.08-1) + flip, no colour jitter; eval resize 256 / crop 224.
# README top-1: 69.642.
_base_ = [
    'mmpretrain::_base_/models/shufflenet_v2_1x.py',
    'mmpretrain::_base_/datasets/imagenet_bs32.py',
    '../_base_/runtime_mmpretrain.py',
]
num_classes = 1000
label_smooth = 0.1
epochs = 300
warmup_epochs = 5
iters_per_epoch = 1252  # ceil(1,281,167 / 1024)

model = dict(
    head=dict(
        loss=dict(
            _delete_=True,
            type='LabelSmoothLoss',
            mode='original',
            label_smooth_val=label_smooth * num_classes / (num_classes - 1),
            num_classes=num_classes,
            loss_weight=1.0)))
train_dataloader = dict(batch_size=128)
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.4, momentum=0.9, weight_decay=4e-5),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., dwconv_decay_mult=0.))
param_scheduler = [
    dict(type='LinearLR', start_factor=1. / (warmup_epochs * iters_per_epoch), by_epoch=True,
         begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=epochs - warmup_epochs, eta_min=0., by_epoch=True,
         begin=warmup_epochs, end=epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)
