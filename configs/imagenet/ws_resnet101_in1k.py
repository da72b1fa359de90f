# WS-ResNet-101 (see ws_resnet50_in1k.py). README top-1: 78.07.
_base_ = './resnet101_in1k.py'
model = dict(backbone=dict(conv_cfg=dict(type='ConvWS')))
optim_wrapper = dict(paramwise_cfg=dict(bias_decay_mult=0.))
