# WS-ShuffleNetV2 1x with the e-shifted L2 regulariser, eps 1e-8 (PytorchInsight README top-1
# 69.70; docs/architectures.md 1.10). mmpretrain's ShuffleNetV2 passes conv_cfg to every conv
# (stem, both branches, depthwise convs, conv_last): with mmcv's ConvWS each filter is used as
# (w - mean) / (std + 1e-5), unbiased std, the source's WS conv; BatchNorm stays. Recipe: the
# mobile one of shufflenetv2_1x_in1k.py (imagenet_mobile.py: 1024 images, lr 0.4, 5 warmup +
# 295 cosine epochs per iteration, label smoothing 0.1, wd 4e-5, none on BN / biases) with the
# source's e-shift setting of that script (--el2 --nowd-conv): conv weights leave the weight
# decay and get lam [(1 - eps / sigma_f)(w_f - mu_f) + mu_f], lam 4e-5 (the mobile script's
# default), eps 1e-8; depthwise convs get neither; the fc weight keeps wd 4e-5.
# 2,278,604 parameters (WS adds none).
_base_ = './shufflenetv2_1x_in1k.py'
model = dict(backbone=dict(conv_cfg=dict(type='ConvWS')))
optim_wrapper = dict(
    constructor='resvariants.EShiftL2OptimWrapperConstructor',
    eshift_l2=dict(lam=4e-5, eps=1e-8))
