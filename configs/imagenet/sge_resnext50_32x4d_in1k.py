# SGE-ResNeXt-50 32x4d (25,030,952 parameters): sge_resnet50_in1k.py with 32 groups of width 4, SGE
# with 64 groups as PytorchInsight.
_base_ = './sge_resnet50_in1k.py'
model = dict(backbone=dict(groups=32, base_width=4))
