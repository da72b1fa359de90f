# SK-ResNeXt*-50 32x4d (27,402,712 parameters): sk_resnet50_in1k.py with 32 groups of width 4. SK*:
# a second 32-group 3x3 branch beside the block's own (also 32-group) 3x3, softmax-selected
# (projects/pytorch_insight/README.md).
_base_ = './sk_resnet50_in1k.py'
model = dict(backbone=dict(groups=32, base_width=4))
