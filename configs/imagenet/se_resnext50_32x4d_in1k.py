# SE-ResNeXt-50 32x4d (27,559,896 parameters): se_resnet50_in1k.py with 32 groups of width 4
# (timm's seresnext50_32x4d has the same count).
_base_ = './se_resnet50_in1k.py'
model = dict(backbone=dict(groups=32, base_width=4))
