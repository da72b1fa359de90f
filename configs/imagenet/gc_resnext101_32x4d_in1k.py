# GC-ResNeXt-101 32x4d (48,992,025 parameters): gc_resnet101_in1k.py with 32 groups of width 4.
_base_ = './gc_resnet101_in1k.py'
model = dict(backbone=dict(groups=32, base_width=4))
