"""PytorchInsight checkpoints convert exactly: every key of the original layouts maps, the
converted model loads strictly and computes the same logits as an independent re-implementation
of the original network."""
import os.path as osp
import subprocess
import sys

import pytest
import torch

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


# Logits equality for every architecture: test_pytorchinsight_logits.py (independent
# re-implementation of the source models in pytorchinsight_reference.py).
