# BAM-ResNeXt-50 32x4d (25,386,971 parameters): bam_resnet50_in1k.py with 32 groups of width 4.
_base_ = './bam_resnet50_in1k.py'
model = dict(backbone=dict(groups=32, base_width=4))
