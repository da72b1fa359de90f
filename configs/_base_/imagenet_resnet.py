# ImageNet-1k classification with the resvariants trunk, PytorchInsight's "old" recipe
# (docs/architectures.md 1.12A): 8 x 32 = 256 images, SGD lr 0.1 momentum 0.9, wd 1e-4 on all
# parameters, 100 epochs, x0.1 at 30/60/90, plain cross-entropy, RandomResizedCrop 224 + flip;
# eval resize 256 / center 224. Data: data/imagenet (mmpretrain layout).
_base_ = [
    'mmpretrain::_base_/models/resnet50.py',
    'mmpretrain::_base_/datasets/imagenet_bs32.py',
    'mmpretrain::_base_/schedules/imagenet_bs256.py',
    './runtime_mmpretrain.py',
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='resvariants.ResNet',
        depth=50,
        out_indices=(3, ),
        frozen_stages=-1,
        norm_eval=False,
        zero_init_residual=False,  # PytorchInsight never turns zero-gamma on
        style='pytorch'))
