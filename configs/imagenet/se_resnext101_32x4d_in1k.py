# SE-ResNeXt-101 32x4d (48,955,416 parameters): se_resnet101_in1k.py with 32 groups of width 4
# (timm's seresnext101_32x4d has the same count).
_base_ = './se_resnet101_in1k.py'
model = dict(backbone=dict(groups=32, base_width=4))
