# ED-ResNet-50-B: residual-branch width x0.53, about half the 3x3 filters
# (source 2.1 GFLOPs; ours 2.10, projects/ed_path/README.md).
_base_ = './ed_resnet50_in1k.py'
model = dict(backbone=dict(branch_ratio=0.53))
