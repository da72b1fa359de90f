"""Checkpoints are written atomically: a failed write leaves the previous file intact."""
import os

import pytest
from mmengine.fileio import get_file_backend

from resvariants.engine.atomic_backend import AtomicLocalBackend


def test_registered_and_selected_by_backend_args(tmp_path):
    backend = get_file_backend(str(tmp_path / 'x.pth'), backend_args=dict(backend='atomic_local'))
    assert isinstance(backend, AtomicLocalBackend)


def test_interrupted_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / 'epoch_1.pth'
    backend = AtomicLocalBackend()
    backend.put(b'good checkpoint', path)

    def crash(fd):
        raise KeyboardInterrupt('killed while saving')

    monkeypatch.setattr(os, 'fsync', crash)
    with pytest.raises(KeyboardInterrupt):
        backend.put(b'half written', path)
    assert path.read_bytes() == b'good checkpoint'
    assert [p.name for p in tmp_path.iterdir()] == ['epoch_1.pth']  # no temp file left


def test_put_text(tmp_path):
    AtomicLocalBackend().put_text('work_dirs/x/epoch_2.pth', tmp_path / 'last_checkpoint')
    assert (tmp_path / 'last_checkpoint').read_text() == 'work_dirs/x/epoch_2.pth'
