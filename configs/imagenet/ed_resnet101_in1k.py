# ED-ResNet-101 (ED-Net's resnet101_ed; 49,966,504 parameters), ED-Net recipe.
_base_ = './ed_resnet50_in1k.py'
model = dict(backbone=dict(depth=101))
