"""A checkpoint that would run code on load is refused by every entry point, and nothing runs.

Entry points: ``tools/train.py --resume CKPT``, ``--resume`` (auto, from the work dir),
``load_from``; ``tools/test.py``; the StrictPretrained and mmengine Pretrained inits; every
converter in tools/model_converters/. The malicious file is a real torch.save archive (and a
plain pickle) whose unpickling calls ``os.system('touch MARKER')``.
"""
import importlib.util
import os
import os.path as osp
import pickle

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLS_CFG = osp.join(REPO, 'tests/configs/cls_tiny.py')


class _RunsCodeOnLoad:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


@pytest.fixture(params=['torch_zip', 'plain_pickle'])
def malicious(request, tmp_path):
    """(path, marker): a checkpoint with a valid-looking state_dict and a code-running object."""
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    payload = {'meta': {'iter': 2, 'epoch': 0}, 'state_dict': {'w': torch.zeros(1)},
               'evil': _RunsCodeOnLoad(marker)}
    if request.param == 'torch_zip':
        torch.save(payload, path)
    else:
        with open(path, 'wb') as f:
            pickle.dump(payload, f)
    yield str(path), marker
    assert not marker.exists(), 'the malicious checkpoint ran code'


def _tool(relpath):
    name = '_tool_' + relpath.replace('/', '_').replace('.py', '')
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REFUSED = r'refusing to load|not a plain weights checkpoint'


def test_train_resume_from_path(malicious, tmp_path):
    path, _ = malicious
    with pytest.raises(RuntimeError, match=r'refusing to load --resume checkpoint .*evil.pth'):
        _tool('tools/train.py').main([CLS_CFG, '--work-dir', str(tmp_path / 'w'), '--resume',
                                      path])


def test_train_auto_resume_from_work_dir(malicious, tmp_path):
    path, _ = malicious
    work = tmp_path / 'w'
    work.mkdir()
    (work / 'last_checkpoint').write_text(path)
    with pytest.raises(RuntimeError, match=r'refusing to load checkpoint .*evil.pth'):
        _tool('tools/train.py').main([CLS_CFG, '--work-dir', str(work), '--resume'])


def test_train_load_from(malicious, tmp_path):
    path, _ = malicious
    with pytest.raises(RuntimeError, match=r'refusing to load load_from checkpoint'):
        _tool('tools/train.py').main([CLS_CFG, '--work-dir', str(tmp_path / 'w'),
                                      '--cfg-options', f'load_from={path}'])


def test_test_tool(malicious, tmp_path):
    path, _ = malicious
    with pytest.raises(RuntimeError, match=r'refusing to load checkpoint .*evil.pth'):
        _tool('tools/test.py').main([CLS_CFG, path, '--work-dir', str(tmp_path / 'w')])


@pytest.mark.parametrize('init_type', ['StrictPretrained', 'Pretrained'])
def test_pretrained_inits(malicious, init_type):
    from resvariants.models import ResNet
    path, _ = malicious
    model = ResNet(depth=18, base_channels=8,
                   init_cfg=dict(type=init_type, checkpoint=path, prefix='backbone.'))
    # ours names the file; mmengine's Pretrained keeps torch's weights-only refusal
    with pytest.raises(Exception, match=REFUSED + '|Weights only load failed'):
        model.init_weights()


@pytest.mark.parametrize('tool,argv', [
    ('convert_resnet.py', ['--from', 'torchvision', '{src}', '{out}/out.pth']),
    ('convert_resnet.py', ['--from', 'pytorchinsight', '{src}', '{out}/out.pth']),
    ('pytorchinsight_to_mmpretrain.py', ['{src}', '{out}/out.pth']),
    ('ednet_to_mmpretrain.py', ['{src}', '{out}/out.pth']),
    ('warm_start.py', [CLS_CFG, '{src}', '{out}/out.pth']),
    ('remove_residual.py', [CLS_CFG, '{src}', '{out}']),
    ('epsilon_compact.py', [CLS_CFG, '{src}', '{out}']),
])
def test_converters(malicious, tmp_path, tool, argv):
    path, _ = malicious
    argv = [a.format(src=path, out=tmp_path) for a in argv]
    with pytest.raises(RuntimeError, match=REFUSED):
        _tool(f'tools/model_converters/{tool}').main(argv)
    assert not (tmp_path / 'out.pth').exists()
