# WS-ResNeXt-101 (32x4d) with the e-shifted L2 regulariser, eps 1e-3 (README top-1 78.80).
_base_ = './ws_resnet101_eshift_in1k.py'
model = dict(backbone=dict(groups=32, base_width=4))
optim_wrapper = dict(eshift_l2=dict(eps=1e-3))
