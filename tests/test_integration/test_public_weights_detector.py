"""A detector trains from a converted torchvision ResNet-50 with zero missing trunk keys."""
import os.path as osp
import re

import pytest
import torch
import torchvision

from resvariants.utils import load_checkpoint_safely

from .utils import DATA, python_tool

DET_CFG = 'tests/configs/det_tiny_converted_backbone.py'
pytestmark = pytest.mark.integration


def calibrated_resnet50():
    """A random torchvision ResNet-50 whose BN statistics match its activations (as in a
    trained network), so that the frozen-BN detector sees well-scaled features."""
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(4, 3, 128, 128))
    return model


def test_faster_rcnn_trains_from_converted_torchvision_resnet50(tmp_path):
    src, dst = tmp_path / 'resnet50-11ad3fa6.pth', tmp_path / 'tv_resnet50.pth'
    torch.save(calibrated_resnet50().state_dict(), src)
    code, out = python_tool('tools/model_converters/convert_resnet.py', '--from', 'torchvision',
                            str(src), str(dst))
    assert code == 0, out[-3000:]
    assert re.search(r'max abs logit difference vs the source model = 0\b', out), out[-2000:]
    converted = torch.load(dst, map_location='cpu', weights_only=True)['state_dict']
    trunk = {k: v for k, v in converted.items() if k.startswith('backbone.')}

    work = tmp_path / 'det'
    code, out = python_tool('tools/train.py', DET_CFG, '--work-dir', str(work), '--no-validate',
                            '--cfg-options', f'model.backbone.init_cfg.checkpoint={dst}')
    assert code == 0, out[-4000:]
    assert f'StrictPretrained: loaded {len(trunk)} tensors' in out, out[-4000:]
    assert '0 missing / 0 unexpected keys' in out
    losses = [float(x) for x in re.findall(r'Iter\(train\) \[\s*\d+/2\].*? loss: ([0-9.]+)', out)]
    assert len(losses) == 2 and all(0 < loss < float('inf') for loss in losses), out[-3000:]
    trained = load_checkpoint_safely(str(work / 'iter_2.pth'))['state_dict']
    # frozen stem + stage 1 (frozen_stages=1) and every BN statistic (norm_eval=True) are still
    # exactly the converted torchvision tensors after training
    frozen = [k for k in trunk if k.startswith(('backbone.conv1.', 'backbone.bn1.',
                                                'backbone.layer1.'))
              or k.endswith(('running_mean', 'running_var'))]
    assert len(frozen) > 100
    for key in frozen:
        assert torch.equal(trained[key], trunk[key]), key
