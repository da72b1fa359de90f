# ED-ResNeXt-101-A: residual-branch width x0.91 (source 7.9 GFLOPs; ours 8.00).
_base_ = './ed_resnext101_in1k.py'
model = dict(backbone=dict(branch_ratio=0.91))
