"""Each attention module starts as its source specifies, inside a full model, whatever init the
trunk, the classifier or the WarmStart / StrictPretrained initialisers apply (issue 15, part 1).

The expected states are docs/architectures.md 1.1 (init rules), 1.2 (SE), 1.3 (SK), 1.4 (CBAM),
1.5 (BAM), 1.6 (SGE), 1.7 (GC) and 1.8 (SRM). Every registered attention module must have one
(``test_every_registered_attention_has_an_initial_state``).
"""
import math

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from _attention_cases import SOURCE_TYPES, TINY, TYPES, randomise, trunk_kwargs
from resvariants.models import ResNet
from resvariants.models.attention import attention_types


def _instances(model, name):
    cls = attention_types()[name]
    found = [m for m in model.modules() if type(m) is cls]
    assert found, f'no {name} in the model'
    return found


def _pooled(tensors, scales):
    return torch.cat([(t.detach() / s).flatten() for t, s in zip(tensors, scales)])


def default_init(weights, biases=None):
    """PyTorch's default Linear / Conv2d init: weight and bias ~ U(-1/sqrt(fan_in), +...)."""
    bounds = [w[0].numel()**-0.5 for w in weights]
    values = _pooled(weights, bounds)
    assert values.abs().max() <= 1 + 1e-6, 'outside the default-init bound'
    assert 0.5 < values.std() < 0.66, f'std/bound {values.std():.3f}, uniform gives 0.577'
    if biases is not None:
        assert _pooled(biases, bounds).abs().max() <= 1 + 1e-6


def kaiming_normal(weights, mode):
    """kaiming-normal (ReLU gain): std sqrt(2 / fan), fan = fan_in or fan_out."""
    fans = [w[0].numel() if mode == 'fan_in' else w.shape[0] * w[0, 0].numel()
            for w in weights]
    values = _pooled(weights, [math.sqrt(2 / f) for f in fans])
    assert 0.85 < values.std() < 1.15, f'std {values.std():.3f} x sqrt(2/{mode}), not 1'
    assert abs(values.mean()) < 0.1


def zero(*tensors):
    for t in tensors:
        assert torch.all(t == 0)


def const(value, *tensors):
    for t in tensors:
        assert torch.all(t == value)


def fresh_bn(*bns):
    for bn in bns:
        const(1, bn.weight)
        zero(bn.bias, bn.running_mean)
        const(1, bn.running_var)


def _se(ms):  # 1.2 / 1.1: SE uses Linear layers, which the reference leaves at PyTorch's init
    for layer in ('conv1', 'conv2'):
        convs = [getattr(m, layer).conv for m in ms]
        default_init([c.weight for c in convs], [c.bias for c in convs])


def _sk(ms):  # 1.3 / 1.1: every Conv2d kaiming-normal fan_out, BN weight 1 bias 0
    kaiming_normal([m.conv_fc1.weight for m in ms], 'fan_out')
    kaiming_normal([m.conv_fc2.weight for m in ms], 'fan_out')
    fresh_bn(*[m.bn_fc1 for m in ms])


def _cbam(ms):  # 1.4 / 1.1 name rule: MLP default weights, biases 0, conv kaiming, BN weight 0
    default_init([m.channel_fc1.weight for m in ms] + [m.channel_fc2.weight for m in ms])
    zero(*[m.channel_fc1.bias for m in ms], *[m.channel_fc2.bias for m in ms])
    kaiming_normal([m.spatial_conv.weight for m in ms], 'fan_out')
    for m in ms:
        zero(m.spatial_bn.weight, m.spatial_bn.bias, m.spatial_bn.running_mean)
        const(1, m.spatial_bn.running_var)
        assert m.spatial_bn.momentum == 0.01


def _bam(ms):  # 1.5 / 1.1 name rule: convs kaiming fan_out, BN weight 1, biases 0, fc default
    convs = [c for m in ms for c in [m.spatial_reduce, *m.spatial_dilated, m.spatial_final]]
    kaiming_normal([c.weight for c in convs], 'fan_out')
    default_init([m.channel_fc1.weight for m in ms] + [m.channel_fc2.weight for m in ms])
    zero(*[c.bias for c in convs], *[m.channel_fc1.bias for m in ms],
         *[m.channel_fc2.bias for m in ms])
    fresh_bn(*[bn for m in ms for bn in [m.channel_bn, m.spatial_reduce_bn,
                                           *m.spatial_dilated_bn]])


def _sge(ms):  # 1.6: gamma 0, beta 1
    for m in ms:
        zero(m.weight)
        const(1, m.bias)


def _gc(ms):  # 1.7: mask conv kaiming fan_in, transform default, LayerNorm 1/0, last conv 0
    kaiming_normal([m.conv_mask.weight for m in ms], 'fan_in')
    zero(*[m.conv_mask.bias for m in ms])
    first = [m.channel_add_conv[0] for m in ms]
    default_init([c.weight for c in first], [c.bias for c in first])
    for m in ms:
        const(1, m.channel_add_conv[1].weight)
        zero(m.channel_add_conv[1].bias, m.channel_add_conv[3].weight,
             m.channel_add_conv[3].bias)


def _srm(ms):  # 1.8: cfc 0, its BN at PyTorch's init
    for m in ms:
        zero(m.cfc)
    fresh_bn(*[m.bn for m in ms])


INITIAL_STATE = {'SEModule': _se, 'SKFusion': _sk, 'CBAM': _cbam, 'BAM': _bam, 'SGE': _sge,
                 'GCBlock': _gc, 'SRM': _srm}


