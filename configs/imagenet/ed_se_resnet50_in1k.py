# ED-SE-ResNet-50 (ED-Net's EDSE50; 30,955,096 parameters): SE (ratio 16) on the residual branch
# before the three-way sum, ED-Net recipe.
_base_ = './ed_resnet50_in1k.py'
model = dict(backbone=dict(attention=dict(type='SEModule', ratio=16)))
