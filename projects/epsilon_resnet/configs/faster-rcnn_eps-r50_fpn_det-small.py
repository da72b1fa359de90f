# Faster R-CNN R50-FPN on det_small with a GATED epsilon-ResNet-50 backbone (strict-identity
# gates active while the detector trains; frozen stem + stage 1, frozen BN statistics as in
# the demo). The gated trunk has the plain trunk's key layout, so the demo classifier
# checkpoint initialises it with the StrictPretrained init. EpsilonResNetHook logs and
# checkpoints the discarded blocks; tools/model_converters/epsilon_compact.py exports the
# compact detector backbone from a checkpoint of this run.
_base_ = '../../../configs/demo/faster-rcnn_r50_fpn_det-small.py'
model = dict(backbone=dict(type='resvariants.EpsilonResNet', epsilon=2.0,
                           zero_init_residual=False))
custom_hooks = [dict(type='resvariants.EpsilonResNetHook')]
