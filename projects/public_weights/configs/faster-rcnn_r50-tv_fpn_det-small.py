# The demo Faster R-CNN R50-FPN (det_small, 2 epochs) with its backbone initialised from a
# converted torchvision ResNet-50 (IMAGENET1K_V2, 80.86 top-1) instead of the demo classifier.
# StrictPretrained fails on any missing / unexpected / mis-shaped trunk key. Make the checkpoint
# with (README of this project):
#   python tools/model_converters/convert_resnet.py --from torchvision \
#       resnet50-11ad3fa6.pth checkpoints/public/tv_resnet50_v2.pth
_base_ = '../../../configs/demo/faster-rcnn_r50_fpn_det-small.py'
model = dict(
    backbone=dict(
        init_cfg=dict(type='StrictPretrained', checkpoint='checkpoints/public/tv_resnet50_v2.pth',
                      prefix='backbone.')))
