"""Real mmpretrain training through tools/train.py: a resumed run ends where an unbroken one does."""
import os.path as osp
import re

import torch

from resvariants.utils import load_checkpoint_safely

from .utils import python_tool

CLS_CFG = 'tests/configs/cls_tiny.py'


def _weights(path):
    return load_checkpoint_safely(str(path))['state_dict']


def test_resume_matches_uninterrupted_run(tmp_path):
    full, part = tmp_path / 'full', tmp_path / 'part'
    code, out = python_tool('tools/train.py', CLS_CFG, '--work-dir', str(full))
    assert code == 0, out[-4000:]
    code, out = python_tool('tools/train.py', CLS_CFG, '--work-dir', str(part), '--resume',
                            str(full / 'iter_2.pth'))
    assert code == 0, out[-4000:]
    assert re.search(r'resumed epoch: \d+, iter: 2', out), out[-3000:]
    assert re.findall(r'Iter\(train\) \[(\d)/4\]', out) == ['3', '4']
    a, b = _weights(full / 'iter_4.pth'), _weights(part / 'iter_4.pth')
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert osp.exists(part / 'last_checkpoint')
