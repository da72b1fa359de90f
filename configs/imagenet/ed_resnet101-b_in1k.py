# ED-ResNet-101-B: residual-branch width x0.55 (source 3.9 GFLOPs; ours 3.87).
_base_ = './ed_resnet101_in1k.py'
model = dict(backbone=dict(branch_ratio=0.55))
