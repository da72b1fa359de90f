# SGE-ResNet-50 pretrained on cls_small: the demo classifier recipe with the one line that makes
# it SGE (64 groups, as configs/imagenet/sge_resnet50_in1k.py). Feeds
# configs/demo/faster-rcnn_sge-r50_fpn_det-small.py.
_base_ = './resnet50_cls-small.py'
model = dict(backbone=dict(attention=dict(type='SGE', groups=64)))
