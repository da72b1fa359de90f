# ED-ResNet-152-A: residual-branch width x0.97 (source 11.5 GFLOPs; ours 11.46).
_base_ = './ed_resnet152_in1k.py'
model = dict(backbone=dict(branch_ratio=0.97))
