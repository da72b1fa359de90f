"""`--launcher slurm` on CPU nodes: two tools/train.py processes given the variables srun sets
(SLURM_PROCID 0/1, SLURM_NTASKS 2) form one gloo group and train together; a SyncBN model
(norm_cfg SyncBN, --sync-bn), which torch cannot run on CPU tensors, trains with per-process BN
instead (with a warning)."""
import os.path as osp
import re
import subprocess
import sys

from resvariants.utils.safe_load import load_checkpoint_safely

from .utils import REPO, free_port, tool_env

CFG = 'tests/configs/cls_tiny.py'


def test_two_slurm_tasks_on_cpu_with_a_syncbn_config(tmp_path):
    port = str(free_port())
    cmd = [sys.executable, 'tools/train.py', CFG, '--launcher', 'slurm', '--work-dir',
           str(tmp_path), '--sync-bn', '--cfg-options', 'model.backbone.norm_cfg.type=SyncBN']
    procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True,
                              env=tool_env(SLURM_PROCID=str(rank), SLURM_NTASKS='2',
                                           SLURM_LOCALID=str(rank), SLURM_NODELIST='localhost',
                                           MASTER_ADDR='127.0.0.1', MASTER_PORT=port,
                                           OMP_NUM_THREADS='1'))
             for rank in (0, 1)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-4000:]
    assert 'SyncBN cannot run on the CPU' in outs[0]
    # both ways of asking for SyncBN are undone: the norm type and --sync-bn's sync_bn
    assert 'per-process BN in model.backbone.norm_cfg, sync_bn' in outs[0], outs[0][-3000:]
    assert re.search(r'Distributed launcher: slurm', outs[0]), outs[0][-3000:]
    assert 'Distributed training: True' in outs[0], outs[0][-3000:]
    assert osp.isfile(tmp_path / 'iter_4.pth')
    ckpt = load_checkpoint_safely(str(tmp_path / 'iter_4.pth'))
    assert ckpt['meta']['iter'] == 4
    norms = [k for k in ckpt['state_dict'] if k.endswith('bn1.running_var')]
    assert norms  # BatchNorm2d layers (SyncBN would have the same keys, but could not run)


def test_slurm_launcher_without_srun_variables_is_a_clear_error(tmp_path):
    env = tool_env()
    for key in [k for k in env if k.startswith('SLURM_')]:
        env.pop(key)
    proc = subprocess.run([sys.executable, 'tools/train.py', CFG, '--launcher', 'slurm',
                           '--work-dir', str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert 'missing: SLURM_PROCID, SLURM_NTASKS, SLURM_NODELIST' in proc.stdout + proc.stderr
