# ED-ResNet-50 transferred from ImageNet (the CUB-200 / CIFAR configs of configs/ed_transfer/ put
# a dataset beside this). The backbone starts from the configs/imagenet/ed_resnet50_in1k.py
# checkpoint ($RESVARIANTS_PRETRAINED/ed_resnet50_in1k.pth, loaded strictly); the head is new.
# ED-Net's training script (docs/architectures.md 3.3): SGD lr 0.1 momentum 0.9, wd 1e-4 on all
# parameters, 256 images, x0.1 every 30 epochs over 100 epochs (mmpretrain's imagenet_bs256
# schedule is exactly that), plain cross-entropy. ED-Net's `lrp` option, "factor for learning rate
# of pretrained layers: their lr is lr * lrp", is the lr_mult of every backbone parameter (the
# pretrained layers); the new head keeps lr. The source publishes no value for lrp: 0.1 here, set
# another with --cfg-options optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult=X.
_base_ = [
    'mmpretrain::_base_/models/resnet50.py',
    'mmpretrain::_base_/schedules/imagenet_bs256.py',
    './runtime_mmpretrain.py',
]
pretrained_dir = '{{$RESVARIANTS_PRETRAINED:checkpoints/imagenet}}'
lrp = 0.1
model = dict(
    backbone=dict(
        _delete_=True,
        type='resvariants.EDResNet',
        depth=50,
        branch_ratio=1.0,
        ed_groups=32,
        out_indices=(3, ),
        frozen_stages=-1,
        norm_eval=False,
        zero_init_residual=False,
        style='pytorch',
        init_cfg=dict(
            type='StrictPretrained',
            checkpoint=pretrained_dir + '/ed_resnet50_in1k.pth',
            prefix='backbone.')))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=lrp)}))
