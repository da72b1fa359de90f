# WS-DenseNet-201 with the e-shifted L2 regulariser, eps 1e-8 (PytorchInsight README top-1
# 77.59). mmpretrain's DenseNet takes no conv_cfg; resvariants.DenseNet builds mmpretrain's
# network and rebuilds its convs (stem, both convs of every dense layer, transitions) from
# conv_cfg: ConvWS everywhere, BatchNorm kept. Recipe of the large WS models
# (ws_resnet50_eshift_in1k.py: 256 images, lr 0.1, 100 epochs x0.1 at 30/60/90, bias wd 0,
# conv weights out of the decay with lam 1e-4). 20,013,928 parameters.
_base_ = './ws_resnet50_eshift_in1k.py'
model = dict(
    backbone=dict(_delete_=True, type='resvariants.DenseNet', arch='201',
                  conv_cfg=dict(type='ConvWS')),
    head=dict(in_channels=1920))
optim_wrapper = dict(eshift_l2=dict(eps=1e-8))
