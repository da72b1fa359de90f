"""Recipes the sources' numbers depend on, as configs:

* best-epoch checkpointing on top-1 (PytorchInsight's and ED-Net's tables are best-epoch): every
  mmpretrain config through configs/_base_/runtime_mmpretrain.py; the real run that writes the
  best checkpoint is tests/test_tools/test_stagewise_distill_train.py;
* SRM's no weight decay on the SRM parameters (the official SRM code) in the SRM configs;
* ED-Net's ``lrp``, the learning-rate factor of the pretrained layers, in the ED transfer configs
  (configs/ed_transfer/: CUB-200-2011, CIFAR-10, CIFAR-100 on mmpretrain's datasets).
"""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from resvariants.engine.config_loading import register_scope
from resvariants.engine.recipes import apply_recipe

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO, 'configs')
TRANSFER = {'cub': ('CUB', 200), 'cifar10': ('CIFAR10', 10), 'cifar100': ('CIFAR100', 100)}


def _config(path):
    return Config.fromfile(osp.join(CONFIGS, path))


def _build(cfg):
    register_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg)


def _groups_by_name(model, optim_wrapper_cfg):
    """name -> (lr, weight_decay) of the optimizer mmengine builds from the config."""
    wrapper = build_optim_wrapper(model, optim_wrapper_cfg)
    by_id = {id(p): (g['lr'], g['weight_decay']) for g in wrapper.optimizer.param_groups
             for p in g['params']}
    return {name: by_id[id(p)] for name, p in model.named_parameters()}, wrapper


# ------------------------------------------------------------------------------- best epoch

@pytest.mark.parametrize('path', ['imagenet/resnet50_in1k.py',
                                  'imagenet/sge_resnext101_32x4d_in1k.py',
                                  'imagenet/ed_resnet50-a_in1k.py',
                                  'imagenet/shufflenetv2_1x_in1k.py',
                                  'ed_transfer/ed_resnet50_cub.py'])
def test_mmpretrain_configs_keep_the_best_top1_checkpoint(path):
    cfg = _config(path)
    hook = cfg.default_hooks.checkpoint
    assert (hook.type, hook.save_best, hook.rule) == ('CheckpointHook', 'accuracy/top1', 'greater')
    assert hook.backend_args == dict(backend='atomic_local')
    assert cfg.val_evaluator.type == 'Accuracy'


def test_the_best_key_is_what_mmpretrain_accuracy_reports():
    """save_best names a metric key; mmpretrain's Accuracy (the evaluator of every config above)
    reports top-1 under exactly that key, so the hook finds it at each validation."""
    register_scope('mmpretrain')
    from mmpretrain.evaluation import Accuracy
    from mmpretrain.structures import DataSample
    for topk in ((1, ), (1, 5)):
        metric = Accuracy(topk=topk)
        samples = [DataSample().set_gt_label(label).set_pred_score(torch.eye(6)[pred]).to_dict()
                   for label, pred in ((0, 0), (1, 1), (2, 3), (4, 4))]
        metric.process(None, samples)
        results = metric.evaluate(4)
        assert results['accuracy/top1'] == pytest.approx(75.0)


# ------------------------------------------------------------------------------------- SRM

@pytest.fixture(scope='module')
def narrow_srm():
    """SRM-ResNet-50 of configs/imagenet/srm_resnet50_in1k.py at 1/8 width."""
    cfg = _config('imagenet/srm_resnet50_in1k.py')
    cfg.model.backbone.base_channels = 8
    cfg.model.head.in_channels = 256
    return cfg, _build(cfg.model)


def test_srm_parameters_get_no_weight_decay(narrow_srm):
    cfg, model = narrow_srm
    groups, _ = _groups_by_name(model, cfg.optim_wrapper)
    srm = sorted(n for n in groups if '.srm.' in n)
    # cfc, bn.weight, bn.bias of the 16 blocks, nothing else (the official set_optimizer)
    assert len(srm) == 48 and {n.rsplit('.srm.', 1)[1] for n in srm} == {
        'cfc', 'bn.weight', 'bn.bias'}
    for name, (lr, decay) in groups.items():
        assert lr == 0.1, name
        assert decay == (0. if name in srm else 1e-4), name
    assert groups['backbone.layer1.0.bn3.weight'][1] == 1e-4  # the trunk's BNs keep wd
    assert groups['head.fc.bias'][1] == 1e-4


def test_srm_rule_survives_the_tricks_recipe(narrow_srm):
    """--recipe imagenet_tricks adds its own no-decay rule (biases, 'bn' names); SRM's stays."""
    cfg, model = narrow_srm
    cfg = apply_recipe(cfg.copy(), 'imagenet_tricks')
    groups, _ = _groups_by_name(model, cfg.optim_wrapper)
    for name, (_, decay) in groups.items():
        no_decay = '.srm.' in name or 'bias' in name or 'bn' in name
        assert decay == (0. if no_decay else 1e-4), name


def test_srm_resnext_inherits_the_rule():
    cfg = _config('imagenet/srm_resnext50_32x4d_in1k.py')
    assert cfg.optim_wrapper.paramwise_cfg == dict(custom_keys={'.srm.': dict(decay_mult=0.)})
    assert cfg.optim_wrapper.optimizer.weight_decay == 1e-4


# ---------------------------------------------------------------- ED transfer: lrp, CUB, CIFAR

