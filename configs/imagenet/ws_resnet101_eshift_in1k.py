# WS-ResNet-101 with the e-shifted L2 regulariser (see ws_resnet50_eshift_in1k.py), with the
# eps of the README's WS-ResNet-101 row (1e-6; top-1 78.29).
_base_ = './ws_resnet101_in1k.py'
optim_wrapper = dict(
    constructor='resvariants.EShiftL2OptimWrapperConstructor',
    eshift_l2=dict(lam=1e-4, eps=1e-6))
