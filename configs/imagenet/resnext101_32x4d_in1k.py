# ResNeXt-101 32x4d (44,177,704 parameters, as torchvision's) on the resvariants trunk:
# resnet101_in1k.py with 32 groups of width 4 in every 3x3 (torchvision's ResNeXt layout and keys),
# same recipe.
_base_ = './resnet101_in1k.py'
model = dict(backbone=dict(groups=32, base_width=4))
