_base_ = './resnet50_in1k.py'
model = dict(backbone=dict(attention=dict(type='ContextBlock', ratio=1. / 16)))
