# Demo stage 1 (tools/run_demo.sh): ResNet-18 (the resvariants trunk) pretrained with mmpretrain
# on cls_small (Tiny-ImageNet, 10 classes, 64x64, 2000 train / 500 val), the backbone of the
# demo detector (faster-rcnn_r18_fpn_person_det-small.py). Data root: $RESVARIANTS_DATA
# (default: tests/data, the copy in the repo).
_base_ = ['./resnet50_cls-small.py']

max_epochs = 6
model = dict(backbone=dict(depth=18), head=dict(in_channels=512))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=max_epochs, eta_min=1e-3),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs // 2)
