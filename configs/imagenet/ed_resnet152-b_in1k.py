# ED-ResNet-152-B: residual-branch width x0.55 (source 5.6 GFLOPs; ours 5.57).
_base_ = './ed_resnet152_in1k.py'
model = dict(backbone=dict(branch_ratio=0.55))
