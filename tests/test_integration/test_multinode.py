"""A real 2-node x 1-process training on this machine: two tools/dist_train.sh invocations
(NNODES=2, NODE_RANK=0/1, MASTER_ADDR=127.0.0.1, a free PORT; gloo on the CPU), checked
against a 1-process run with the same global batch, then resumed on another world size."""
import json
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from resvariants.utils.safe_load import load_checkpoint_safely

from .utils import REPO, free_port, tool_env

CFG = 'tests/configs/cls_multinode.py'  # 4 iterations, checkpoints at 2 and 4, lr x 1/2 at batch 4


def start(cmd, **env):
    return subprocess.Popen(cmd, cwd=REPO, env=tool_env(OMP_NUM_THREADS='1', **env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc, timeout=600):
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def records(work_dir):
    with open(osp.join(work_dir, 'rank_sync.jsonl')) as f:
        return [json.loads(line) for line in f]


def logged_lrs(out):
    return {int(i): float(lr) for i, lr in re.findall(r'Iter\(train\) \[\s*(\d+)/\d+\]\s+lr: (\S+)',
                                                      out)}


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """2 nodes x 1 process x batch 2 and 1 process x batch 4, run side by side."""
    root = tmp_path_factory.mktemp('multinode')
    port = str(free_port())
    nodes = [start(['bash', 'tools/dist_train.sh', CFG, '1', '--work-dir', str(root / f'node{r}'),
                    '--auto-scale-lr', '--cfg-options', 'train_dataloader.batch_size=2'],
                   NNODES='2', NODE_RANK=str(r), MASTER_ADDR='127.0.0.1', PORT=port)
             for r in (0, 1)]
    single = start([sys.executable, 'tools/train.py', CFG, '--work-dir', str(root / 'single'),
                    '--auto-scale-lr'])
    results = [finish(p) for p in (*nodes, single)]
    for code, out in results:
        assert code == 0, out[-4000:]
    return root, results


def test_both_ranks_step_together_with_identical_weights(runs):
    root, _ = runs
    two_nodes = records(root / 'node0')
    assert [r['iter'] for r in two_nodes] == [1, 2, 3, 4]
    for record in two_nodes:
        assert record['world_size'] == 2
        assert [(r['rank'], r['iter']) for r in record['ranks']] == [(0, record['iter']),
                                                                    (1, record['iter'])]
        fingerprints = [r['fingerprint'] for r in record['ranks']]
        assert fingerprints[0] == pytest.approx(fingerprints[1], rel=1e-9)
        # the two ranks trained on different images
        assert record['ranks'][0]['loss'] != record['ranks'][1]['loss']


def test_checkpoints_are_written_once_by_rank_0(runs):
    root, (node0, node1, _) = runs
    names = lambda d: sorted(p.name for p in d.iterdir() if p.suffix == '.pth' or  # noqa: E731
                             p.name.endswith('.tmp'))
    assert names(root / 'node0') == ['iter_2.pth', 'iter_4.pth']
    assert names(root / 'node1') == []  # node 1 has its own work dir: nothing saved there
    assert len(re.findall(r'Saving checkpoint at 4 iterations', node0[1])) == 1
    assert 'Saving checkpoint' not in node1[1]


def test_loss_and_weights_equal_a_single_process_with_the_same_global_batch(runs):
    root, (node0, _, single) = runs
    two_nodes, one = records(root / 'node0'), records(root / 'single')
    assert [r['world_size'] for r in one] == [1] * 4
    for dist_record, single_record in zip(two_nodes, one, strict=True):
        mean_loss = sum(r['loss'] for r in dist_record['ranks']) / 2
        assert mean_loss == pytest.approx(single_record['ranks'][0]['loss'], rel=1e-5, abs=1e-6)
    # auto_scale_lr sees the global batch: 2 nodes x 2 and 1 x 4 both give lr x 4/8
    for out in (node0[1], single[1]):
        assert 'the current batch size is 4. Scaling the original LR by 0.5' in out
    assert logged_lrs(node0[1]) == logged_lrs(single[1])
    weights = [load_checkpoint_safely(root / d / 'iter_4.pth')['state_dict']
               for d in ('node0', 'single')]
    assert weights[0].keys() == weights[1].keys()
    for key, value in weights[0].items():
        torch.testing.assert_close(value, weights[1][key], rtol=1e-4, atol=1e-6, msg=key)


def test_resume_on_another_world_size_rescales_the_lr(runs, tmp_path):
    """The 2-node checkpoint (global batch 4) resumed by 1 process x batch 2: lr x 2/4."""
    root, (node0, _, _) = runs
    code, out = finish(start(
        [sys.executable, 'tools/train.py', CFG, '--work-dir', str(tmp_path), '--auto-scale-lr',
         '--resume', str(root / 'node0' / 'iter_2.pth'),
         '--cfg-options', 'train_dataloader.batch_size=2']))
    assert code == 0, out[-4000:]
    assert 'global batch 4 -> 2: restored lr scaled by 0.5' in out
    before, after = logged_lrs(node0[1]), logged_lrs(out)
    assert sorted(after) == [3, 4]
    for it in (3, 4):
        assert after[it] == pytest.approx(before[it] / 2, rel=1e-3)
    assert [r['iter'] for r in records(tmp_path)] == [3, 4]
