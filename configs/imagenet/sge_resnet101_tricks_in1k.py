# SGE-ResNet-101 with the bag-of-tricks recipe (configs/_recipes/imagenet_tricks.py; see
# resnet50_tricks_in1k.py).
_base_ = ['./sge_resnet101_in1k.py', '../_recipes/imagenet_tricks.py']
model = {{_base_.tricks_model}}
optim_wrapper = {{_base_.tricks_optim_wrapper}}
param_scheduler = {{_base_.tricks_param_scheduler}}
train_cfg = {{_base_.tricks_train_cfg}}
