# Residual ResNet-18 teacher on ImageNet-1k: the repo's ImageNet recipe
# (configs/_base_/imagenet_resnet.py, PytorchInsight "old" recipe) at depth 18. Its checkpoint
# is the teacher of plain-resnet18_stagewise-distill_8xb32_in1k.py.
_base_ = ['../../../configs/_base_/imagenet_resnet.py']
model = dict(backbone=dict(depth=18), head=dict(in_channels=512))
