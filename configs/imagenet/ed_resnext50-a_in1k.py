# ED-ResNeXt-50-A: residual-branch width x0.91, whole groups of 4 channels per stage kept
# (source 4.2 GFLOPs; ours 4.23).
_base_ = './ed_resnext50_in1k.py'
model = dict(backbone=dict(branch_ratio=0.91))
