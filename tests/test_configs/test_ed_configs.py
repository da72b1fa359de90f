"""ED path configs: the ImageNet recipe of ED-Net, the detection configs, classifier -> detector
weight transfer with the ED path, and a detector training step on a det_small image at the
full 1333x800 scale."""
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from resvariants.engine.config_loading import register_scope
from resvariants.models import EDResNet

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO, 'configs')
DATA = os.environ.get('RESVARIANTS_DATA', osp.join(REPO, 'tests', 'data'))
IMAGENET_NAMES = ['ed_resnet50', 'ed_resnet101', 'ed_resnet152', 'ed_resnext50', 'ed_resnext101',
                  'ed_se_resnet50'] + [f'{m}-{v}' for m in ('ed_resnet50', 'ed_resnet101',
                                                            'ed_resnet152', 'ed_resnext50',
                                                            'ed_resnext101') for v in 'ab']
DETECTION_NAMES = [f'{det}_ed_r{depth}_fpn' for det in ('faster_rcnn', 'mask_rcnn', 'cascade_rcnn')
                   for depth in (50, 101)]


@pytest.mark.parametrize('name', IMAGENET_NAMES)
def test_imagenet_configs_follow_the_ednet_recipe(name):
    cfg = Config.fromfile(osp.join(CONFIGS, 'imagenet', f'{name}_in1k.py'))
    backbone = cfg.model.backbone
    assert backbone.type == 'resvariants.EDResNet'
    assert backbone.depth == (50 if '50' in name else 101 if '101' in name else 152)
    assert backbone.get('groups', 1) == (32 if 'resnext' in name else 1)
    assert (backbone.branch_ratio < 1) == name.endswith(('-a', '-b'))
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.momentum, optimizer.weight_decay) == \
        ('SGD', 0.1, 0.9, 1e-4)
    assert cfg.param_scheduler.milestones == [30, 60, 90]
    assert cfg.param_scheduler.gamma == 0.1
    assert cfg.train_cfg.max_epochs == 100
    assert cfg.train_dataloader.batch_size * 8 == 256


def _build_detection_backbone(cfg):
    from mmdet.registry import MODELS
    register_scope('mmdet')
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(cfg)


@pytest.mark.parametrize('name', DETECTION_NAMES)
def test_detection_configs_use_the_matching_ed_backbone(name):
    cfg = Config.fromfile(osp.join(CONFIGS, f'{name}.py'))
    depth = int(name.split('_r')[-1].split('_')[0])
    backbone_cfg = cfg.model.backbone
    assert backbone_cfg.init_cfg.type == 'StrictPretrained'
    assert backbone_cfg.init_cfg.checkpoint.endswith(f'/ed_resnet{depth}_in1k.pth')
    assert osp.isfile(osp.join(CONFIGS, 'imagenet', f'ed_resnet{depth}_in1k.py'))
    backbone = _build_detection_backbone(dict(backbone_cfg, init_cfg=None, base_channels=32))
    assert isinstance(backbone, EDResNet) and backbone.depth == depth
    assert backbone.norm_eval and backbone.frozen_stages == 1
    assert backbone.out_indices == (0, 1, 2, 3)


def test_classifier_weights_with_ed_path_load_strictly_into_the_detector(tmp_path):
    """The classifier's ``backbone.*`` (ED path included) survives the detector's init."""
    from mmpretrain.registry import MODELS
    classifier_cfg = Config.fromfile(osp.join(CONFIGS, 'imagenet', 'ed_resnet50_in1k.py')).model
    classifier_cfg.backbone.base_channels = 32
    classifier_cfg.head.in_channels = 1024
    register_scope('mmpretrain')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        classifier = MODELS.build(classifier_cfg)
    classifier.init_weights()
    checkpoint = tmp_path / 'ed_resnet50_in1k.pth'
    torch.save(dict(state_dict=classifier.state_dict()), checkpoint)
    cfg = Config.fromfile(osp.join(CONFIGS, 'faster_rcnn_ed_r50_fpn.py'))
    backbone = _build_detection_backbone(
        dict(cfg.model.backbone, base_channels=32,
             init_cfg=dict(cfg.model.backbone.init_cfg, checkpoint=str(checkpoint))))
    backbone.init_weights()
    source = classifier.backbone.state_dict()
    ed_keys = [k for k in source if '.ed_path.' in k]
    assert ed_keys
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, source[key]), key


def _slim_detector_cfg(name):
    """The config's detector with narrow widths (backbone base 32, FPN / heads 32 channels)."""
    cfg = Config.fromfile(osp.join(CONFIGS, f'{name}.py'))
    model = cfg.model
    model.backbone.update(init_cfg=None, base_channels=32)
    model.neck.update(in_channels=[128, 256, 512, 1024], out_channels=32)
    model.rpn_head.update(in_channels=32, feat_channels=32)
    model.roi_head.bbox_roi_extractor.out_channels = 32
    model.roi_head.bbox_head.update(in_channels=32, fc_out_channels=64)
    return cfg


def test_detector_train_step_at_1333x800_on_a_det_small_image():
    from mmdet.datasets import CocoDataset
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import OptimWrapper
    root = osp.join(DATA, 'det_small')
    cfg = _slim_detector_cfg('faster_rcnn_ed_r50_fpn')
    register_scope('mmdet')
    with DefaultScope.overwrite_default_scope('mmdet'):
        from mmdet.registry import MODELS
        detector = MODELS.build(cfg.model)
        detector.init_weights()
        dataset = CocoDataset(data_root=root, ann_file='annotations/instances_train.json',
                              data_prefix=dict(img='images/'), pipeline=cfg.train_pipeline,
                              filter_cfg=dict(filter_empty_gt=True))
        batch = pseudo_collate([dataset[0]])
    assert max(batch['inputs'][0].shape[1:]) == 1333 or min(batch['inputs'][0].shape[1:]) == 800
    detector.train()
    optim_wrapper = OptimWrapper(torch.optim.SGD(detector.parameters(), lr=0.01, momentum=0.9))
    ed_path = detector.backbone.layer4[0].ed_path
    before = {name: p.detach().clone() for name, p in ed_path.named_parameters()}
    losses = detector.train_step(batch, optim_wrapper)
    assert {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox'} <= set(losses)
    assert all(torch.isfinite(v).all() for v in losses.values())
    # the ED path is trained: its decoder norm starts at zero (mmdet's zero_init_residual
    # default), so the first step moves it, and the encoder / decoder convs from the next step
    changed = [name for name, p in ed_path.named_parameters() if not torch.equal(before[name], p)]
    assert 'decoder_norm.weight' in changed
