# Oct-ResNet-50, alpha 0.5 (docs/architectures.md 1.9): resvariants trunk with octave-convolution
# bottlenecks; same parameters as ResNet-50 (25,557,032), 2.367 GMACs at 224. Trained with the
# shared recipe of the other configs/imagenet models (PytorchInsight's "old" one); the d-li14
# reference numbers use 120 epochs of cosine, which oct_resnet50_tricks_in1k.py is closer to.
_base_ = './resnet50_in1k.py'
model = dict(backbone=dict(type='resvariants.OctResNet', alpha=0.5))
