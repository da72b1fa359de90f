"""tools/slurm_train.sh and slurm_test.sh: the srun command line they run (a fake srun on PATH
records its arguments; there is no Slurm here), and that train.py / test.py accept it."""
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)
from tools import test as test_tool  # noqa: E402
from tools import train as train_tool  # noqa: E402

FAKE_SRUN = """#!/usr/bin/env bash
printf '%s\\n' "$@" > "$SRUN_RECORD"
echo "MASTER_PORT=${MASTER_PORT:-unset}" > "$SRUN_RECORD.env"
echo "PYTHONPATH=$PYTHONPATH" >> "$SRUN_RECORD.env"
"""
PY = '/opt/python-for-slurm'


def run_script(tmp_path, script, *args, **env):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    srun = bin_dir / 'srun'
    srun.write_text(FAKE_SRUN)
    srun.chmod(0o755)
    record = tmp_path / 'srun_args'
    full_env = {k: v for k, v in os.environ.items()
                if k not in ('GPUS', 'GPUS_PER_NODE', 'CPUS_PER_TASK', 'SRUN_ARGS', 'PORT',
                             'MASTER_PORT')}
    full_env.update(PATH=f'{bin_dir}:{os.environ["PATH"]}', SRUN_RECORD=str(record), PYTHON=PY,
                    **env)
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', script), *args], env=full_env,
                          capture_output=True, text=True, timeout=60)
    argv = record.read_text().splitlines() if record.exists() else None
    env_lines = (dict(line.split('=', 1) for line in (tmp_path / 'srun_args.env')
                      .read_text().splitlines()) if argv is not None else None)
    return proc, argv, env_lines


def test_slurm_train_command_line(tmp_path):
    proc, argv, env = run_script(
        tmp_path, 'slurm_train.sh', 'gpu', 'faster-se', 'configs/x.py', 'work_dirs/x',
        '--resume', '--cfg-options', 'model.backbone.init_cfg=None',
        GPUS='16', GPUS_PER_NODE='8', CPUS_PER_TASK='4', SRUN_ARGS='--quotatype=auto --time=2-0',
        PORT='29666')
    assert proc.returncode == 0, proc.stderr
    assert argv == [
        '-p', 'gpu', '--job-name=faster-se', '--gres=gpu:8', '--ntasks=16',
        '--ntasks-per-node=8', '--cpus-per-task=4', '--kill-on-bad-exit=1',
        '--quotatype=auto', '--time=2-0',
        PY, '-u', osp.join(REPO, 'tools', 'train.py'), 'configs/x.py', '--work-dir=work_dirs/x',
        '--launcher=slurm', '--resume', '--cfg-options', 'model.backbone.init_cfg=None']
    assert env['MASTER_PORT'] == '29666'
    assert env['PYTHONPATH'].split(':')[0] == REPO
    args = train_tool.parse_args(argv[argv.index(PY) + 3:])
    assert (args.launcher, args.work_dir, args.resume) == ('slurm', 'work_dirs/x', 'auto')


def test_slurm_train_defaults_are_mmdets(tmp_path):
    proc, argv, env = run_script(tmp_path, 'slurm_train.sh', 'p', 'j', 'c.py', 'w')
    assert proc.returncode == 0, proc.stderr
    assert argv[:8] == ['-p', 'p', '--job-name=j', '--gres=gpu:8', '--ntasks=8',
                        '--ntasks-per-node=8', '--cpus-per-task=5', '--kill-on-bad-exit=1']
    assert argv[8] == PY  # empty SRUN_ARGS adds nothing
    assert env['MASTER_PORT'] == 'unset'  # mmengine then uses 29500


def test_fewer_gpus_than_a_node_request_only_those(tmp_path):
    proc, argv, _ = run_script(tmp_path, 'slurm_train.sh', 'p', 'j', 'c.py', 'w', GPUS='2')
    assert proc.returncode == 0, proc.stderr
    assert '--gres=gpu:2' in argv and '--ntasks=2' in argv and '--ntasks-per-node=2' in argv


def test_slurm_test_command_line(tmp_path):
    proc, argv, _ = run_script(
        tmp_path, 'slurm_test.sh', 'gpu', 'eval', 'configs/x.py', 'ckpt.pth', '--out', 'r.pkl',
        GPUS='8', GPUS_PER_NODE='4')
    assert proc.returncode == 0, proc.stderr
    assert argv == [
        '-p', 'gpu', '--job-name=eval', '--gres=gpu:4', '--ntasks=8', '--ntasks-per-node=4',
        '--cpus-per-task=5', '--kill-on-bad-exit=1',
        PY, '-u', osp.join(REPO, 'tools', 'test.py'), 'configs/x.py', 'ckpt.pth',
        '--launcher=slurm', '--out', 'r.pkl']
    args = test_tool.parse_args(argv[argv.index(PY) + 3:])
    assert (args.launcher, args.checkpoint, args.out) == ('slurm', 'ckpt.pth', 'r.pkl')


@pytest.mark.parametrize('script,args', [('slurm_train.sh', ['p', 'j', 'c.py']),
                                         ('slurm_test.sh', ['p', 'j'])])
def test_missing_arguments_print_usage(tmp_path, script, args):
    proc, argv, _ = run_script(tmp_path, script, *args)
    assert proc.returncode == 2 and 'usage:' in proc.stderr
    assert argv is None  # srun was not called
