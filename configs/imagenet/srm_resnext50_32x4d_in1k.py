# SRM-ResNeXt-50 32x4d (25,089,320 parameters): srm_resnet50_in1k.py with 32 groups of width 4,
# SRM's no-decay rule inherited.
_base_ = './srm_resnet50_in1k.py'
model = dict(backbone=dict(groups=32, base_width=4))
