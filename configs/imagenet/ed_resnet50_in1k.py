# ED-ResNet-50 (ResNet-50 + ED path, ED-Net's "ED50"; 28,424,104 parameters with the 1000-class
# head). ED-Net recipe (docs/architectures.md 3.3): 256 images, SGD lr 0.1 momentum 0.9, wd 1e-4 on
# all parameters, 100 epochs, x0.1 every 30 epochs, plain cross-entropy, RandomResizedCrop 224 +
# flip; eval resize 256 / center 224 (the data settings of the base).
_base_ = './resnet50_in1k.py'
model = dict(backbone=dict(type='resvariants.EDResNet', branch_ratio=1.0, ed_groups=32))
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
