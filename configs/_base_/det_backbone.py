# The resvariants trunk as a detection backbone, PytorchInsight detection-fork settings
# (docs/architectures.md 1.13): frozen stem + stage 1, BN statistics frozen (norm_eval), pytorch
# style. The backbone is initialised from the matching configs/imagenet/ checkpoint with the
# StrictPretrained init (any missing / unexpected / mis-shaped key is an error). Where that
# checkpoint lives: $RESVARIANTS_PRETRAINED (default checkpoints/imagenet), one file per
# ImageNet config, named <imagenet config name>.pth; or override
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH   (or model.backbone.init_cfg=None)
pretrained_dir = '{{$RESVARIANTS_PRETRAINED:checkpoints/imagenet}}'
det_backbone = dict(
    _delete_=True,
    type='resvariants.ResNet',
    depth=50,
    num_stages=4,
    out_indices=(0, 1, 2, 3),
    frozen_stages=1,
    norm_cfg=dict(type='BN', requires_grad=True),
    norm_eval=True,
    style='pytorch',
    init_cfg=dict(
        type='StrictPretrained',
        checkpoint=pretrained_dir + '/resnet50_in1k.pth',
        prefix='backbone.'))
