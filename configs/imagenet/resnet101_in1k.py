_base_ = '../_base_/imagenet_resnet.py'
model = dict(backbone=dict(depth=101))
