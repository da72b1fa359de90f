_base_ = './resnet101_in1k.py'
model = dict(backbone=dict(sk=dict(groups=32, ratio=16)))
