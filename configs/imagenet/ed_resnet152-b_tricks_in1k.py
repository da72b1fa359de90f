# ED-ResNet-152-B with the bag-of-tricks recipe (configs/_recipes/imagenet_tricks.py; see
# resnet50_tricks_in1k.py). The source's no-decay rule matches parameter names with 'bn', so the
# ED path's norms (encoder_norm / decoder_norm) keep their weight decay, as a downsample BN does.
_base_ = ['./ed_resnet152-b_in1k.py', '../_recipes/imagenet_tricks.py']
model = {{_base_.tricks_model}}
optim_wrapper = {{_base_.tricks_optim_wrapper}}
param_scheduler = {{_base_.tricks_param_scheduler}}
train_cfg = {{_base_.tricks_train_cfg}}