def _narrow_transfer(name):
    """The transfer config at half width (base 32: every ED width still divides by 32 groups),
    without its ImageNet checkpoint."""
    cfg = _config(f'ed_transfer/ed_resnet50_{name}.py')
    cfg.model.backbone.update(base_channels=32, init_cfg=None)
    cfg.model.head.in_channels = 1024
    return cfg


def test_lrp_scales_the_pretrained_layers_only():
    cfg = _narrow_transfer('cub')
    assert cfg.lrp == 0.1
    model = _build(cfg.model)
    groups, wrapper = _groups_by_name(model, cfg.optim_wrapper)
    for name, (lr, decay) in groups.items():
        assert lr == pytest.approx(0.1 * 0.1 if name.startswith('backbone.') else 0.1), name
        assert decay == 1e-4, name
    assert {n for n in groups if not n.startswith('backbone.')} == {'head.fc.weight',
                                                                   'head.fc.bias'}
    assert any('.ed_path.' in n for n in groups)  # the ED path is pretrained too
    # the step schedule (x0.1 at epochs 30 / 60 / 90) keeps the ratio
    from mmengine.optim import MultiStepLR
    scheduler = MultiStepLR(wrapper, **{k: v for k, v in cfg.param_scheduler.items()
                                        if k not in ('type', '_scope_')})
    for _ in range(30):
        scheduler.step()
    lrs = sorted(g['lr'] for g in wrapper.optimizer.param_groups)
    assert lrs[0] == pytest.approx(0.001) and lrs[-1] == pytest.approx(0.01)


@pytest.mark.parametrize('name', sorted(TRANSFER))
def test_transfer_config_names_the_mmpretrain_dataset_and_its_classes(name):
    dataset_type, num_classes = TRANSFER[name]
    cfg = _config(f'ed_transfer/ed_resnet50_{name}.py')
    register_scope('mmpretrain')
    import mmpretrain.datasets
    from mmpretrain.registry import DATASETS
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.type == dataset_type
    dataset_cls = DATASETS.get(dataset_type)
    assert dataset_cls is getattr(mmpretrain.datasets, dataset_type)
    assert len(dataset_cls.METAINFO['classes']) == num_classes
    assert cfg.model.head.num_classes == cfg.data_preprocessor.num_classes == num_classes
    assert cfg.train_dataloader.dataset.split == 'train'
    assert cfg.val_dataloader.dataset.split == 'test'
    assert cfg.train_dataloader.batch_size * 8 == 256  # ED-Net's 256 images
    backbone = cfg.model.backbone
    assert backbone.type == 'resvariants.EDResNet' and backbone.depth == 50
    assert backbone.init_cfg.type == 'StrictPretrained' and backbone.init_cfg.prefix == 'backbone.'
    assert backbone.init_cfg.checkpoint.endswith('/ed_resnet50_in1k.pth')
    assert osp.isfile(osp.join(CONFIGS, 'imagenet', 'ed_resnet50_in1k.py'))
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.momentum, optimizer.weight_decay) == \
        ('SGD', 0.1, 0.9, 1e-4)
    assert cfg.param_scheduler.milestones == [30, 60, 90] and cfg.train_cfg.max_epochs == 100


@pytest.mark.parametrize('name,image,size', [('cifar10', (32, 32), 224),
                                             ('cifar100', (32, 32), 224),
                                             ('cub', (375, 500), 448)])
def test_transfer_pipelines_give_the_network_input_size(name, image, size):
    """The configs' train and test pipelines on a fabricated image of the dataset's size
    (CIFAR arrays are in memory; CUB files are read first, so its loading step is skipped)."""
    register_scope('mmpretrain')
    from mmcv.transforms import Compose
    cfg = _config(f'ed_transfer/ed_resnet50_{name}.py')
    rng = np.random.default_rng(0)
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        steps = [t for t in loader.dataset.pipeline if t['type'] != 'LoadImageFromFile']
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            pipeline = Compose(steps)
        img = rng.integers(0, 256, (*image, 3), dtype=np.uint8)
        out = pipeline(dict(img=img, img_shape=image, ori_shape=image, gt_label=3))
        assert tuple(out['inputs'].shape) == (3, size, size)


@pytest.mark.parametrize('name', sorted(TRANSFER))
def test_transfer_model_builds_and_classifies(name):
    num_classes = TRANSFER[name][1]
    cfg = _narrow_transfer(name)
    model = _build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor)).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 64, 64) * 255, mode='tensor')
    assert logits.shape == (2, num_classes) and torch.isfinite(logits).all()


def test_transfer_backbone_loads_the_imagenet_ed_checkpoint_strictly(tmp_path):
    """The ImageNet ED-ResNet-50 classifier's ``backbone.*`` (ED path included) initialises the
    CUB model's backbone key for key; the 1000-class head is not used."""
    imagenet = _config('imagenet/ed_resnet50_in1k.py').model
    imagenet.backbone.base_channels = 32
    imagenet.head.in_channels = 1024
    source = _build(imagenet)
    source.init_weights()
    checkpoint = tmp_path / 'ed_resnet50_in1k.pth'
    torch.save(dict(state_dict=source.state_dict()), checkpoint)
    cfg = _config('ed_transfer/ed_resnet50_cub.py')
    cfg.model.backbone.update(base_channels=32)
    cfg.model.backbone.init_cfg.checkpoint = str(checkpoint)
    cfg.model.head.in_channels = 1024
    model = _build(cfg.model)
    model.init_weights()
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, source.backbone.state_dict()[key]), key
    assert model.head.fc.weight.shape == (200, 1024)
