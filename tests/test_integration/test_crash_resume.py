"""SIGKILL a real training run (mid-epoch, or while it writes a checkpoint), resume it with
``tools/train.py --resume`` and get the weights of an uninterrupted run of the same seed.

Classification (cls_tiny: the demo classifier, ResNet-18, 4 iterations, checkpoints every 2),
detection (det_crash: the demo Faster R-CNN at 320x256, 2 iterations, checkpoint every one) and
a 2-process CPU DDP classification run. Also: a run whose loss turns NaN stops with a clear
message and keeps the last good checkpoint.
"""
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from resvariants.utils.safe_load import load_checkpoint_safely

from .utils import REPO, free_port, python_tool, run, tool_env

CLS_CFG = 'tests/configs/cls_tiny.py'
DET_CFG = 'tests/configs/det_crash.py'

# Replaces os.fsync in the training process: when the atomic backend is about to publish
# CHECKPOINT, signal the test (marker file) and hang, so the test can SIGKILL the run while the
# checkpoint is being written.
_HANG_WHILE_SAVING = textwrap.dedent('''
    import os, runpy, sys, time
    _fsync, target, marker = os.fsync, os.environ['HANG_ON_SAVE'], os.environ['SAVE_MARKER']
    def fsync(fd):
        if osp_basename(os.readlink(f'/proc/self/fd/{fd}')).startswith('.' + target + '.'):
            open(marker, 'w').close()
            time.sleep(600)
        return _fsync(fd)
    osp_basename = os.path.basename
    os.fsync = fsync
    sys.argv = ['tools/train.py'] + sys.argv[1:]
    runpy.run_path('tools/train.py', run_name='__main__')
''')


def _weights(path):
    return load_checkpoint_safely(str(path))['state_dict']


def _assert_same_weights(a_path, b_path):
    a, b = _weights(a_path), _weights(b_path)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def _last_checkpoint(work):
    path = osp.join(work, 'last_checkpoint')
    return open(path).read().strip() if osp.isfile(path) else None


