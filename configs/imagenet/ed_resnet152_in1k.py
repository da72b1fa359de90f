# ED-ResNet-152 (ED-Net's resnet152_ed), ED-Net recipe.
_base_ = './ed_resnet50_in1k.py'
model = dict(backbone=dict(depth=152))
