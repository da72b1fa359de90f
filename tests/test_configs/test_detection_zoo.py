"""Every detector config in configs/ and projects/ (the ResNeXt-101 rows: one per detector type,
see RESNEXT_LOSS_STEP): it loads, its model builds, one loss step (forward + backward) and one
predict run on 2 real det_small images at reduced size, and the CocoMetric of those predictions
is computed. Also: zoo settings and backbone parameter counts."""
import glob
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from resvariants.engine.config_loading import register_scope

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA = os.environ.get('RESVARIANTS_DATA', osp.join(REPO, 'tests', 'data'))
DET_SMALL = osp.join(DATA, 'det_small') + '/'


def detection_configs():
    paths = glob.glob(osp.join(REPO, 'configs', '*rcnn*.py'))
    paths += glob.glob(osp.join(REPO, 'projects', '*', 'configs', '*rcnn*.py'))
    return sorted(osp.relpath(p, REPO) for p in paths)


DETECTION_CONFIGS = detection_configs()
# The ResNeXt-101 rows (configs/*_x101_32x4d_fpn.py, 24 configs) state only `groups=32,
# base_width=4` and their checkpoint over the R101 config of the same detector and attention,
# whose loss step runs below; tests/test_configs/test_resnext_zoo.py checks that for each of
# them, and that each backbone takes the matching ImageNet classifier's keys. A loss step costs
# the same for an x101 config as for its r101 one (30-60 s each on the 2 shared CPU cores:
# +12 min for all 24), so it runs for one per detector type, covering plain, SE and SGE.
RESNEXT_LOSS_STEP = ('configs/faster_rcnn_x101_32x4d_fpn.py',
                     'configs/mask_rcnn_se_x101_32x4d_fpn.py',
                     'configs/cascade_rcnn_sge_x101_32x4d_fpn.py')
LOSS_STEP_CONFIGS = [c for c in DETECTION_CONFIGS
                     if '_x101_32x4d_' not in c or c in RESNEXT_LOSS_STEP]
ZOO_VARIANTS = ['', 'se_', 'sk_', 'cbam_', 'bam_', 'gc_', 'sge_', 'srm_']


def load(path):
    cfg = Config.fromfile(osp.join(REPO, path))
    cfg.model.backbone.init_cfg = None  # no ImageNet checkpoint in tests
    return cfg


def build_detector(cfg):
    register_scope('mmdet')
    from mmdet.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(cfg.model)


@pytest.fixture(scope='module')
def det_small_batches():
    """Two train and two val det_small images, resized to at most 320x256, with masks."""
    register_scope('mmdet')
    from mmdet.datasets import CocoDataset
    from mmengine.dataset import pseudo_collate
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='Resize', scale=(320, 256), keep_ratio=True),
        dict(type='PackDetInputs'),
    ]
    with DefaultScope.overwrite_default_scope('mmdet'):
        train = CocoDataset(data_root=DET_SMALL, ann_file='annotations/instances_train.json',
                            data_prefix=dict(img='images/'), pipeline=pipeline,
                            filter_cfg=dict(filter_empty_gt=True))
        val = CocoDataset(data_root=DET_SMALL, ann_file='annotations/instances_val.json',
                          data_prefix=dict(img='images/'), pipeline=pipeline, test_mode=True)
        return pseudo_collate([train[0], train[1]]), pseudo_collate([val[0], val[1]])


def test_zoo_is_complete():
    names = {osp.basename(p) for p in DETECTION_CONFIGS}
    for det in ('faster_rcnn', 'mask_rcnn', 'cascade_rcnn'):
        for variant in ZOO_VARIANTS:
            for depth in (50, 101):
                assert f'{det}_{variant}r{depth}_fpn.py' in names


@pytest.mark.parametrize('det,epochs,milestones', [('faster_rcnn', 24, [16, 22]),
                                                   ('mask_rcnn', 24, [16, 22]),
                                                   ('cascade_rcnn', 20, [16, 19])])
def test_pytorchinsight_detection_settings(det, epochs, milestones):
    cfg = Config.fromfile(osp.join(REPO, 'configs', f'{det}_sge_r101_fpn.py'))
    bb = cfg.model.backbone
    assert (bb.type, bb.depth, bb.frozen_stages, bb.norm_eval) == ('resvariants.ResNet', 101, 1,
                                                                    True)
    assert bb.attention == dict(type='SGE', groups=64)
    assert bb.init_cfg.type == 'StrictPretrained' and bb.init_cfg.prefix == 'backbone.'
    assert bb.init_cfg.checkpoint.endswith('imagenet/sge_resnet101_in1k.pth')
    assert cfg.optim_wrapper.optimizer.lr == 0.02 and cfg.auto_scale_lr.base_batch_size == 16
    warmup, steps = cfg.param_scheduler
    assert warmup.end == 500 and warmup.start_factor == pytest.approx(1 / 3)
    assert cfg.train_cfg.max_epochs == epochs and steps.milestones == milestones
    assert cfg.train_dataloader.dataset.data_root == 'data/coco/'
    scale = [t for t in cfg.train_pipeline if t['type'] == 'Resize'][0]['scale']
    assert tuple(scale) == (1333, 800)
    metrics = cfg.val_evaluator.metric
    assert (metrics == ['bbox', 'segm']) if det == 'mask_rcnn' else (metrics == 'bbox')


