_base_ = './se_resnet101_in1k.py'
model = dict(backbone=dict(groups=32, base_width=4))
