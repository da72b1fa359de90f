"""Batch 1 in train mode (issue 15, part 2): every registered attention module, alone and in
the full backbone at detection-like sizes, trains with a single image.

A BN over one value per channel (SRM's style vector, CBAM's spatial map on 1x1, BAM's and SK's
pooled vectors) normalises with its running statistics for that step and leaves them as they
are; where the trunk itself cannot (a 1x1 map in a trunk BN) the error names the BN and the
fixes (tests/test_tools/test_bad_input_errors.py).
"""
import copy

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from _attention_cases import TINY, TYPES, build, call, make_inputs, randomise, trunk_kwargs
from resvariants.models import ResNet


def _running_stats(module):
    return {k: v.clone() for k, v in module.state_dict().items()
            if 'running' in k or 'num_batches' in k}


@pytest.mark.parametrize('size', [(1, 1), (5, 7)])
@pytest.mark.parametrize('name', TYPES)
def test_module_trains_with_batch_1(name, size):
    module = randomise(build(name, 32)).train()
    inputs = make_inputs(module, (1, 32, *size))
    out = call(module, inputs)
    out.square().sum().backward()
    assert out.shape == (1, 32, *size) and torch.isfinite(out).all()
    assert all(torch.isfinite(x.grad).all() for x in inputs)
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in module.parameters())


@pytest.mark.parametrize('name', TYPES)
def test_single_value_norms_use_running_statistics_and_keep_them(name):
    """On a 1x1 map at batch 1 every BN of an attention module meets one value per channel:
    the train-mode output is then the eval-mode formula, and no running statistic moves."""
    module = randomise(build(name, 32))
    inputs = make_inputs(module, (1, 32, 1, 1), requires_grad=False)
    expected = call(copy.deepcopy(module).eval(), inputs)
    before = _running_stats(module)
    out = call(module.train(), inputs)
    torch.testing.assert_close(out, expected)
    after = _running_stats(module)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_srm_batch_1_at_any_size_normalises_with_running_statistics():
    """SRM's BN sees the (B, C, 1, 1) style vector, one value per channel at batch 1 whatever
    the map size: gate = sigmoid(BN_eval(mean * cfc0 + std * cfc1)), by hand."""
    module = randomise(build('SRM', 16)).train()
    x = torch.randn(1, 16, 9, 6)
    flat = x.flatten(2)
    z = flat.mean(2) * module.cfc[:, 0] + (flat.var(2) + 1e-5).sqrt() * module.cfc[:, 1]
    bn = module.bn
    z = (z - bn.running_mean) / (bn.running_var + bn.eps).sqrt() * bn.weight + bn.bias
    torch.testing.assert_close(module(x), x * torch.sigmoid(z)[:, :, None, None])


@pytest.fixture(scope='module')
def backbones():
    cache = {}

    def get(name):
        if name not in cache:
            torch.manual_seed(0)
            kwargs = trunk_kwargs(name) if name else {}
            cache[name] = ResNet(**TINY, **kwargs, out_indices=(0, 1, 2, 3), norm_eval=False)
        return cache[name]

    return get


@pytest.mark.parametrize('size', [(64, 64), (47, 33)])
@pytest.mark.parametrize('name', [None] + TYPES)
def test_backbone_trains_with_batch_1(name, size, backbones):
    model = backbones(name).train()
    assert all(m.training for m in model.modules() if isinstance(m, _BatchNorm))
    x = torch.randn(1, 3, *size, requires_grad=True)
    outs = model(x)
    sum(o.square().mean() for o in outs).backward()
    assert [o.shape[0] for o in outs] == [1] * 4 and outs[-1].shape[2:] == (2, 2)
    assert all(torch.isfinite(o).all() for o in outs) and torch.isfinite(x.grad).all()


# ------------------------------------------------------------ every registered backbone

def _registered_backbones():
    import resvariants.models  # noqa: F401
    from resvariants.registry import MODELS
    return {name: cls for name, cls in MODELS.module_dict.items()
            if cls.__module__.startswith('resvariants.models.backbones')}


#: small arguments for each registered backbone (norm_eval=False: BN in train mode)
BACKBONE_KWARGS = {
    'ResNet': dict(TINY, norm_eval=False),
    'EDResNet': dict(TINY, ed_groups=4, norm_eval=False),
    'OctResNet': dict(TINY, norm_eval=False),
    'EpsilonResNet': dict(TINY, norm_eval=False),
    'CompactResNet': dict(TINY, stage_blocks=(2, 1, 0, 1),
                          shortcut_only_stages=(False, True, True, False), norm_eval=False),
    'PlainResNet': dict(TINY, norm_eval=False),
    'RMPlainResNet': dict(TINY, norm_eval=False),
    'CifarResNet': dict(depth=20, norm_eval=False),
    'PreActResNetCIFAR': dict(depth=20),
    'MobileNetV1': dict(widen_factor=0.25, out_indices=(3, 4)),
    # three dense blocks: the 47x33 input leaves a 3x2 map for the last one
    'DenseNet': dict(arch=dict(growth_rate=4, depths=[2, 1, 1], init_channels=8),
                     conv_cfg=dict(type='ConvWS')),
}
#: BNs that meet a 1x1 map at batch 1 at these sizes (the ED path's stride-2 encoder in layer4):
#: they normalise with their running statistics and leave them untouched (safe_batch_norm)
SINGLE_VALUE_NORMS = {'EDResNet': 'layer4.0.ed_path.encoder_norm'}


def test_every_registered_backbone_has_a_batch_1_case():
    assert set(BACKBONE_KWARGS) == set(_registered_backbones())


@pytest.mark.parametrize('size', [(64, 64), (47, 33)])
@pytest.mark.parametrize('name', sorted(BACKBONE_KWARGS))
def test_every_backbone_trains_with_batch_1(name, size):
    torch.manual_seed(0)
    model = _registered_backbones()[name](**BACKBONE_KWARGS[name]).train()
    assert all(m.training for m in model.modules() if isinstance(m, _BatchNorm))
    x = torch.randn(1, 3, *size, requires_grad=True)
    single = SINGLE_VALUE_NORMS.get(name)
    if single:
        norm = model.get_submodule(single)
        stats = (norm.running_mean.clone(), norm.running_var.clone(), int(norm.num_batches_tracked))
    outs = model(x)
    outs = outs if isinstance(outs, (tuple, list)) else (outs, )
    sum(o.square().mean() for o in outs).backward()
    assert all(o.shape[0] == 1 and torch.isfinite(o).all() for o in outs)
    assert torch.isfinite(x.grad).all()
    if single:
        assert torch.equal(norm.running_mean, stats[0]) and torch.equal(norm.running_var, stats[1])
        assert int(norm.num_batches_tracked) == stats[2]
