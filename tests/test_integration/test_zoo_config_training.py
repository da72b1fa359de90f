"""The zoo config itself, `configs/faster_rcnn_sge_r50_fpn.py`, trained for real on det_small
through tools/train.py (only data location, image size, length and the ImageNet checkpoint
overridden on the command line, as a user would) and evaluated by tools/test.py (COCO bbox)."""
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from resvariants.engine.config_loading import register_scope
from resvariants.utils import load_checkpoint_safely

from .utils import DATA, REPO, python_tool

ZOO_CFG = 'configs/faster_rcnn_sge_r50_fpn.py'
DET_SMALL = osp.join(DATA, 'det_small') + '/'


def det_small_overrides(scale='(320,256)', n_train=4, n_val=4):
    """--cfg-options that point a COCO zoo config at det_small at a CPU-friendly size."""
    opts = []
    for loader, ann, n in (('train_dataloader', 'train', n_train), ('val_dataloader', 'val', n_val),
                           ('test_dataloader', 'val', n_val)):
        opts += [f'{loader}.dataset.data_root={DET_SMALL}',
                 f'{loader}.dataset.ann_file=annotations/instances_{ann}.json',
                 f'{loader}.dataset.data_prefix.img=images/', f'{loader}.dataset.indices={n}',
                 f'{loader}.num_workers=0', f'{loader}.persistent_workers=False',
                 f'{loader}.batch_size=2']
    opts += ['train_dataloader.dataset.pipeline.2.scale=' + scale,
             'val_dataloader.dataset.pipeline.1.scale=' + scale,
             'test_dataloader.dataset.pipeline.1.scale=' + scale]
    for evaluator in ('val_evaluator', 'test_evaluator'):
        opts.append(f'{evaluator}.ann_file={DET_SMALL}annotations/instances_val.json')
    return opts


@pytest.fixture(scope='module')
def sge_classifier_checkpoint(tmp_path_factory):
    """An SGE-ResNet-50 ImageNet classifier checkpoint (what configs/imagenet/ training writes)."""
    register_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, 'configs/imagenet/sge_resnet50_in1k.py'))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    path = tmp_path_factory.mktemp('imagenet') / 'sge_resnet50_in1k.pth'
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, path)
    return str(path), model.state_dict()


def test_zoo_config_trains_on_det_small_and_tools_test_evaluates(sge_classifier_checkpoint,
                                                                tmp_path):
    ckpt, classifier_state = sge_classifier_checkpoint
    # 2 iterations of 2 images (the train loop is epoch based: 4 images = one epoch)
    opts = det_small_overrides() + [f'model.backbone.init_cfg.checkpoint={ckpt}',
                                    'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
                                    'model.test_cfg.rcnn.score_thr=0.0']
    code, out = python_tool('tools/train.py', ZOO_CFG, '--work-dir', str(tmp_path),
                            '--auto-scale-lr', '--cfg-options', *opts)
    assert code == 0, out[-4000:]
    # the ImageNet checkpoint is loaded strictly: every backbone tensor, nothing missing
    assert re.search(r'StrictPretrained: loaded \d+ tensors from \S+ into ResNet with 0 missing '
                     r'/ 0 unexpected keys', out), out[-3000:]
    losses = re.findall(r'Epoch\(train\)\s+\[1\]\[\s*\d+/2\].*? loss: ([0-9.]+)', out)
    assert losses and all(float(x) > 0 for x in losses), out[-3000:]
    assert re.search(r'coco/bbox_mAP: [0-9.]+', out), out[-3000:]  # validation after the epoch
    state = load_checkpoint_safely(str(tmp_path / 'epoch_1.pth'))['state_dict']
    # frozen stage 1 keeps the classifier's weights exactly; a trained stage moved
    key = 'layer1.0.conv1.weight'
    assert torch.equal(state['backbone.' + key], classifier_state['backbone.' + key])
    key = 'layer4.0.conv2.weight'
    assert not torch.equal(state['backbone.' + key], classifier_state['backbone.' + key])
    assert 'backbone.layer2.0.sge.weight' in state

    code, out = python_tool('tools/test.py', ZOO_CFG, str(tmp_path / 'epoch_1.pth'),
                            '--work-dir', str(tmp_path / 'test'), '--cfg-options', *opts)
    assert code == 0, out[-4000:]
    assert 'Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all' in out
    assert re.search(r'coco/bbox_mAP: [0-9.]+ +coco/bbox_mAP_50: [0-9.]+', out), out[-3000:]
