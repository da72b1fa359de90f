"""The main demo's configs (tools/run_demo.sh): what they train on and how they fit together."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLS = osp.join(REPO, 'configs', 'demo', 'resnet18_cls-small.py')
DET = osp.join(REPO, 'configs', 'demo', 'faster-rcnn_r18_fpn_person_det-small.py')


@pytest.fixture(scope='module')
def det_cfg():
    from resvariants.engine.config_loading import register_scope
    register_scope('mmdet')
    return Config.fromfile(DET)


def test_detector_starts_from_the_demo_classifiers_last_checkpoint(det_cfg):
    cls = Config.fromfile(CLS)
    assert cls.model.backbone.depth == det_cfg.model.backbone.depth == 18
    assert cls.model.head.in_channels == 512
    last = f'work_dirs/demo/cls/epoch_{cls.train_cfg.max_epochs}.pth'
    assert det_cfg.model.backbone.init_cfg == dict(
        type='StrictPretrained', checkpoint=last, prefix='backbone.')


def test_person_only_data(det_cfg):
    from mmdet.registry import DATASETS
    with DefaultScope.overwrite_default_scope('mmdet'):
        train = DATASETS.build(det_cfg.train_dataloader.dataset)
        val = DATASETS.build(det_cfg.val_dataloader.dataset)
    assert train.metainfo['classes'] == val.metainfo['classes'] == ('person', )
    # det_small: 199 persons in 44 of the 96 train images; the other 52 stay in the training
    # set as negatives (no box); all 32 val images are evaluated, 55 persons in 17 of them
    assert len(train) == 96
    per_image = [[i['bbox_label'] for i in train.get_data_info(k)['instances']]
                 for k in range(len(train))]
    train_labels = sum(per_image, [])
    assert len(train_labels) == 199 and set(train_labels) == {0}
    assert sum(1 for labels in per_image if labels) == 44
    assert len(val) == 32
    val_boxes = sum(len(val.get_data_info(k)['instances']) for k in range(len(val)))
    assert val_boxes == 55
    assert det_cfg.model.roi_head.bbox_head.num_classes == 1


def test_detector_builds_with_the_slim_heads(det_cfg):
    from mmdet.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(det_cfg.model)
    assert model.neck.out_channels == 128
    assert model.roi_head.bbox_head.fc_cls.out_features == 2   # person + background
    n_backbone = sum(p.numel() for p in model.backbone.parameters())
    assert n_backbone == 11_689_512 - 513_000   # torchvision ResNet-18 without its fc
