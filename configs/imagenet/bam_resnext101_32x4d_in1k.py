# BAM-ResNeXt-101 32x4d (44,535,771 parameters): bam_resnet101_in1k.py with 32 groups of width 4.
_base_ = './bam_resnet101_in1k.py'
model = dict(backbone=dict(groups=32, base_width=4))