def test_every_source_attention_has_an_initial_state():
    assert set(INITIAL_STATE) == set(SOURCE_TYPES) <= set(attention_types())


# ------------------------------------------------------------------------- the initialisers

def _plain_checkpoint(tmp_path_factory):
    torch.manual_seed(5)
    plain = randomise(ResNet(**TINY), seed=5)
    path = tmp_path_factory.mktemp('plain') / 'plain.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in plain.state_dict().items()}},
               path)
    return str(path)


def _classifier(name):
    """An mmpretrain classifier whose own init_cfg overwrites every layer type."""
    from mmpretrain.models import ImageClassifier
    hostile = dict(type='Normal', std=0.5, bias=0.3,
                   layer=['Conv2d', 'Linear', 'LayerNorm', '_BatchNorm'])
    model = ImageClassifier(
        backbone=dict(type='resvariants.ResNet', **TINY, **trunk_kwargs(name)),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=512),
        init_cfg=[hostile])
    model.init_weights()
    return model.backbone


@pytest.fixture(scope='module')
def initialised(tmp_path_factory):
    """(attention type, initialiser) -> the backbone after ``init_weights()``, built once."""
    cache = {}

    def get(name, how):
        if (name, how) not in cache:
            torch.manual_seed(0)
            if how == 'classifier':
                model = _classifier(name)
            else:
                init_cfg = None
                if how == 'warm_start':
                    if 'plain' not in cache:
                        cache['plain'] = _plain_checkpoint(tmp_path_factory)
                    init_cfg = dict(type='WarmStart', checkpoint=cache['plain'])
                model = ResNet(**TINY, **trunk_kwargs(name), init_cfg=init_cfg)
                model.init_weights()
            cache[name, how] = model
        return cache[name, how]

    return get


@pytest.mark.parametrize('how', ['trunk', 'classifier', 'warm_start'])
@pytest.mark.parametrize('name', SOURCE_TYPES)
def test_attention_starts_as_its_source_specifies(name, how, initialised):
    model = initialised(name, how)
    INITIAL_STATE[name](_instances(model, name))


def _outputs_of(model, name, x):
    """(input, output) of every ``name`` module in a train-mode forward of ``model``."""
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((i[0], o)))
             for m in _instances(model, name)]
    try:
        model.train()(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def test_gc_block_is_the_identity_at_init(initialised):
    """GCNet's zero-initialised last transform conv: out = x + 0 (the defect: a trunk Kaiming
    init made the stage output differ by 79 % from the plain trunk at init)."""
    for how in ('trunk', 'classifier', 'warm_start'):
        model = initialised('GCBlock', how)
        seen = _outputs_of(model, 'GCBlock', torch.randn(2, 3, 64, 64))
        assert len(seen) == 16
        for inp, out in seen:
            assert torch.equal(out, inp)


def test_gc_resnet_equals_the_plain_trunk_at_init(initialised):
    """Every stage output of GC-ResNet at init is the plain trunk's with the same weights."""
    gc = initialised('GCBlock', 'trunk')
    plain = ResNet(**TINY)
    plain.load_state_dict({k: v for k, v in gc.state_dict().items()
                           if 'context_block' not in k})
    x = torch.randn(2, 3, 64, 64)
    outs = gc.eval()(x)
    assert len(outs) == 4
    for a, b in zip(outs, plain.eval()(x)):
        assert torch.equal(a, b)


def test_cbam_spatial_gate_is_one_half_at_init(initialised):
    model = initialised('CBAM', 'trunk')
    values = []
    hooks = [m.spatial_bn.register_forward_hook(lambda m, i, o: values.append(o))
             for m in _instances(model, 'CBAM')]
    try:
        model.train()(torch.randn(2, 3, 64, 64))
    finally:
        for h in hooks:
            h.remove()
    assert len(values) == 16 and all(torch.all(v == 0) for v in values)  # sigmoid(0) = 0.5


@pytest.mark.parametrize('name,gate', [('SRM', 0.5), ('SGE', 1 / (1 + math.exp(-1)))])
def test_constant_gate_at_init(name, gate, initialised):
    """SRM: cfc = 0 -> z = 0 -> BN(0) = 0 -> sigmoid 0.5; SGE: gamma = 0, beta = 1 ->
    sigmoid(1) at every position."""
    for inp, out in _outputs_of(initialised(name, 'trunk'), name, torch.randn(2, 3, 64, 64)):
        torch.testing.assert_close(out, inp * gate)


def test_attention_norms_keep_fresh_running_statistics(initialised):
    for name in TYPES:
        model = initialised(name, 'trunk')
        for module in _instances(model, name):
            for bn in module.modules():
                if isinstance(bn, _BatchNorm):
                    zero(bn.running_mean)
                    const(1, bn.running_var)


@pytest.mark.parametrize('name', TYPES)
def test_strict_pretrained_weights_survive_the_attention_inits(name, tmp_path):
    """The checkpoint is loaded after every module's own init: nothing overwrites it."""
    torch.manual_seed(1)
    source = randomise(ResNet(**TINY, **trunk_kwargs(name)), seed=3)
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in source.state_dict().items()}},
               path)
    model = ResNet(**TINY, **trunk_kwargs(name),
                   init_cfg=dict(type='StrictPretrained', checkpoint=str(path),
                                 prefix='backbone.'))
    model.init_weights()
    loaded = model.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(loaded[key], value), key
