# Exact route -> detection: Faster R-CNN R50-FPN on det_small whose backbone is the demo ResNet-50
# classifier converted by tools/model_converters/remove_residual.py into an RMPlainResNet
# (folded BN, reserved identity channels, no addition; same features as the residual network).
# Schedule and data as configs/demo/faster-rcnn_r50_fpn_det-small.py. Checkpoint:
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['../../../configs/demo/faster-rcnn_r50_fpn_det-small.py']
pretrained = 'work_dirs/no_res/rm/resnet50_cls-small_rm-plain.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='resvariants.RMPlainResNet',
        depth=50,
        reserve_identity=True,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        style='pytorch',
        init_cfg=dict(type='StrictPretrained', checkpoint=pretrained, prefix='backbone.')))
