# ED-ResNeXt-101 32x4d (ED-Net's resnext101_ed), ED-Net recipe.
_base_ = './ed_resnext50_in1k.py'
model = dict(backbone=dict(depth=101))
