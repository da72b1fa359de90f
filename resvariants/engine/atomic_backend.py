"""A local file backend that writes checkpoints atomically (temporary file, fsync, rename).

mmengine writes checkpoints with ``open(path, 'wb')``: a crash while saving leaves a truncated
file under the final name. Select this backend for the checkpoint hook with
``default_hooks.checkpoint.backend_args=dict(backend='atomic_local')`` (our runtime bases do).
"""
import os
import os.path as osp
import tempfile

from mmengine.fileio import LocalBackend, register_backend


def atomic_write(data: bytes, filepath) -> None:
    """Write ``data`` to ``filepath`` so that readers see the old file or the whole new one."""
    filepath = os.fspath(filepath)
    directory = osp.dirname(osp.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(filepath)}.', suffix='.tmp',
                               dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise


class AtomicLocalBackend(LocalBackend):
    """``LocalBackend`` whose ``put``/``put_text`` are atomic."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(obj, filepath)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(obj.encode(encoding), filepath)


register_backend('atomic_local', AtomicLocalBackend, force=True)
