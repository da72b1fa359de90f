"""Weights-only loading everywhere: mmengine checkpoints load, malicious pickles do not."""
import os
import pickle

import pytest
import torch

from resvariants.engine.strict_pretrained import StrictPretrainedInit
from resvariants.utils import load_checkpoint_safely

MARKER_ENV = 'RESVARIANTS_PWNED_MARKER'


class _RunsCodeOnLoad:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def make_malicious_checkpoint(path, marker):
    with open(path, 'wb') as f:
        pickle.dump({'state_dict': {'w': torch.zeros(1)}, 'evil': _RunsCodeOnLoad(marker)}, f)
    # also as a torch zip archive, the format torch.save writes
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'evil': _RunsCodeOnLoad(marker)},
               str(path) + '.zip.pth')


def test_malicious_pickle_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / 'pwned'
    bad = tmp_path / 'bad.pth'
    make_malicious_checkpoint(bad, marker)
    for path in (bad, str(bad) + '.zip.pth'):
        with pytest.raises(RuntimeError, match='refusing to load|cannot read'):
            load_checkpoint_safely(str(path))
    assert not marker.exists()


def test_mmengine_load_checkpoint_refuses_malicious_file(tmp_path):
    """mmengine's own loader (used by resume, test and Pretrained init) keeps the safety."""
    from mmengine.runner.checkpoint import _load_checkpoint
    marker = tmp_path / 'pwned'
    bad = tmp_path / 'bad.pth'
    make_malicious_checkpoint(bad, marker)
    with pytest.raises(Exception, match='Weights only load failed|Unsupported global'):
        _load_checkpoint(str(bad) + '.zip.pth', map_location='cpu')
    assert not marker.exists()


def test_mmengine_runner_checkpoint_types_are_allowed(tmp_path):
    """A checkpoint holding what Runner.save_checkpoint writes loads weights-only."""
    import numpy as np
    from mmengine.logging import HistoryBuffer, MessageHub
    hub = MessageHub.get_instance('test_safe_load')
    hub.update_scalar('train/loss', 1.5)
    hub.update_info('iter', np.int64(3))
    ckpt = dict(meta=dict(epoch=1, iter=np.int64(3), seed=np.float64(0.5)),
                state_dict={'w': torch.ones(2)}, message_hub=hub.state_dict(),
                optimizer={'state': {}, 'param_groups': [{'lr': 0.1}]})
    path = tmp_path / 'runner.pth'
    torch.save(ckpt, path)
    loaded = load_checkpoint_safely(str(path))
    assert isinstance(loaded['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    from mmengine.runner.checkpoint import _load_checkpoint
    assert _load_checkpoint(str(path), map_location='cpu')['meta']['iter'] == 3


def test_getattr_is_restricted_to_history_buffer_methods(tmp_path):
    """getattr on anything but HistoryBuffer's statistics methods is refused."""
    import numpy as np

    class _GetattrAttack:
        def __reduce__(self):
            return (getattr, (np.ndarray, 'tofile'))

    path = tmp_path / 'getattr.pth'
    torch.save({'x': _GetattrAttack()}, path)
    with pytest.raises(RuntimeError, match='refusing|cannot read'):
        load_checkpoint_safely(str(path))


def test_forcing_unsafe_load_is_rejected(monkeypatch):
    from resvariants.utils import safe_load
    monkeypatch.setattr(safe_load, '_ALLOWED', False)
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    with pytest.raises(RuntimeError, match='TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'):
        safe_load.allow_mmengine_checkpoint_types()


def test_strict_pretrained_lists_key_problems(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    state = {f'backbone.{k}': v for k, v in model.state_dict().items()}
    state['backbone.extra.weight'] = torch.zeros(1)
    state['backbone.0.weight'] = torch.zeros(5, 3, 3, 3)
    del state['backbone.1.bias']
    path = tmp_path / 'cls.pth'
    torch.save({'state_dict': state}, path)
    with pytest.raises(KeyError) as err:
        StrictPretrainedInit(checkpoint=str(path), prefix='backbone.')(model)
    msg = str(err.value)
    assert '1 missing keys: 1.bias' in msg
    assert '1 unexpected keys: extra.weight' in msg
    assert '0.weight: checkpoint (5, 3, 3, 3) vs model (4, 3, 3, 3)' in msg


def test_strict_pretrained_loads_exact_match(tmp_path):
    src = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    dst = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    path = tmp_path / 'cls.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in src.state_dict().items()},
                'meta': {'epoch': 3}}, path)
    StrictPretrainedInit(checkpoint=str(path), prefix='backbone.')(dst)
    torch.testing.assert_close(dst[0].weight, src[0].weight)


@pytest.mark.parametrize('attention', ['se', 'cbam', 'bam', 'gc', 'sge', 'srm'])
def test_strict_pretrained_is_not_overwritten_by_module_inits(attention, tmp_path):
    """Attention modules re-initialise themselves; the checkpoint must still win."""
    from resvariants.models import ResNet
    src = ResNet(depth=50, base_channels=16, attention=attention)
    with torch.no_grad():
        for p in src.parameters():
            p.normal_()
    path = tmp_path / 'cls.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in src.state_dict().items()}}, path)
    dst = ResNet(depth=50, base_channels=16, attention=attention,
                 init_cfg=dict(type='StrictPretrained', checkpoint=str(path), prefix='backbone.'))
    dst.init_weights()
    for key, value in src.state_dict().items():
        torch.testing.assert_close(dst.state_dict()[key], value, msg=key)


def test_state_dict_of_every_checkpoint_layout():
    from resvariants.utils import state_dict_of
    w = torch.zeros(2)
    for checkpoint in ({'state_dict': {'module.a': w}, 'meta': {}},  # mmengine / DataParallel
                       {'model': {'a': w}, 'optimizer': {}},  # torchvision reference scripts
                       {'a': w}):  # a bare release
        state = state_dict_of(checkpoint, 'x.pth')
        assert list(state) == ['a'] and state['a'] is w
    assert list(state_dict_of({'backbone.module.a': w})) == ['backbone.module.a']
    for bad, message in (([w], 'holds no state dict (got list)'),
                         ({}, 'holds no state dict (got dict)'),
                         ({'state_dict': [w]}, "holds no tensors; top-level keys: ['state_dict']"),
                         ({'state_dict': {}}, 'holds no tensors; top-level keys: []'),
                         ({'epoch': 3}, "holds no tensors; top-level keys: ['epoch']")):
        with pytest.raises(KeyError) as info:
            state_dict_of(bad, 'x.pth')
        assert info.value.args[0] == f'x.pth {message}'
