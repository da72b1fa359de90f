# ED-ResNeXt-101-B: residual-branch width x0.60 (source 5.4 GFLOPs; ours 5.51).
_base_ = './ed_resnext101_in1k.py'
model = dict(backbone=dict(branch_ratio=0.6))
