"""Defaults of the attention modules and which path their forward takes.

The fused and the plain formula give the same values, so a value test cannot tell which one
ran: a spy on the fused function does. Bottleneck widths are the sources' (in / 16 for SE and
GC, docs/architectures.md 1.2 and 1.7). Found by mutation testing (docs/testing.md).
"""
import pytest
import torch

from resvariants.models.attention import gc, se


@pytest.fixture
def spy(monkeypatch):
    calls = []

    def install(module, name):
        original = getattr(module, name)

        def wrapped(*args, **kwargs):
            calls.append(name)
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapped)
        return calls

    return install


def test_gc_default_bottleneck_is_one_sixteenth():
    block = gc.GCBlock(64)
    assert block.pooling_type == 'att' and block.fusion_types == ('channel_add', )
    assert block.channel_add_conv[0].out_channels == 4 and block.channel_mul_conv is None


@pytest.mark.parametrize('kwargs, fused', [
    (dict(), True),
    (dict(fused=False), False),
    (dict(pooling_type='avg'), False),
])
def test_gc_forward_takes_the_fused_pooling_only_for_att_and_fused(spy, kwargs, fused):
    calls = spy(gc, 'attention_pool')
    block = gc.GCBlock(64, **kwargs)
    out = block(torch.randn(2, 64, 5, 6))
    assert out.shape == (2, 64, 5, 6)
    assert calls == (['attention_pool'] if fused else [])


def test_se_default_bottleneck_is_one_sixteenth():
    module = se.SEModule(64)
    assert module.in_channels == 64
    assert module.conv1.conv.out_channels == 4 and module.conv2.conv.in_channels == 4


def test_se_forward_is_mmpretrains_selayer():
    assert se.SEModule.forward is se.SELayer.forward
