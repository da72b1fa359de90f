# Warm start: the demo Faster R-CNN with an SE-ResNet-50 backbone whose trunk comes from the
# converted plain torchvision ResNet-50 and whose SE modules keep their scratch initialisation
# (WarmStart init: every checkpoint tensor must fit, no trunk key may be missing, the new keys
# are listed in the log). Any attention of the trunk works the same way: attention='sge' /
# 'cbam' / 'bam' / 'gc' / 'srm', sk=dict(groups=32), or type='resvariants.EDResNet'.
_base_ = '../../../configs/demo/faster-rcnn_r50_fpn_det-small.py'
model = dict(
    backbone=dict(
        attention=dict(type='SEModule', ratio=16),
        init_cfg=dict(type='WarmStart', checkpoint='checkpoints/public/tv_resnet50_v2.pth',
                      prefix='backbone.')))
