_base_ = '../_base_/imagenet_resnet.py'
