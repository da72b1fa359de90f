_base_ = './resnet50_in1k.py'
model = dict(backbone=dict(attention=dict(type='SGE', groups=64)))
