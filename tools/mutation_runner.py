"""Fork server that runs pytest for tools/mutation_test.sh, one mutant at a time.

Importing torch, mmengine, mmcv, mmdet and mmpretrain takes about 10 s per Python process,
far longer than the tests of one file. The server imports them once (never ``resvariants``
or the tests: those must be read from disk anew, mutated) and forks a child per request,
which runs ``pytest.main`` on the given arguments and exits; the client returns the child's
status as its exit code (0 = the tests passed, 1 = any failure, as mutmut 2.x expects).

    python tools/mutation_runner.py serve SOCKET        # tools/mutation_test.sh starts it
    python tools/mutation_runner.py run SOCKET ARGS...  # the mutmut runner command

A client killed by mutmut's timeout closes its connection; the server then kills the child.
"""
import json
import os
import select
import signal
import socket
import sys

PRELOAD = ('numpy', 'torch', 'torchvision', 'mmengine', 'mmengine.runner', 'mmcv', 'mmcv.cnn',
           'mmcv.ops', 'mmdet.models', 'mmpretrain.models', 'timm', 'pytest')


def _child(args, root):
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.chdir(root)
    sys.dont_write_bytecode = True  # a mutant's bytecode must never be reused
    sys.path.insert(0, root)
    import pytest
    try:
        code = pytest.main(list(args))
    except BaseException:  # noqa: B902 - anything the mutant raises is a failure
        code = 1
    os._exit(0 if code == 0 else 1)


def serve(path):
    if any(name == 'resvariants' or name.startswith('resvariants.') for name in sys.modules):
        raise RuntimeError('the server must not import resvariants')
    for name in PRELOAD:
        try:
            __import__(name)
        except Exception:  # noqa: B902 - an optional package missing only costs time
            pass
    root = os.getcwd()
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            conn, _ = server.accept()
            with conn:
                args = json.loads(conn.makefile('r').readline())
                pid = os.fork()
                if pid == 0:
                    server.close()
                    _child(args, root)
                status = None
                while status is None:
                    done, raw = os.waitpid(pid, os.WNOHANG)
                    if done:
                        status = os.waitstatus_to_exitcode(raw)
                        break
                    readable, _, _ = select.select([conn], [], [], 0.2)
                    if readable and not conn.recv(1):  # the client is gone (timeout)
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
                        status = 1
                try:
                    conn.sendall(f'{0 if status == 0 else 1}\n'.encode())
                except OSError:
                    pass
    finally:
        server.close()
        if os.path.exists(path):
            os.unlink(path)


def run(path, args):
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    client.sendall((json.dumps(args) + '\n').encode())
    reply = client.makefile('r').readline().strip()
    return 0 if reply == '0' else 1


if __name__ == '__main__':
    if len(sys.argv) >= 3 and sys.argv[1] == 'serve':
        serve(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == 'run':
        sys.exit(run(sys.argv[2], sys.argv[3:]))
    else:
        sys.exit(__doc__)