def _start(cmd, **env):
    return subprocess.Popen(cmd, cwd=REPO, env=tool_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _process_tree(pid):
    """``pid`` and all its descendants (torchrun starts its workers in new sessions)."""
    children = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    ppid = int(f.read().rsplit(')', 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    tree, stack = [], [pid]
    while stack:
        tree.append(stack.pop())
        stack.extend(children.get(tree[-1], []))
    return tree


def _sigkill_tree(proc):
    """SIGKILL every process of the run at once, like a machine losing power."""
    for pid in _process_tree(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _kill_when(proc, condition, timeout=900):
    """SIGKILL the run (``proc`` and its descendants) as soon as ``condition()`` holds."""
    deadline = time.time() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError('run ended before it could be killed:\n'
                                 + proc.stdout.read()[-3000:])
        if time.time() > deadline:
            _sigkill_tree(proc)
            raise AssertionError('kill condition never met')
        time.sleep(0.05)
    _sigkill_tree(proc)
    proc.wait(timeout=60)
    out = proc.stdout.read()
    proc.stdout.close()
    return out


@pytest.fixture(scope='module')
def cls_reference(tmp_path_factory):
    work = tmp_path_factory.mktemp('cls_full')
    code, out = python_tool('tools/train.py', CLS_CFG, '--work-dir', str(work))
    assert code == 0, out[-4000:]
    return work


def test_cls_sigkill_mid_epoch_then_resume(cls_reference, tmp_path):
    proc = _start([sys.executable, 'tools/train.py', CLS_CFG, '--work-dir', str(tmp_path)])
    # killed during iteration 3 of 4 (epoch 1 of the 64-image set is 8 iterations long)
    _kill_when(proc, lambda: (_last_checkpoint(tmp_path) or '').endswith('iter_2.pth'))
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / 'iter_4.pth').exists()
    code, out = python_tool('tools/train.py', CLS_CFG, '--work-dir', str(tmp_path), '--resume')
    assert code == 0, out[-4000:]
    assert re.search(r'resumed epoch: \d+, iter: 2', out), out[-3000:]
    assert re.findall(r'Iter\(train\) \[(\d)/4\]', out) == ['3', '4']
    _assert_same_weights(cls_reference / 'iter_4.pth', tmp_path / 'iter_4.pth')


def test_cls_sigkill_while_saving_keeps_previous_checkpoint(cls_reference, tmp_path):
    marker = tmp_path / 'saving'
    proc = _start([sys.executable, '-c', _HANG_WHILE_SAVING, CLS_CFG, '--work-dir',
                   str(tmp_path)], HANG_ON_SAVE='iter_4.pth', SAVE_MARKER=str(marker))
    _kill_when(proc, marker.exists)
    assert proc.returncode == -signal.SIGKILL
    # the interrupted write is a hidden temporary file; iter_4.pth was never published
    assert not (tmp_path / 'iter_4.pth').exists()
    assert any(p.name.startswith('.iter_4.pth.') for p in tmp_path.iterdir())
    assert _last_checkpoint(tmp_path).endswith('iter_2.pth')
    previous = load_checkpoint_safely(str(tmp_path / 'iter_2.pth'))
    assert previous['meta']['iter'] == 2
    code, out = python_tool('tools/train.py', CLS_CFG, '--work-dir', str(tmp_path), '--resume')
    assert code == 0, out[-4000:]
    assert re.search(r'resumed epoch: \d+, iter: 2', out), out[-3000:]
    _assert_same_weights(cls_reference / 'iter_4.pth', tmp_path / 'iter_4.pth')


def test_det_sigkill_mid_epoch_then_resume(tmp_path):
    full, part = tmp_path / 'full', tmp_path / 'part'
    code, out = python_tool('tools/train.py', DET_CFG, '--work-dir', str(full))
    assert code == 0, out[-4000:]
    proc = _start([sys.executable, 'tools/train.py', DET_CFG, '--work-dir', str(part)])
    _kill_when(proc, lambda: (_last_checkpoint(part) or '').endswith('iter_1.pth'))
    assert proc.returncode == -signal.SIGKILL
    assert not (part / 'iter_2.pth').exists()
    code, out = python_tool('tools/train.py', DET_CFG, '--work-dir', str(part), '--resume')
    assert code == 0, out[-4000:]
    assert re.search(r'resumed epoch: \d+, iter: 1', out), out[-3000:]
    # proposal sampling is random: equal weights need the RNG state restored (RNGStateHook)
    _assert_same_weights(full / 'iter_2.pth', part / 'iter_2.pth')


def test_two_process_ddp_sigkill_then_resume(tmp_path):
    full, part = tmp_path / 'full', tmp_path / 'part'

    def dist_cmd(work, *extra):
        return ['bash', 'tools/dist_train.sh', CLS_CFG, '2', '--work-dir', str(work), *extra]

    code, out = run(dist_cmd(full), PORT=str(free_port()))
    assert code == 0, out[-4000:]
    # the run pauses once iter_2.pth is published, so the kill lands before iteration 3
    marker, paused_cfg = tmp_path / 'paused', tmp_path / 'cls_tiny_pausing.py'
    paused_cfg.write_text(
        f"_base_ = '{osp.join(REPO, CLS_CFG)}'\n"
        "custom_imports = dict(imports=['resvariants.models', "
        "'pause_after_checkpoint'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='PauseAfterCheckpointHook')]\n")
    proc = _start(['bash', 'tools/dist_train.sh', str(paused_cfg), '2', '--work-dir', str(part)],
                  PORT=str(free_port()), PAUSE_AFTER_ITER='2', PAUSE_MARKER=str(marker),
                  PYTHONPATH=osp.join(REPO, 'tests', 'helpers'))
    _kill_when(proc, marker.exists)
    assert _last_checkpoint(part).endswith('iter_2.pth')
    assert proc.returncode == -signal.SIGKILL
    time.sleep(2)  # the orphaned workers are gone: nothing more is written
    assert not (part / 'iter_4.pth').exists()
    code, out = run(dist_cmd(part, '--resume'), PORT=str(free_port()))
    assert code == 0, out[-4000:]
    assert re.search(r'resumed epoch: \d+, iter: 2', out), out[-3000:]
    _assert_same_weights(full / 'iter_4.pth', part / 'iter_4.pth')


def test_nan_loss_stops_training_and_keeps_last_good_checkpoint(tmp_path):
    cfg = tmp_path / 'diverge.py'
    # from iteration 3 on the learning rate is 1e29: the weights blow up, the next loss is NaN
    cfg.write_text(f"_base_ = '{osp.join(REPO, CLS_CFG)}'\n"
                   "param_scheduler = [dict(type='MultiStepLR', by_epoch=False, milestones=[2], "
                   "gamma=1e30)]\n")
    work = tmp_path / 'work'
    code, out = python_tool('tools/train.py', str(cfg), '--work-dir', str(work))
    assert code != 0
    assert 'FloatingPointError: training stopped: the loss is not finite' in out, out[-3000:]
    assert 'iteration 4' in out and 'last good checkpoint is' in out and 'iter_2.pth' in out
    assert sorted(p.name for p in work.glob('*.pth')) == ['iter_2.pth']
    assert _last_checkpoint(work).endswith('iter_2.pth')
    state = _weights(work / 'iter_2.pth')
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
