# ResNet-50 with the bag-of-tricks recipe (configs/_recipes/imagenet_tricks.py: exact label
# smoothing 0.1, no bias / bn weight decay, 5-epoch warmup + cosine, 120 epochs; mixup / CutMix
# switchable with --cfg-options model.train_cfg.probs="[1.0,0.0]" / "[0.0,1.0]").
_base_ = ['./resnet50_in1k.py', '../_recipes/imagenet_tricks.py']
model = {{_base_.tricks_model}}
optim_wrapper = {{_base_.tricks_optim_wrapper}}
param_scheduler = {{_base_.tricks_param_scheduler}}
train_cfg = {{_base_.tricks_train_cfg}}
