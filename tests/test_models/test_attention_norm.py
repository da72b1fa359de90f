"""The single-value-safe batch norm shared by the attention gates (attention/_norm.py):
which statistics it uses, what it updates, and when a SyncBN counts as synchronised."""
import pytest
import torch
import torch.nn as nn

from resvariants.models.attention import _norm


class _FakeDist:
    """Stands in for torch.distributed: an initialised group of ``world_size`` processes."""

    def __init__(self, world_size, initialized=True):
        self.world_size, self.initialized = world_size, initialized

    def is_available(self):
        return True

    def is_initialized(self):
        return self.initialized

    def get_world_size(self):
        return self.world_size


def _bn(channels=3, seed=0, **kwargs):
    torch.manual_seed(seed)
    bn = nn.BatchNorm2d(channels, **kwargs)
    if bn.affine:
        nn.init.uniform_(bn.weight, 0.5, 1.5)
        nn.init.uniform_(bn.bias, -0.5, 0.5)
    if bn.track_running_stats:
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2.0)
    return bn


def _hand_norm(x, mean, var, bn):
    shape = (1, -1) + (1, ) * (x.dim() - 2)
    y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + bn.eps)
    return y * bn.weight.view(shape) + bn.bias.view(shape)


@pytest.mark.parametrize('world_size, initialized, sync, expected', [
    (2, True, True, True),     # SyncBN over 2 processes
    (3, True, True, True),
    (1, True, True, False),    # a group of one process has nobody to sync with
    (2, False, True, False),   # no process group
    (2, True, False, False),   # a plain BN is never synchronised
])
def test_is_synchronised(monkeypatch, world_size, initialized, sync, expected):
    monkeypatch.setattr(_norm, 'dist', _FakeDist(world_size, initialized))
    bn = nn.SyncBatchNorm(4) if sync else nn.BatchNorm2d(4)
    assert _norm.is_synchronised(bn) is expected


def test_is_synchronised_without_a_process_group():
    assert not torch.distributed.is_initialized()
    assert not _norm.is_synchronised(nn.SyncBatchNorm(4))


@pytest.mark.parametrize('shape, expected', [
    ((1, 4, 1, 1), True), ((1, 4), True), ((1, 4, 1), True),
    ((2, 4, 1, 1), False), ((1, 4, 1, 2), False), ((1, 4, 2, 1), False), ((2, 4), False),
])
def test_one_value_per_channel(shape, expected):
    assert _norm.one_value_per_channel(torch.zeros(shape)) is expected


def test_safe_batch_norm_with_one_value_uses_and_keeps_the_running_statistics():
    bn = _bn().train()
    mean, var = bn.running_mean.clone(), bn.running_var.clone()
    batches = bn.num_batches_tracked.clone()
    x = torch.randn(1, 3, 1, 1)
    y = _norm.safe_batch_norm(bn, x)
    torch.testing.assert_close(y, _hand_norm(x, mean, var, bn))
    assert torch.equal(bn.running_mean, mean) and torch.equal(bn.running_var, var)
    assert torch.equal(bn.num_batches_tracked, batches)
    assert bn.training


@pytest.mark.parametrize('shape', [(2, 3, 1, 1), (1, 3, 2, 1), (4, 3, 5, 5)])
def test_safe_batch_norm_with_two_or_more_values_is_the_module_call(shape):
    bn = _bn().train()
    reference = _bn().train()
    x = torch.randn(shape)
    y = _norm.safe_batch_norm(bn, x)
    torch.testing.assert_close(y, reference(x))
    # the running statistics moved exactly as nn.BatchNorm2d moves them
    torch.testing.assert_close(bn.running_mean, reference.running_mean)
    torch.testing.assert_close(bn.running_var, reference.running_var)
    assert not torch.allclose(bn.running_mean, _bn().running_mean)
    dims = [0] + list(range(2, x.dim()))
    torch.testing.assert_close(
        y, _hand_norm(x, x.mean(dims), x.var(dims, unbiased=False), bn))


def test_safe_batch_norm_in_eval_mode_is_the_module_call():
    bn = _bn().eval()
    mean = bn.running_mean.clone()
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(_norm.safe_batch_norm(bn, x),
                               _hand_norm(x, mean, bn.running_var, bn))
    assert torch.equal(bn.running_mean, mean)


def test_safe_batch_norm_of_a_synchronised_bn_is_the_module_call(monkeypatch):
    monkeypatch.setattr(_norm, 'dist', _FakeDist(2))
    bn = nn.SyncBatchNorm(3).train()
    sentinel = torch.full((1, 3, 1, 1), 7.0)
    monkeypatch.setattr(nn.SyncBatchNorm, 'forward', lambda self, x: sentinel)
    assert _norm.safe_batch_norm(bn, torch.randn(1, 3, 1, 1)) is sentinel
