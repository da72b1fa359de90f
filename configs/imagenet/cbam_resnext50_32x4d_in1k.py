# CBAM-ResNeXt-50 32x4d (27,561,496 parameters): cbam_resnet50_in1k.py with 32 groups of width 4.
_base_ = './cbam_resnet50_in1k.py'
model = dict(backbone=dict(groups=32, base_width=4))
