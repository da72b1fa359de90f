# WS-ResNet-50 (PytorchInsight resnet_ws.py, docs/architectures.md 1.10): every conv of the trunk
# (stem, blocks, projection shortcuts) weight-standardised by mmcv's ConvWS (per filter,
# unbiased std + 1e-5, as the source), BatchNorm kept. Recipe of the source's WS runs:
# imagenet_fast.py with label smoothing and warmup off, i.e. the shared 100-epoch step recipe
# with no weight decay on biases. README top-1: 76.74.
_base_ = './resnet50_in1k.py'
model = dict(backbone=dict(conv_cfg=dict(type='ConvWS')))
optim_wrapper = dict(paramwise_cfg=dict(bias_decay_mult=0.))
