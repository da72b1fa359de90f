# ED-ResNeXt-50-B: residual-branch width x0.59 (source 2.9 GFLOPs; ours 2.87).
_base_ = './ed_resnext50_in1k.py'
model = dict(backbone=dict(branch_ratio=0.59))
