# epsilon-ResNet-101 on ImageNet-1k, epsilon 2.1 (source: 25.60 % of the blocks removed).
# Same recipe as eps-resnet101_8xb32_in1k_eps2.0.py.
_base_ = './eps-resnet101_8xb32_in1k_eps2.0.py'
model = dict(backbone=dict(epsilon=2.1))