@pytest.mark.parametrize('config,expected', [('faster_rcnn_r50_fpn.py', 23.51),
                                             ('faster_rcnn_r101_fpn.py', 42.50),
                                             ('faster_rcnn_se_r101_fpn.py', 47.28),
                                             ('faster_rcnn_sge_r50_fpn.py', 23.51),
                                             ('faster_rcnn_sge_r101_fpn.py', 42.50)])
def test_backbone_params_match_source_table(config, expected):
    model = build_detector(load(osp.join('configs', config)))
    n = sum(p.numel() for p in model.backbone.parameters())
    assert round(n / 1e6, 2) == expected


EPS_CLS_CFG = 'projects/epsilon_resnet/configs/eps-resnet50_cls-small.py'


@pytest.fixture(scope='module')
def epsilon_compact_dir(tmp_path_factory):
    """What the compact epsilon-ResNet detector config reads: the export tool's output for a
    (quarter-width) epsilon-ResNet-50 classifier that discarded two blocks."""
    import importlib.util

    from resvariants.models.backbones.strict_identity import find_strict_identity_gates
    register_scope('mmpretrain')
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS
    out = tmp_path_factory.mktemp('eps')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        gated = PRETRAIN_MODELS.build(Config.fromfile(osp.join(REPO, EPS_CLS_CFG)).model)
    gated.init_weights()
    record = dict(blocks=list(find_strict_identity_gates(gated)), decided=True,
                  discarded=['backbone.layer2.1', 'backbone.layer3.2'])
    torch.save(dict(state_dict=gated.state_dict(), meta=dict(epsilon_resnet=record)),
               out / 'gated.pth')
    path = osp.join(REPO, 'tools', 'model_converters', 'epsilon_compact.py')
    spec = importlib.util.spec_from_file_location('epsilon_compact_tool', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main([osp.join(REPO, EPS_CLS_CFG), str(out / 'gated.pth'), str(out / 'compact'),
               '--shape', '64', '--no-flops'])
    return str(out / 'compact')


@pytest.mark.parametrize('config', LOSS_STEP_CONFIGS)
def test_config_loss_step_predict_and_coco_metric(config, det_small_batches, request,
                                                  monkeypatch):
    if 'compact' in config:  # built on the export tool's output
        monkeypatch.setenv('EPSILON_COMPACT_DIR', request.getfixturevalue('epsilon_compact_dir'))
    cfg = load(config)
    # an untrained detector scores everything low: keep all boxes so COCOeval has work to do
    cfg.model.test_cfg.rcnn.score_thr = 0.0
    model = build_detector(cfg)
    train_batch, val_batch = det_small_batches
    with_mask = 'mask_head' in cfg.model.get('roi_head', {})
    if cfg.model.backbone.get('conv_cfg', {}).get('type') == 'ConvWS':
        _calibrate_frozen_norms(model, train_batch)
    model.train()
    data = model.data_preprocessor(train_batch, training=True)
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)

    model.eval()
    with torch.no_grad():
        results = model.val_step(val_batch)
    assert len(results) == 2 and all('pred_instances' in r for r in results)

    from mmdet.evaluation import CocoMetric
    metric = CocoMetric(ann_file=DET_SMALL + 'annotations/instances_val.json',
                        metric=['bbox', 'segm'] if with_mask else 'bbox')
    metric.dataset_meta = dict(classes=model.dataset_meta['classes']
                               if getattr(model, 'dataset_meta', None) else
                               _coco_classes())
    metric.process({}, [r.to_dict() for r in results])
    values = metric.evaluate(size=2)
    assert 'coco/bbox_mAP' in values and 0 <= values['coco/bbox_mAP'] <= 1
    if with_mask:
        assert 'coco/segm_mAP' in values


def _calibrate_frozen_norms(model, batch):
    """Give the backbone's frozen BNs the statistics of the images, as a pretrained one has.

    Weight-standardised convs have unit-variance filters, so each multiplies the activation
    variance by its fan-in; a pretrained WS backbone's BN running statistics undo that, but
    freshly built frozen BNs (mean 0, var 1) do not and the activations overflow after ~50
    layers. The detection configs always load an ImageNet WS checkpoint; this stands in for it.
    """
    norms = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the calibration pass
        norm.train()
    with torch.no_grad():
        model.backbone(model.data_preprocessor(batch, training=False)['inputs'])
    for norm in norms:
        norm.momentum = 0.1


def _coco_classes():
    from mmdet.datasets import CocoDataset
    return CocoDataset.METAINFO['classes']
