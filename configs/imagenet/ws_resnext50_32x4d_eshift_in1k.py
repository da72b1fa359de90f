# WS-ResNeXt-50 (32x4d) with the e-shifted L2 regulariser, eps 1e-3 (README top-1 77.88). The
# grouped 3x3 convs are regularised too (their filters have 4 x 3 x 3 weights); 25,028,904
# parameters with the 1000-class head.
_base_ = './ws_resnet50_eshift_in1k.py'
model = dict(backbone=dict(groups=32, base_width=4))
