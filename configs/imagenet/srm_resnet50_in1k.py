_base_ = './resnet50_in1k.py'
model = dict(backbone=dict(attention=dict(type='SRM')))
# SRM's own recipe (the official SRM code): the SRM parameters (the channel-wise FC `cfc` and
# the weight / bias of its BN) get no weight decay; every other parameter keeps wd 1e-4.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'.srm.': dict(decay_mult=0.)}))
