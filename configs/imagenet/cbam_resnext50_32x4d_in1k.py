_base_ = './cbam_resnet50_in1k.py'
model = dict(backbone=dict(groups=32, base_width=4))
