# ED-ResNet-101-A: residual-branch width x0.97 (source 7.8 GFLOPs; ours 7.77).
_base_ = './ed_resnet101_in1k.py'
model = dict(backbone=dict(branch_ratio=0.97))
