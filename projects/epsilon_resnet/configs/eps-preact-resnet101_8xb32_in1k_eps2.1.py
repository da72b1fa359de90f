# epsilon-ResNet-101 (pre-activation trunk, the source's network), epsilon 2.1 (source: 25.60 %
# of the blocks removed). Same recipe as eps-preact-resnet101_8xb32_in1k_eps2.0.py.
_base_ = './eps-preact-resnet101_8xb32_in1k_eps2.0.py'
model = dict(backbone=dict(epsilon=2.1))
