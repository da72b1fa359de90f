"""PytorchInsight checkpoints convert exactly: every key of the original layouts maps, the
converted model loads strictly and computes the same logits as an independent re-implementation
of the original network."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from resvariants.converters import (convert_pytorchinsight_state_dict, infer_pytorchinsight_arch,
                                    pytorchinsight_arch_candidates)
from test_integration.utils import REPO, tool_env

KEYS_DIR = osp.join(REPO, 'tests', 'data', 'reference', 'keys')
LISTINGS = {'resnet50': 'keys_resnet50.txt', 'resnet101': 'keys_resnet101.txt',
            'se_resnet50': 'keys_se_resnet50.txt', 'sk_resnet50': 'keys_sk_resnet50.txt',
            'cbam_resnet50': 'keys_cbam_resnet50.txt', 'bam_resnet50': 'keys_bam_resnet50.txt',
            'gc_resnet50': 'keys_gc_resnet50.txt', 'sge_resnet50': 'keys_sge_resnet50.txt',
            'sge_resnet101': 'keys_sge_resnet101.txt'}


def state_from_listing(name):
    """A random state dict with exactly the keys and shapes of an original model."""
    state = {}
    with open(osp.join(KEYS_DIR, name)) as f:
        for line in f:
            if line.startswith('#') or not line.strip():
                continue
            key, shape, dtype = line.rstrip('\n').split('\t')
            shape = tuple(int(s) for s in shape.strip('()').split(',') if s.strip())
            if dtype == 'int64':
                state[key] = torch.tensor(7)
            elif key.endswith('running_var'):
                state[key] = torch.rand(shape) + 0.5
            else:
                state[key] = torch.randn(shape) * 0.1
    return state


def _save_pi(state, path, prefix='module.'):
    torch.save({'epoch': 98, 'best_acc': torch.tensor(77.5),
                'state_dict': {prefix + k: v for k, v in state.items()},
                'optimizer': {'state': {}, 'param_groups': [{'lr': 0.1}]}}, path)


@pytest.mark.parametrize('arch', sorted(LISTINGS))
def test_converter_round_trip_against_key_listings(arch, tmp_path):
    state = state_from_listing(LISTINGS[arch])
    module_state = {'module.' + k: v for k, v in state.items()}
    plain_layout = arch in ('resnet50', 'resnet101')
    if plain_layout:  # resnet<d> and ws_resnet<d> share the layout: --arch decides
        depth = arch.rpartition('resnet')[2]
        assert pytorchinsight_arch_candidates(module_state) == (f'resnet{depth}',
                                                                f'ws_resnet{depth}')
    else:
        assert infer_pytorchinsight_arch(module_state) == arch
    src, dst = tmp_path / f'{arch}.pth.tar', tmp_path / f'{arch}.pth'
    _save_pi(state, src)
    proc = subprocess.run([sys.executable, 'tools/model_converters/pytorchinsight_to_mmpretrain.py',
                           str(src), str(dst)] + (['--arch', arch] if plain_layout else []),
                          cwd=REPO, env=tool_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    checkpoint = torch.load(dst, map_location='cpu', weights_only=True)
    assert checkpoint['meta']['arch'] == arch
    assert checkpoint['meta']['config'] == f'configs/imagenet/{arch}_in1k.py'
    converted = checkpoint['state_dict']
    assert len(converted) == len(state)  # nothing dropped, nothing invented
    if arch.startswith('se_'):
        torch.testing.assert_close(converted['backbone.layer1.0.se_layer.conv1.conv.weight'][:, :, 0, 0],
                                   state['layer1.0.se.fc.0.weight'])


def test_unknown_keys_are_named(tmp_path):
    state = state_from_listing('keys_resnet50.txt')
    state['layer1.0.mystery.weight'] = torch.zeros(3)
    with pytest.raises(KeyError, match='layer1.0.mystery.weight'):
        convert_pytorchinsight_state_dict(state)


def test_arch_mismatch_is_an_error(tmp_path):
    src = tmp_path / 'r50.pth.tar'
    _save_pi(state_from_listing('keys_resnet50.txt'), src)
    proc = subprocess.run([sys.executable, 'tools/model_converters/pytorchinsight_to_mmpretrain.py',
                           str(src), str(tmp_path / 'o.pth'), '--arch', 'sge_resnet50'], cwd=REPO,
                          env=tool_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and 'does not match the checkpoint' in proc.stderr


class _ReferenceSGE(nn.Module):
    """SGE written as in the original code (per-group reshape, unbiased std + eps)."""

    def __init__(self, groups=64):
        super().__init__()
        self.groups = groups
        self.weight = nn.Parameter(torch.zeros(1, groups, 1, 1))
        self.bias = nn.Parameter(torch.ones(1, groups, 1, 1))

    def forward(self, x):
        b, c, h, w = x.size()
        x = x.view(b * self.groups, -1, h, w)
        xn = (x * F.adaptive_avg_pool2d(x, 1)).sum(dim=1, keepdim=True)
        t = xn.view(b * self.groups, -1)
        t = t - t.mean(dim=1, keepdim=True)
        t = t / (t.std(dim=1, keepdim=True) + 1e-5)
        t = t.view(b, self.groups, h, w) * self.weight + self.bias
        x = x * torch.sigmoid(t.view(b * self.groups, 1, h, w))
        return x.view(b, c, h, w)


class _ReferenceSE(nn.Module):
    def __init__(self, c, r=16):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(c, c // r), nn.ReLU(inplace=True), nn.Linear(c // r, c),
                                nn.Sigmoid())

    def forward(self, x):
        return x * self.fc(x.mean((2, 3)))[:, :, None, None]


def _reference_network(kind):
    """torchvision ResNet-50 (PytorchInsight's key names) with the module after bn3."""
    net = torchvision.models.resnet50(weights=None)
    if kind is None:
        return net
    for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
        for block in layer:
            c = block.bn3.num_features
            setattr(block, kind, _ReferenceSGE(64) if kind == 'sge' else _ReferenceSE(c))
            block.bn3 = nn.Sequential(block.bn3, getattr(block, kind))
    return net


@pytest.mark.parametrize('kind', [None, 'sge', 'se'])
def test_converted_model_computes_the_same_logits(kind, tmp_path):
    from tools.model_converters.pytorchinsight_to_mmpretrain import build_imagenet_model
    torch.manual_seed(0)
    ref = _reference_network(kind)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith('.weight') and ('sge' in name or 'bn' in name):
                p.uniform_(0.5, 1.5)
            elif name.endswith('.bias') and 'sge' in name:
                p.normal_(0, 0.5)
    ref.eval()
    # PytorchInsight keys: the module lives at layerX.Y.<kind>, not inside bn3
    state = {k.replace('bn3.0.', 'bn3.').replace(f'bn3.1.', f'{kind}.'): v
             for k, v in ref.state_dict().items()}
    arch = f'{kind}_resnet50' if kind else 'resnet50'
    model = build_imagenet_model(arch).eval()
    missing, unexpected = model.load_state_dict(convert_pytorchinsight_state_dict(state),
                                                strict=True)
    assert not missing and not unexpected
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(model(x, mode='tensor'), ref(x), rtol=1e-4, atol=1e-4)
