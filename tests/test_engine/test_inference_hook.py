"""InferenceFastPathHook: conv-BN folding and a channels_last backbone give the outputs of the
unchanged model, for the plain trunk and every registered attention module."""
import copy
import os.path as osp
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'test_models'))

from _attention_cases import TINY, TYPES, randomise, trunk_kwargs  # noqa: E402

from resvariants.engine import InferenceFastPathHook  # noqa: E402
from resvariants.models import ResNet  # noqa: E402
from resvariants.registry import HOOKS  # noqa: E402

CASES = {'ResNet': {}, **{f'ResNet+{name}': trunk_kwargs(name) for name in TYPES}}


class Classifier(nn.Module):
    """backbone + a head, as the runner's model: the hook reaches the backbone by name."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.feat_dim, 3)

    def forward(self, x):
        return self.head(self.backbone(x)[-1].mean((2, 3)))


def _classifier(kwargs):
    backbone = ResNet(**dict(TINY, **kwargs))
    backbone.feat_dim = 64 * 8
    return randomise(Classifier(backbone)).eval()


@pytest.fixture(scope='module')
def built():
    models = {}

    def get(case):
        if case not in models:
            models[case] = _classifier(CASES[case])
        return copy.deepcopy(models[case])
    return get


def _norms_after_a_conv(model):
    """``(folded, kept)``: BatchNorms that directly follow a conv among their siblings (what
    folding removes), and the others (BAM's gate normalises a Linear's output: it stays)."""
    folded, kept = [], []
    for parent in model.modules():
        previous = None
        for child in parent.children():
            if isinstance(child, _BatchNorm):
                (folded if isinstance(previous, nn.Conv2d) else kept).append(child)
            previous = child
    return folded, kept


def _runner(model):
    return SimpleNamespace(model=model, logger=None)


@pytest.mark.parametrize('channels_last', [False, True], ids=['folded', 'folded+channels_last'])
@pytest.mark.parametrize('case', sorted(CASES))
def test_fast_path_keeps_the_outputs(case, channels_last, built):
    model = built(case)
    x = torch.randn(2, 3, 57, 41, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x)
    folded, kept = _norms_after_a_conv(model)
    hook = HOOKS.build(dict(type='InferenceFastPathHook', channels_last=channels_last))
    hook.before_test(_runner(model))
    # every norm of the stem, the blocks and the projections follows a conv: all are gone
    assert len(folded) >= 1 + 3 * 16 + 4
    remaining = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert [id(m) for m in remaining] == [id(m) for m in kept]
    convs = [m for m in model.backbone.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is not None for c in (model.backbone.conv1, model.backbone.layer1[0].conv1))
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) == channels_last
               for c in convs if c.weight.shape[-1] > 1)
    with torch.no_grad():
        got = model(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_channels_last_backbone_hands_on_contiguous_outputs(built):
    model = built('ResNet+SGE')
    hook = InferenceFastPathHook(fuse_conv_bn=False, channels_last=True)
    hook.apply(model)
    assert any(isinstance(m, _BatchNorm) for m in model.modules())  # nothing folded
    with torch.no_grad():
        outs = model.backbone(torch.randn(1, 3, 64, 64))
    assert all(o.is_contiguous() for o in outs)
    assert model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_folding_counts_what_it_folded_in_the_log(built):
    messages = []
    model = built('ResNet')
    norms = sum(isinstance(m, _BatchNorm) for m in model.modules())
    InferenceFastPathHook().before_test(
        SimpleNamespace(model=model, logger=SimpleNamespace(info=messages.append)))
    assert messages == [f'inference fast path: folded {norms} of {norms} BatchNorms into '
                        f'their convolutions']


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match='nothing to do'):
        InferenceFastPathHook(fuse_conv_bn=False, channels_last=False)
    with pytest.raises(AttributeError, match='Linear has no backbone'):
        InferenceFastPathHook(channels_last=True).apply(nn.Linear(2, 2))
