import os
import os.path as osp
import socket
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA = os.environ.get('RESVARIANTS_DATA', osp.join(REPO, 'tests', 'data'))


def tool_env(**extra):
    env = dict(os.environ, RESVARIANTS_DATA=DATA, PYTHONPATH=REPO, OMP_NUM_THREADS='2')
    env.update(extra)
    return env


def run(cmd, timeout=900, **env):
    """Run a command in the repo root; return (returncode, combined output)."""
    proc = subprocess.run(cmd, cwd=REPO, env=tool_env(**env), capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def python_tool(*args, timeout=900, **env):
    return run([sys.executable, *args], timeout=timeout, **env)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
