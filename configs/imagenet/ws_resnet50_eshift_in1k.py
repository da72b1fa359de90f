# WS-ResNet-50 trained with the e-shifted L2 regulariser (docs/architectures.md 1.10; PytorchInsight
# --el2 --nowd-conv): conv weights leave the ordinary weight decay and get
# lam * [(1 - eps / sigma_f)(w_f - mu_f) + mu_f] added to their gradient (depthwise convs
# excluded), lam 1e-4, eps 1e-3; the fc weight keeps wd 1e-4, biases get none, BN weights are
# decayed. README top-1 (eps 1e-3): 76.86.
_base_ = './ws_resnet50_in1k.py'
optim_wrapper = dict(
    constructor='resvariants.EShiftL2OptimWrapperConstructor',
    eshift_l2=dict(lam=1e-4, eps=1e-3))
