# Demo stage 1 with an Oct-ResNet-50 (alpha 0.5): configs/demo/resnet50_cls-small.py with the
# octave backbone (same parameters as ResNet-50, 58 % of its MACs).
_base_ = './resnet50_cls-small.py'
model = dict(backbone=dict(type='resvariants.OctResNet', alpha=0.5))
