# WS-ShuffleNetV1 1x (groups 3) with the e-shifted L2 regulariser, eps 1e-8 (PytorchInsight
# README top-1 68.09; the source names no group count: 3 is the paper's default and
# mmpretrain's). mmpretrain's ShuffleNetV1 passes conv_cfg to every conv (stem, grouped 1x1s,
# depthwise 3x3s), so ConvWS standardises all of them. Recipe and e-shift setting as
# ws_shufflenetv2_1x_eshift_in1k.py (mobile recipe, lam 4e-5); the grouped 1x1 convs are
# regularised too (their filters have C_in / 3 weights), the depthwise ones are not.
_base_ = './ws_shufflenetv2_1x_eshift_in1k.py'
model = dict(
    backbone=dict(_delete_=True, type='mmpretrain.ShuffleNetV1', groups=3, widen_factor=1.0,
                  conv_cfg=dict(type='ConvWS')),
    head=dict(in_channels=960))
