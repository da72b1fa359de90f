# ED-ResNet-50-A: residual-branch width x0.95 so that the FLOPs match ResNet-50
# (source 4.0 GFLOPs; ours 3.99, projects/ed_path/README.md).
_base_ = './ed_resnet50_in1k.py'
model = dict(backbone=dict(branch_ratio=0.95))
