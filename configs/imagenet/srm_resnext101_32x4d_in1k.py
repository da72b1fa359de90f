# SRM-ResNeXt-101 32x4d (44,307,752 parameters): srm_resnet101_in1k.py with 32 groups of width 4,
# SRM's no-decay rule inherited.
_base_ = './srm_resnet101_in1k.py'
model = dict(backbone=dict(groups=32, base_width=4))
