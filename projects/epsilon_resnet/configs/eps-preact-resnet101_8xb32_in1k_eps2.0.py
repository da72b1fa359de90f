# epsilon-ResNet-101 on ImageNet-1k, epsilon 2.0, on the source's own network: tensorpack's
# pre-activation ResNet-101 (docs/architectures.md 2.1; `preact=True` of the shared trunk: BN-ReLU
# before every block's convs, the first block of a stage feeding its projection (a 1x1 conv
# without BN) with the pre-activated input, a final BN-ReLU after stage 4), every block gated
# by the strict identity. Recipe, side head (stage-3 block 8, weight 0.1, its accuracy logged as
# side/accuracy/*) and evaluation as eps-resnet101_8xb32_in1k_eps2.0.py (source: 20.12 % of the
# blocks removed, top-1 error ~23 %). The compact export (tools/model_converters/
# epsilon_compact.py) covers the post-activation trunk only.
_base_ = './eps-resnet101_8xb32_in1k_eps2.0.py'
model = dict(backbone=dict(preact=True))
