# CBAM-ResNeXt-101 32x4d (48,958,716 parameters): cbam_resnet101_in1k.py with 32 groups of width 4.
_base_ = './cbam_resnet101_in1k.py'
model = dict(backbone=dict(groups=32, base_width=4))
