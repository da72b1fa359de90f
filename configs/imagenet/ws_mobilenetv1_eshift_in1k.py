# WS-MobileNetV1 (width 1.0) with the e-shifted L2 regulariser, eps 1e-6 (PytorchInsight README
# top-1 73.60). resvariants.MobileNetV1 (mmpretrain has none) builds every conv from conv_cfg:
# ConvWS on the stem, the 13 depthwise and the 13 pointwise convs. Recipe and e-shift setting
# as ws_shufflenetv2_1x_eshift_in1k.py (the source's mobile script, lam 4e-5); the depthwise
# convs get neither weight decay nor the e-shift term. 4,231,976 parameters.
_base_ = './ws_shufflenetv2_1x_eshift_in1k.py'
model = dict(
    backbone=dict(_delete_=True, type='resvariants.MobileNetV1', widen_factor=1.0,
                  conv_cfg=dict(type='ConvWS')),
    head=dict(in_channels=1024))
optim_wrapper = dict(eshift_l2=dict(eps=1e-6))
