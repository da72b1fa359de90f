# Oct-ResNet-101, alpha 0.5 (docs/architectures.md 1.9): 44,549,160 parameters, 3.991 GMACs at 224.
_base_ = './resnet101_in1k.py'
model = dict(backbone=dict(type='resvariants.OctResNet', alpha=0.5))
