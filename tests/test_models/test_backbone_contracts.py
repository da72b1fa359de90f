"""The backbone contracts of mmdet's and mmpretrain's ResNet tests, for every registered backbone
and every attention module of the factory.

The backbones come from the ``resvariants`` registry and the attention modules from the
factory's names, so a new backbone or attention is tested as soon as it is registered; a
backbone without an entry in ``CASES`` fails ``test_every_registered_backbone_has_cases``.

Contracts (mmdet ``tests/test_models/test_backbones/test_resnet.py``, mmpretrain
``test_resnet.py`` / ``test_seresnet.py``), checked against independent computations:

* output shapes of ``out_indices`` / ``strides`` / ``dilations`` at 64x64 and at an odd size,
  from the conv arithmetic; a subset of ``out_indices`` returns the same tensors;
* the whole forward equals a re-implementation from the modules (stem, blocks with their
  shortcut / gate / ED path, plugins, attention after the last norm or after the stage);
* ``frozen_stages``: no gradient, BN in eval and running statistics unchanged after a step;
* ``norm_eval``: BN statistics frozen in train mode; without it every BN updates exactly once;
* ``style``: where the stride sits; ``deep_stem`` / ``avg_down`` / ``stem_channels``;
* ``zero_init_residual``: the last norm is zero after ``init_weights`` and every block is then
  its (projected) shortcut;
* ``with_cp``: same outputs, gradients and buffers (BN statistics, epsilon-gate counters)
  after one training step as without;
* ``dcn`` (mmcv's CPU DCN / DCNv2): zero offsets give the plain convolution;
* plugins together with attention; batch 1 in train mode; GN and ConvWS configs;
* ``Pretrained`` / ``StrictPretrained`` loading through ``init_cfg`` of a checkpoint saved here.

Options a variant does not define must raise an error naming the option.
"""
import copy
import dataclasses
from typing import Optional

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import DefaultScope
from torch.nn.modules.batchnorm import _BatchNorm

import resvariants.models  # noqa: F401  (registers the backbones and attention modules)
from resvariants.models.attention import (attention_names, attention_placement,
                                          normalize_attention_cfg)
from resvariants.registry import MODELS

# --------------------------------------------------------------------------------------------
# What is registered
# --------------------------------------------------------------------------------------------


#: Registered backbones that are not ResNet trunks (no stages of residual blocks, none of the
#: options below): tests/test_models/test_ws_mobile_backbones.py covers them.
NOT_RESNET_TRUNKS = {
    'MobileNetV1': 'a stack of depthwise-separable convs (WS-MobileNetV1)',
    'DenseNet': "mmpretrain's DenseNet with conv_cfg (WS-DenseNet-201)",
}


def registered_backbones():
    """Every backbone class of the resvariants registry that is a ResNet trunk."""
    return sorted(name for name, cls in MODELS.module_dict.items()
                  if cls.__module__.startswith('resvariants.models.backbones')
                  and name not in NOT_RESNET_TRUNKS)


def registered_attentions():
    """Every attention type the factory accepts (its names resolved to registered types)."""
    return sorted({normalize_attention_cfg(name)['type'] for name in attention_names()})


BACKBONES = registered_backbones()
ATTENTIONS = registered_attentions()

# Attention settings for the narrow test widths (8 channels in stage 1); unknown (new) types
# are built with their defaults.
ATTENTION_KWARGS = {
    'SEModule': dict(ratio=4), 'CBAM': dict(ratio=4), 'BAM': dict(ratio=4),
    'GCBlock': dict(ratio=1. / 4), 'SGE': dict(groups=4), 'SRM': dict(),
}

DCN = dict(type='DCN', deform_groups=1, fallback_on_stride=False)
ODD_SIZE = (45, 37)   # an odd-sized input: stage maps 12x10, 6x5, 3x3, 2x2 (ImageNet stem)
TRAIN_SIZE = (40, 36)  # training steps (batch 2)
PLUGIN = dict(cfg=dict(type='ContextBlock', ratio=1. / 4), position='after_conv1')

# --------------------------------------------------------------------------------------------
# The cases: one or more small configurations per registered backbone
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Case:
    backbone: str
    name: str
    kwargs: dict
    block: str             # basic | bottleneck | octave | rm_basic | rm_bottleneck | preact
    channels: tuple        # output channels of each stage (hand-computed)
    stem: str = 'imagenet'  # imagenet (stride-2 conv + max-pool) | cifar (3x3/1, no pool)
    merge: str = 'add'     # add | plain | gated | ed | octave | rm | preact | preact_gated
    attention: bool = False  # takes attention= / plugins=
    attention_cfg: Optional[dict] = None
    attention_stages: Optional[tuple] = None

    @property
    def id(self):
        attention = f'+{self.attention_cfg["type"]}' if self.attention_cfg else ''
        return f'{self.backbone}-{self.name}{attention}'

    @property
    def num_stages(self):
        return len(self.channels)

    @property
    def default_strides(self):
        return (1, 2, 2) if self.num_stages == 3 else (1, 2, 2, 2)

    @property
    def all_outs(self):
        return tuple(range(self.num_stages))

    @property
    def mmdet_options(self):
        """Built on mmdet's ResNet (frozen_stages, style, deep_stem, ... exist)."""
        return self.backbone != 'PreActResNetCIFAR'

    @property
    def stage_attention(self):
        return (self.attention_cfg is not None
                and attention_placement(self.attention_cfg['type']) == 'stage')

    def config(self, **overrides):
        cfg = dict(type=self.backbone, **self.kwargs)
        if self.mmdet_options:
            cfg.setdefault('out_indices', self.all_outs)
        if self.attention_cfg is not None:
            cfg.update(attention=dict(self.attention_cfg), attention_stages=self.attention_stages)
        cfg.update(overrides)
        return cfg

    def build(self, **overrides):
        with DefaultScope.overwrite_default_scope('resvariants'):
            return MODELS.build(self.config(**overrides))


def _cases():
    bottleneck8 = (32, 64, 128, 256)  # base_channels=8, expansion 4
    basic8 = (8, 16, 32, 64)
    cifar = (16, 32, 64)
    return [
        Case('ResNet', 'r18', dict(depth=18, base_channels=8), 'basic', basic8, attention=True),
        Case('ResNet', 'r50', dict(depth=50, base_channels=8), 'bottleneck', bottleneck8,
             attention=True),
        Case('ResNet', 'sk50', dict(depth=50, base_channels=8, sk=dict(groups=4, ratio=4)),
             'bottleneck', bottleneck8, attention=True),
        Case('ResNet', 'x50', dict(depth=50, base_channels=8, groups=4, base_width=4),
             'bottleneck', bottleneck8, attention=True),
        Case('ResNet', 'ws50', dict(depth=50, base_channels=8, conv_cfg=dict(type='ConvWS')),
             'bottleneck', bottleneck8, attention=True),
        Case('EDResNet', 'ed50', dict(depth=50, base_channels=8, ed_groups=8), 'bottleneck',
             bottleneck8, merge='ed', attention=True),
        Case('EDResNet', 'ed50-b', dict(depth=50, base_channels=8, ed_groups=8,
                                        branch_ratio=0.5), 'bottleneck', bottleneck8,
             merge='ed', attention=True),
        Case('OctResNet', 'oct50', dict(depth=50, base_channels=16), 'octave',
             (64, 128, 256, 512), merge='octave'),
        Case('EpsilonResNet', 'eps18', dict(depth=18, base_channels=8, epsilon=2.0), 'basic',
             basic8, merge='gated', attention=True),
        Case('EpsilonResNet', 'eps50', dict(depth=50, base_channels=8, epsilon=2.0),
             'bottleneck', bottleneck8, merge='gated', attention=True),
        Case('CompactResNet', 'compact18',
             dict(depth=18, base_channels=8, stage_blocks=(2, 1, 0, 1),
                  shortcut_only_stages=(False, False, True, False)), 'basic', basic8,
             attention=True),
        Case('CompactResNet', 'compact50',
             dict(depth=50, base_channels=8, stage_blocks=(3, 0, 2, 1),
                  shortcut_only_stages=(False, True, True, False)), 'bottleneck', bottleneck8,
             attention=True),
        Case('CifarResNet', 'cifar20', dict(depth=20), 'basic', cifar, stem='cifar',
             attention=True),
        Case('CifarResNet', 'cifar50', dict(depth=50, base_channels=8), 'bottleneck',
             bottleneck8, stem='cifar', attention=True),
        Case('PlainResNet', 'plain18', dict(depth=18, base_channels=8), 'basic', basic8,
             merge='plain', attention=True),
        Case('PlainResNet', 'plain50', dict(depth=50, base_channels=8), 'bottleneck',
             bottleneck8, merge='plain', attention=True),
        Case('PlainResNet', 'plain20', dict(depth=20), 'basic', cifar, stem='cifar',
             merge='plain', attention=True),
        Case('RMPlainResNet', 'rm18', dict(depth=18, base_channels=8), 'rm_basic', basic8,
             merge='rm'),
        Case('RMPlainResNet', 'rm50', dict(depth=50, base_channels=8, reserve_identity=False),
             'rm_bottleneck', bottleneck8, merge='rm'),
        Case('ResNet', 'preact18', dict(depth=18, base_channels=8, preact=True), 'basic', basic8,
             merge='preact_trunk', attention=True),
        Case('EpsilonResNet', 'eps-preact50', dict(depth=50, base_channels=8, epsilon=2.0,
                                                   preact=True),
             'bottleneck', bottleneck8, merge='preact_trunk_gated', attention=True),
        Case('PreActResNetCIFAR', 'preact20', dict(depth=20, out_indices=(0, 1, 2)), 'preact',
             cifar, stem='cifar', merge='preact'),
        Case('PreActResNetCIFAR', 'eps-preact20', dict(depth=20, epsilon=0.5,
                                                       out_indices=(0, 1, 2)),
             'preact', cifar, stem='cifar', merge='preact_gated'),
    ]


CASES = _cases()
CASES_BY_BACKBONE = {b: [c for c in CASES if c.backbone == b] for b in BACKBONES}
# every registered backbone's cases (a backbone without cases gets a failing placeholder)
BACKBONE_CASES = [c for b in BACKBONES for c in CASES_BY_BACKBONE[b]]
# every attention on a basic-block and a bottleneck ResNet; on each other backbone that takes
# attention, one of them (each attention appears on some other backbone)
ATTENTION_EVERYWHERE = ('r18', 'r50')
ATTENTION_ROTATION = {'ed50': 'BAM', 'eps18': 'GCBlock', 'eps50': 'SRM', 'compact50': 'CBAM',
                      'cifar20': 'SGE', 'plain50': 'SEModule', 'preact18': 'BAM',
                      'eps-preact50': 'SGE'}


def _with_attention(case, attention):
    return dataclasses.replace(
        case, attention_cfg=dict(type=attention, **ATTENTION_KWARGS.get(attention, {})),
        attention_stages=(False, True, True, False)[:case.num_stages])


ATTENTION_CASES = [_with_attention(case, att) for case in BACKBONE_CASES for att in ATTENTIONS
                   if case.name in ATTENTION_EVERYWHERE
                   or ATTENTION_ROTATION.get(case.name) == att]
ALL_CASES = BACKBONE_CASES + ATTENTION_CASES


# Defects of modules outside the backbones (reported, fixed where the module lives):
# (contract, attention type) -> reason. strict: the test fails once the defect is fixed.
# (GC's own init and SRM at batch 1 were fixed in attention/gc.py and attention/srm.py.)
KNOWN_DEFECTS = {}


def _params(cases, contract=None):
    params = []
    for c in cases:
        reason = KNOWN_DEFECTS.get((contract, (c.attention_cfg or {}).get('type')))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(c, id=c.id, marks=marks))
    return params


# Options a variant does not define: (exception, text the message must contain).
_TYPE_ERROR = {opt: (TypeError, opt) for opt in (
    'frozen_stages', 'style', 'deep_stem', 'avg_down', 'zero_init_residual', 'with_cp', 'dcn',
    'plugins', 'attention', 'strides', 'stem_channels')}
UNSUPPORTED = {
    'OctResNet': {opt: (ValueError, opt) for opt in
                  ('avg_down', 'dcn', 'plugins', 'attention')},
    'RMPlainResNet': {opt: (ValueError, opt) for opt in
                      ('deep_stem', 'avg_down', 'dcn', 'plugins', 'attention',
                       'zero_init_residual')},
    'PlainResNet': {'zero_init_residual': (ValueError, 'zero_init_residual')},
    'EpsilonResNet': {'zero_init_residual': (ValueError, 'zero_init_residual')},
    'PreActResNetCIFAR': _TYPE_ERROR,
}
OPTION_VALUES = {
    'frozen_stages': 1, 'style': 'caffe', 'deep_stem': True, 'avg_down': True,
    'zero_init_residual': True, 'with_cp': True, 'dcn': DCN, 'plugins': [PLUGIN],
    'attention': 'se', 'strides': (1, 2, 2, 2), 'stem_channels': 12,
}


def unsupported(case, option):
    """``(exception, match)`` when ``case`` does not define ``option``, else None."""
    found = UNSUPPORTED.get(case.backbone, {}).get(option)
    if found is None and option == 'deep_stem' and case.stem == 'cifar':
        found = (ValueError, 'deep_stem')
    if found is None and option == 'dcn' and case.block == 'basic':
        found = (AssertionError, 'Not implemented')  # mmdet's BasicBlock has no DCN
    if found is None and option == 'zero_init_residual' and case.kwargs.get('preact'):
        found = (ValueError, 'zero_init_residual')  # a pre-activation block ends with a conv
    if found is None and option == 'dcn' and 'conv_cfg' in case.kwargs:
        found = (AssertionError, 'conv_cfg')  # mmdet: DCN replaces the conv_cfg conv
    return found


def expect_refusal(case, option, **kwargs):
    """If ``case`` does not define ``option``: assert building it raises a clear error, return
    True. Otherwise return False."""
    refusal = unsupported(case, option)
    if refusal is None:
        return False
    error, match = refusal
    value = kwargs.pop(option, OPTION_VALUES[option])
    with pytest.raises(error, match=match):
        case.build(**{option: value}, **kwargs)
    return True


# --------------------------------------------------------------------------------------------
# Helpers: sizes, module walks, randomisation
# --------------------------------------------------------------------------------------------


def down(n, stride):
    """Output size of every stride-s op of the trunk (3x3/p1, 7x7/p3, 1x1, ceil avg-pool)."""
    return (n - 1) // stride + 1


def expected_shapes(case, batch, h, w, out_indices=None, strides=None, stem_down=None):
    """Stage output shapes from the conv arithmetic: the ImageNet stem divides by 4 (stride-2
    conv, stride-2 max-pool), the CIFAR stem keeps the size, each stage applies its stride."""
    out_indices = case.all_outs if out_indices is None else out_indices
    strides = case.default_strides if strides is None else strides
    if stem_down is None:
        stem_down = case.stem == 'imagenet'
    if stem_down:
        h, w = down(down(h, 2), 2), down(down(w, 2), 2)
    shapes = []
    for i, stride in enumerate(strides):
        h, w = down(h, stride), down(w, stride)
        if i in out_indices:
            shapes.append((batch, case.channels[i], h, w))
    return shapes


def shapes(outs):
    return [tuple(o.shape) for o in outs]


def stages(model):
    return [getattr(model, name) for name in model.res_layers]


def blocks(model):
    """Residual blocks (modules with a conv1) of every stage, in forward order."""
    return [m for stage in stages(model) for m in stage if hasattr(m, 'conv1')]


def stem_modules(model):
    if getattr(model, 'deep_stem', False):
        return [model.stem]
    return [model.conv1, getattr(model, model.norm1_name)]


def batch_norms(module):
    return [m for m in module.modules() if isinstance(m, _BatchNorm)]


def attention_modules(module, case):
    cls = MODELS.get(case.attention_cfg['type']) if case.attention_cfg else None
    return [m for m in module.modules() if cls is not None and isinstance(m, cls)]


def stride_of(conv):
    stride = conv.stride
    return stride[0] if isinstance(stride, tuple) else stride


def randomise(model, seed=0):
    """Random weights (He scale), then BN statistics of a calibration batch, so eval-mode
    activations stay O(1) through the network; counters are reset afterwards."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() <= 1:
                if name.endswith('weight'):
                    p.copy_(torch.rand(p.shape, generator=g) + 0.5)
                else:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            else:
                fan_in = max(1, p[0].numel())
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / fan_in)**0.5)
        norms = batch_norms(model)
        momenta = [bn.momentum for bn in norms]
        for bn in norms:
            bn.momentum = 1.0
        was_training = model.training
        model.train()
        for bn in norms:  # also under norm_eval / frozen stages
            bn.train()
        model(torch.randn(2, 3, *TRAIN_SIZE, generator=g))
        model.train(was_training)
        for bn, momentum in zip(norms, momenta):
            bn.momentum = momentum
            bn.num_batches_tracked.zero_()
        for m in model.modules():
            if hasattr(m, 'reset_statistics'):  # epsilon gates
                m.reset_statistics()
    return model


def randomise_norms(model, seed=0):
    """Random affine parameters of every norm layer only."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (_BatchNorm, nn.GroupNorm)) and m.weight is not None:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


def assert_close(actual, expected, **kwargs):
    """``assert_close`` with an absolute tolerance relative to the tensor's scale."""
    scale = max(1.0, float(expected.abs().max())) if expected.numel() else 1.0
    kwargs.setdefault('rtol', 1e-4)
    kwargs.setdefault('atol', 1e-5 * scale)
    torch.testing.assert_close(actual, expected, **kwargs)


def buffers(model):
    return {k: v.detach().clone() for k, v in model.named_buffers()}


def train_step(model, x, seed=0):
    """One forward + backward in train mode; returns the outputs (detached) and input grad."""
    model.train()
    x = x.clone().requires_grad_(True)
    outs = model(x)
    g = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=g)).sum() for o in outs)
    loss.backward()
    return [o.detach() for o in outs], x.grad


@pytest.fixture(scope='module')
def randomised_model():
    """The case's model with random weights (shared; tests only run it in eval mode)."""
    cache = {}

    def get(case):
        if case.id not in cache:
            cache[case.id] = randomise(case.build()).eval()
        return cache[case.id]

    return get


# --------------------------------------------------------------------------------------------
# An independent forward built from the modules
# --------------------------------------------------------------------------------------------


def reference_gate(residual, epsilon, sparsity_l=1e6):
    """Strict-identity gate: s = max(relu(|F| - eps)), g = relu(1 - L relu(1 - L s))."""
    s = torch.clamp(residual.abs() - epsilon, min=0).max()
    return torch.clamp(1 - sparsity_l * torch.clamp(1 - sparsity_l * s, min=0), min=0)


def _run(block, names, x):
    for name in names:
        x = getattr(block, name)(x)
    return x


def _pairwise(fn, *xs):
    """Apply ``fn`` to a tensor, or frequency by frequency to (high, low) octave pairs."""
    if isinstance(xs[0], tuple):
        return tuple(None if parts[0] is None else fn(*parts) for parts in zip(*xs))
    return fn(*xs)


def reference_block(block, x, merge):
    relu = F.relu
    if merge == 'octave':
        out = block.relu(block.norm1(block.conv1(x)))
        out = block.relu(block.norm2(block.conv2(out)))
        out = block.norm3(block.conv3(out))
        shortcut = x if block.downsample is None else block.downsample(x)
        return _pairwise(lambda a, b: relu(a + b), out, shortcut)
    if merge == 'rm':
        out = relu(block.conv1(x))
        if hasattr(block, 'conv3'):
            out = relu(block.conv2(out))
            return relu(block.conv3(out))
        return relu(block.conv2(out))
    if merge in ('preact_trunk', 'preact_trunk_gated'):  # ResNet(preact=True)
        a = relu(getattr(block, block.norm1_name)(x)) if block.preact else x
        names = {p: getattr(block, f'{p}_plugin_names', []) for p in
                 ('after_conv1', 'after_conv2', 'after_conv3')}
        out = _run(block, names['after_conv1'],
                   relu(getattr(block, block.norm2_name)(block.conv1(a))))
        if hasattr(block, 'conv3'):  # bottleneck: no norm after conv3
            out = _run(block, names['after_conv2'],
                       relu(getattr(block, block.norm3_name)(block.conv2(out))))
            out = _run(block, names['after_conv3'], block.conv3(out))
        else:
            out = _run(block, names['after_conv2'], block.conv2(out))
        source = a if block.shortcut_from_preact else x
        shortcut = source if block.downsample is None else block.downsample(source)
        if merge == 'preact_trunk_gated':
            out = reference_gate(out, block.gate.epsilon) * out
        return out + shortcut
    if merge in ('preact', 'preact_gated'):
        out = relu(getattr(block, block.norm1_name)(x)) if block.preact else x
        out = block.conv2(relu(getattr(block, block.norm2_name)(block.conv1(out))))
        shortcut = x
        if block.downsample is not None:  # parameter-free: 2x2 avg-pool, zero channels
            shortcut = F.avg_pool2d(x, 2, ceil_mode=True)
            pad = (out.shape[1] - x.shape[1]) // 2
            zeros = shortcut.new_zeros(shortcut.shape[0], pad, *shortcut.shape[2:])
            shortcut = torch.cat([zeros, shortcut, zeros], dim=1)
        if merge == 'preact_gated':
            out = reference_gate(out, block.gate.epsilon) * out
        return out + shortcut
    names = {p: getattr(block, f'{p}_plugin_names', []) for p in
             ('after_conv1', 'after_conv2', 'after_conv3')}
    out = _run(block, names['after_conv1'], relu(block.norm1(block.conv1(x))))
    if hasattr(block, 'conv3'):  # bottleneck
        branch = relu(block.norm2(block.conv2(out)))
        if getattr(block, 'with_sk', False):
            second = relu(getattr(block, block.norm2g_name)(block.conv2g(out)))
            branch = block.sk([branch, second])
        out = _run(block, names['after_conv2'], branch)
        out = _run(block, names['after_conv3'], block.norm3(block.conv3(out)))
    else:
        out = _run(block, names['after_conv2'], block.norm2(block.conv2(out)))
    shortcut = x if block.downsample is None else block.downsample(x)
    if merge == 'plain':
        return relu(out)
    if merge == 'gated':
        out = reference_gate(out, block.gate.epsilon) * out
    if merge == 'ed':
        return relu(out + shortcut + block.ed_path(shortcut))
    return relu(out + shortcut)


def _stage_children_records(model, x):
    """Run ``model`` on ``x``; return its outputs and ``(module, input, output)`` of every
    module of every stage (blocks, projection shortcuts), in forward order."""
    records = []

    def clone(t):
        return tuple(None if p is None else p.clone() for p in t) if isinstance(t, tuple) \
            else t.clone()

    def hook(module, inputs, output):
        records.append((module, clone(inputs[0]), clone(output)))

    handles = [m.register_forward_hook(hook) for stage in stages(model) for m in stage]
    with torch.no_grad():
        outs = model(x)
    for handle in handles:
        handle.remove()
    return outs, records


def check_forward_against_reference(model, x, case):
    """The backbone forward re-done from its modules, step by step: the stem, every block
    (given the input the model gave it, so rounding differences do not compound through the
    network), the chaining of blocks, stage attention and the returned stages."""
    from resvariants.models.layers.octave_conv import merge_octave
    outs, records = _stage_children_records(model, x)
    same = lambda a, b: _pairwise(assert_close, a, b)  # noqa: E731
    with torch.no_grad():
        if getattr(model, 'deep_stem', False):
            y = model.stem(x)
        else:
            y = F.relu(getattr(model, model.norm1_name)(model.conv1(x)))
        if case.stem == 'imagenet':
            y = F.max_pool2d(y, 3, stride=2, padding=1)
        returned = []
        position = 0
        for i, stage in enumerate(stages(model)):
            for module in stage:
                recorded, inp, out = records[position]
                assert recorded is module
                same(inp, y)  # the previous step's output is this module's input
                if hasattr(module, 'conv1'):
                    same(out, reference_block(module, inp, case.merge))
                else:  # a discarded block's projection shortcut (CompactResNet)
                    same(out, F.relu(module.downsample(inp)))
                y = out
                position += 1
            if case.stage_attention and case.attention_stages[i]:
                y = getattr(model, f'{case.attention_cfg["type"].lower()}{i + 1}')(y)
            if case.merge.startswith('preact') and i == len(model.res_layers) - 1:
                y = F.relu(getattr(model, model.final_norm_name)(y))
            if i in model.out_indices:
                returned.append(merge_octave(y) if case.merge == 'octave' else y)
    assert position == len(records)
    assert len(outs) == len(returned)
    for out, ref in zip(outs, returned):
        assert_close(out, ref)
    assert all(o.abs().sum() > 0 for o in outs)


# --------------------------------------------------------------------------------------------
# Registry coverage
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize('backbone', BACKBONES)
def test_every_registered_backbone_has_cases(backbone):
    assert CASES_BY_BACKBONE[backbone], (
        f'{backbone} is registered but has no Case in test_backbone_contracts.py')


def test_registry_lists_the_known_backbones_and_attentions():
    # the enumeration itself works (a broken filter would silently test nothing)
    assert {'ResNet', 'EDResNet', 'OctResNet', 'EpsilonResNet', 'PreActResNetCIFAR',
            'CompactResNet', 'CifarResNet', 'PlainResNet', 'RMPlainResNet'} <= set(BACKBONES)
    assert {'SEModule', 'CBAM', 'BAM', 'GCBlock', 'SGE', 'SRM'} <= set(ATTENTIONS)
    assert {c.backbone for c in CASES} <= set(BACKBONES)  # no case of a vanished backbone
    assert set(NOT_RESNET_TRUNKS) <= set(MODELS.module_dict)  # no stale exclusion


# --------------------------------------------------------------------------------------------
# Shapes and the forward itself
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize('size', [(64, 64), ODD_SIZE])
@pytest.mark.parametrize('case', _params(ALL_CASES))
def test_output_shapes_follow_the_strides(case, size, randomised_model):
    model = randomised_model(case)
    with torch.no_grad():
        outs = model(torch.randn(2, 3, *size))
    assert shapes(outs) == expected_shapes(case, 2, *size)


@pytest.mark.parametrize('case', _params(ALL_CASES))
def test_forward_equals_the_composition_of_its_modules(case, randomised_model):
    check_forward_against_reference(randomised_model(case), torch.randn(2, 3, *ODD_SIZE), case)


@pytest.mark.parametrize('case', _params(BACKBONE_CASES))
def test_out_indices_subset_returns_those_stages(case, randomised_model):
    full = randomised_model(case)
    subset = (1, case.num_stages - 1)
    model = case.build(out_indices=subset).eval()
    model.load_state_dict(full.state_dict())
    x = torch.randn(1, 3, 33, 39)
    with torch.no_grad():
        outs, all_outs = model(x), full(x)
    assert shapes(outs) == expected_shapes(case, 1, 33, 39, out_indices=subset)
    for out, i in zip(outs, subset):
        torch.testing.assert_close(out, all_outs[i])


@pytest.mark.parametrize('case', _params(BACKBONE_CASES))
def test_strides_and_dilations(case):
    """Detection-style C5: the last stage at stride 1 with dilation 2."""
    if expect_refusal(case, 'strides'):
        return
    n = case.num_stages
    strides = case.default_strides[:-1] + (1, )
    dilations = (1, ) * (n - 1) + (2, )
    model = randomise(case.build(strides=strides, dilations=dilations)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *ODD_SIZE))
    assert shapes(outs) == expected_shapes(case, 1, *ODD_SIZE, strides=strides)
    last = [b for b in stages(model)[-1] if hasattr(b, 'conv1')]
    convs = [b.conv2 if case.block in ('bottleneck', 'octave', 'rm_bottleneck') else b.conv1
             for b in last]
    for conv in convs:
        inner = conv.conv_h2h if hasattr(conv, "conv_h2h") else conv
        assert tuple(inner.dilation) == (2, 2) and tuple(inner.padding) == (2, 2)


# --------------------------------------------------------------------------------------------
# frozen_stages / norm_eval
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize('case', _params(ALL_CASES))
def test_frozen_stages(case):
    if expect_refusal(case, 'frozen_stages'):
        return
    frozen = 2
    model = case.build(frozen_stages=frozen, norm_eval=False)
    model.train()
    model.train()  # train() again must not unfreeze
    frozen_parts = stem_modules(model) + stages(model)[:frozen]
    free_parts = stages(model)[frozen:]
    if case.stage_attention:
        names = [f'{case.attention_cfg["type"].lower()}{i + 1}' for i in range(case.num_stages)]
        stage_att = [getattr(model, n, None) for n in names]
        frozen_parts += [m for m in stage_att[:frozen] if m is not None]
        free_parts += [m for m in stage_att[frozen:] if m is not None]
    for part in frozen_parts:
        assert all(not p.requires_grad for p in part.parameters())
        assert all(not m.training for m in batch_norms(part))
    for part in free_parts:
        assert all(p.requires_grad for p in part.parameters())
        assert all(m.training for m in batch_norms(part))
    snapshots = [{k: v.clone() for k, v in part.state_dict().items()} for part in frozen_parts]
    train_step(model, torch.randn(2, 3, *TRAIN_SIZE))
    for part, snapshot in zip(frozen_parts, snapshots):
        assert all(p.grad is None for p in part.parameters())
        for key, value in part.state_dict().items():  # BN statistics included
            assert torch.equal(value, snapshot[key]), key
    for part in free_parts:
        assert all(int(bn.num_batches_tracked) == 1 for bn in batch_norms(part))
        params = list(part.parameters())
        assert params and all(p.grad is not None for p in params)


def test_frozen_stages_zero_freezes_the_deep_stem_only():
    case = CASES_BY_BACKBONE['ResNet'][1]
    model = case.build(deep_stem=True, frozen_stages=0, norm_eval=False).train()
    assert all(not p.requires_grad for p in model.stem.parameters())
    assert all(not bn.training for bn in batch_norms(model.stem))
    assert all(p.requires_grad for p in model.layer1.parameters())


@pytest.mark.parametrize('case', _params(ALL_CASES))
def test_norm_eval_freezes_bn_statistics_and_every_bn_updates_once_without_it(case):
    model = case.build(norm_eval=True)
    model.train()
    norms = batch_norms(model)
    if case.merge == 'rm':
        assert not norms  # the deploy form has its norms folded into the convs
    assert all(not bn.training for bn in norms)
    assert model.training
    before = buffers(model)
    train_step(model, torch.randn(2, 3, *TRAIN_SIZE))
    for key, value in buffers(model).items():
        if 'running' in key or 'num_batches' in key:
            torch.testing.assert_close(value, before[key], rtol=0, atol=0)

    model = case.build(norm_eval=False)
    model.train()
    assert all(bn.training for bn in batch_norms(model))
    train_step(model, torch.randn(2, 3, *TRAIN_SIZE))
    # every BN ran exactly once: no dead norm, no norm (e.g. of a shortcut) run twice
    counts = {name: int(m.num_batches_tracked) for name, m in model.named_modules()
              if isinstance(m, _BatchNorm)}
    assert all(n == 1 for n in counts.values()), {k: v for k, v in counts.items() if v != 1}


# --------------------------------------------------------------------------------------------
# style / deep_stem / avg_down / stem_channels
# --------------------------------------------------------------------------------------------


def _first_blocks_of_strided_stages(model, case):
    found = []
    for stage, stride in zip(stages(model), case.default_strides):
        if stride == 2 and hasattr(stage[0], 'conv1'):
            found.append(stage[0])
    return found


@pytest.mark.parametrize('case', _params(BACKBONE_CASES))
def test_style_sets_where_the_stride_sits(case, randomised_model):
    if expect_refusal(case, 'style'):
        return
    reference = randomised_model(case)  # style='pytorch', the default
    results = {}
    for style in ('pytorch', 'caffe'):
        model = reference if style == 'pytorch' else case.build(style=style).eval()
        model.load_state_dict(reference.state_dict())
        first = _first_blocks_of_strided_stages(model, case)
        assert first
        for block in first:
            if case.block in ('bottleneck', 'octave', 'rm_bottleneck'):
                expected = (1, 2) if style == 'pytorch' else (2, 1)
            else:  # basic blocks: the first 3x3 conv strides in both styles
                expected = (2, 1)
            assert (stride_of(block.conv1), stride_of(block.conv2)) == expected
        with torch.no_grad():
            results[style] = model(torch.randn(2, 3, *ODD_SIZE,
                                               generator=torch.Generator().manual_seed(1)))
        assert shapes(results[style]) == expected_shapes(case, 2, *ODD_SIZE)
    same = all(torch.allclose(a, b) for a, b in zip(results['pytorch'], results['caffe']))
    # where the stride sits changes a bottleneck's maths, not a basic block's
    assert same == (case.block in ('basic', 'rm_basic'))


@pytest.mark.parametrize('case', _params(BACKBONE_CASES))
def test_deep_stem(case):
    if expect_refusal(case, 'deep_stem'):
        return
    model = case.build(deep_stem=True, stem_channels=16).eval()
    assert not hasattr(model, 'conv1')
    convs = [m for m in model.stem if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, stride_of(c)) for c in convs] == [
        (3, 8, (3, 3), 2), (8, 8, (3, 3), 1), (8, 16, (3, 3), 1)]
    assert len(batch_norms(model.stem)) == (0 if case.merge == 'rm' else 3)
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *ODD_SIZE))
    assert shapes(outs) == expected_shapes(case, 1, *ODD_SIZE)


@pytest.mark.parametrize('case', _params(BACKBONE_CASES))
def test_avg_down(case, randomised_model):
    if expect_refusal(case, 'avg_down'):
        return
    model = randomise(case.build(avg_down=True)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *ODD_SIZE))
    assert shapes(outs) == expected_shapes(case, 1, *ODD_SIZE)
    if case.merge == 'plain':
        # no shortcut, so nothing to average-pool: avg_down changes nothing
        assert not any('downsample' in name for name, _ in model.named_modules())
        plain = randomised_model(case)
        model.load_state_dict(plain.state_dict())
        x = torch.randn(1, 3, *ODD_SIZE)
        with torch.no_grad():
            for a, b in zip(model(x), plain(x)):
                torch.testing.assert_close(a, b)
        return
    checked = 0
    for stage, stride in zip(stages(model), case.default_strides):
        downsample = stage[0].downsample
        if stride == 2:
            pool, conv = downsample[0], downsample[1]
            assert isinstance(pool, nn.AvgPool2d)
            assert (pool.kernel_size, pool.stride, pool.ceil_mode, pool.count_include_pad) == (
                2, 2, True, False)
            assert stride_of(conv) == 1
            checked += 1
    assert checked == sum(s == 2 for s in case.default_strides)


@pytest.mark.parametrize('case', _params(BACKBONE_CASES))
def test_stem_channels(case):
    if expect_refusal(case, 'stem_channels'):
        return
    model = case.build(stem_channels=12).eval()
    assert model.conv1.out_channels == 12
    first = stages(model)[0][0]
    assert (first.inplanes if case.merge == 'octave' else first.conv1.in_channels) == 12
    if case.merge != 'rm':
        assert getattr(model, model.norm1_name).num_features == 12
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 40, 40))
    assert shapes(outs) == expected_shapes(case, 1, 40, 40)


# --------------------------------------------------------------------------------------------
# zero_init_residual
# --------------------------------------------------------------------------------------------


def last_norms(block, case):
    if case.merge == 'octave':
        norm = block.norm3
        return [n for n in (norm.norm_h, norm.norm_l) if n is not None]
    norms = [block.norm3 if hasattr(block, 'conv3') else block.norm2]
    if case.merge == 'ed':
        norms.append(block.ed_path.decoder_norm)
    return norms


def block_inputs_and_outputs(model, x):
    records = []

    def hook(module, inputs, output):
        clone = (lambda t: tuple(None if p is None else p.clone() for p in t)
                 if isinstance(t, tuple) else t.clone())
        records.append((module, clone(inputs[0]), clone(output)))

    handles = [b.register_forward_hook(hook) for b in blocks(model)]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return records


@pytest.mark.parametrize('case', _params(ALL_CASES))
def test_zero_init_residual_makes_every_block_its_shortcut(case):
    if expect_refusal(case, 'zero_init_residual'):
        return
    model = case.build(zero_init_residual=True)
    randomise_norms(model)  # init_weights must set the zeros itself
    model.init_weights()
    model.eval()
    for block in blocks(model):
        for norm in last_norms(block, case):
            assert torch.all(norm.weight == 0) and torch.all(norm.bias == 0)
    records = block_inputs_and_outputs(model, torch.randn(2, 3, *ODD_SIZE))
    assert len(records) == len(blocks(model))
    for block, x, out in records:
        with torch.no_grad():
            expected = x if block.downsample is None else _pairwise(F.relu, block.downsample(x))
        _pairwise(assert_close, out, expected)

    model = case.build(zero_init_residual=False)
    model.init_weights()
    for block in blocks(model):
        for norm in last_norms(block, case):
            assert torch.all(norm.weight == 1)
    records = block_inputs_and_outputs(model.eval(), torch.randn(2, 3, *ODD_SIZE))
    assert any(not torch.allclose(out if not isinstance(out, tuple) else out[0],
                                  x if not isinstance(x, tuple) else x[0])
               for block, x, out in records if block.downsample is None)


# --------------------------------------------------------------------------------------------
# with_cp
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize('case', _params(ALL_CASES))
def test_with_cp_gives_the_same_step(case):
    """Same outputs, input and parameter gradients, and buffers after one training step:
    BN statistics (and the epsilon gates' step counters) are updated once, not again by the
    recomputation in backward."""
    if expect_refusal(case, 'with_cp'):
        return
    reference = randomise(case.build(norm_eval=False))
    checkpointed = case.build(norm_eval=False, with_cp=True)
    checkpointed.load_state_dict(reference.state_dict())
    assert blocks(checkpointed) and all(b.with_cp for b in blocks(checkpointed))
    x = torch.randn(2, 3, *TRAIN_SIZE)
    outs, grad = train_step(reference, x)
    outs_cp, grad_cp = train_step(checkpointed, x)
    for a, b in zip(outs, outs_cp):
        torch.testing.assert_close(b, a)
    torch.testing.assert_close(grad_cp, grad)
    params_cp = dict(checkpointed.named_parameters())
    for name, p in reference.named_parameters():
        if p.grad is None:
            assert params_cp[name].grad is None, name
        else:
            torch.testing.assert_close(params_cp[name].grad, p.grad, msg=name)
    buffers_cp = buffers(checkpointed)
    for name, value in buffers(reference).items():
        torch.testing.assert_close(buffers_cp[name], value, msg=name, rtol=1e-5, atol=1e-6)
    for name, value in buffers_cp.items():
        if name.endswith('num_batches_tracked') or name.endswith('steps_seen'):
            assert int(value) == 1, name


# --------------------------------------------------------------------------------------------
# dcn
# --------------------------------------------------------------------------------------------


def _deform_types():
    from mmcv.ops import DeformConv2dPack, ModulatedDeformConv2dPack
    return {'DCN': DeformConv2dPack, 'DCNv2': ModulatedDeformConv2dPack}


@pytest.mark.parametrize('dcn_type', ['DCN', 'DCNv2'])
@pytest.mark.parametrize('case', _params(BACKBONE_CASES))
def test_dcn_with_zero_offsets_is_the_plain_conv(case, dcn_type, randomised_model):
    dcn = dict(DCN, type=dcn_type)
    stage_with_dcn = (False, ) + (True, ) * (case.num_stages - 1)
    if dcn_type == 'DCN' and case.stem == 'imagenet':
        # mmcv's DCN (v1) refuses maps smaller than its kernel, padding or not ("input image
        # is smaller than kernel"): layer4 runs at 2x2 here
        stage_with_dcn = stage_with_dcn[:-1] + (False, )
    if expect_refusal(case, 'dcn', dcn=dcn, stage_with_dcn=stage_with_dcn):
        return
    model = case.build(dcn=dcn, stage_with_dcn=stage_with_dcn).eval()
    cls = _deform_types()[dcn_type]
    for i, stage in enumerate(stages(model)):
        for block in stage:
            if hasattr(block, 'conv2'):
                assert isinstance(block.conv2, cls) == stage_with_dcn[i]
    plain = randomised_model(case)
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all('conv_offset' in k for k in missing)
    # the offset (and mask) convs start at zero: offsets 0, DCNv2's mask sigmoid(0) = 1/2
    assert all(torch.all(p == 0) for n, p in model.named_parameters() if 'conv_offset' in n)
    expected_model = copy.deepcopy(plain)
    state = plain.state_dict()
    if dcn_type == 'DCNv2':
        for i, stage in enumerate(stages(model)):
            for j, block in enumerate(stage):
                if stage_with_dcn[i] and hasattr(block, 'conv2'):
                    key = f'{model.res_layers[i]}.{j}.conv2.weight'
                    state[key] = state[key] * 0.5
    expected_model.load_state_dict(state)
    x = torch.randn(2, 3, *ODD_SIZE)
    try:
        _, records = _stage_children_records(model, x)
    except (RuntimeError, NotImplementedError) as e:
        if 'not compiled' in str(e) or 'not implemented' in str(e).lower():
            pytest.skip(f'this mmcv build has no CPU {dcn_type} op: {e}')
        raise
    # block by block (the same input into both), so rounding does not compound
    plain_modules = [m for stage in stages(expected_model) for m in stage]
    assert len(plain_modules) == len(records)
    with torch.no_grad():
        for (module, inp, out), plain_module in zip(records, plain_modules):
            expected = plain_module(inp)
            # im2col sums in another order: 1e-4 of the block's scale (a wrong offset or mask
            # is off by the size of the values)
            assert_close(out, expected, atol=1e-4 * max(1.0, float(expected.abs().max())))


# --------------------------------------------------------------------------------------------
# plugins (with attention), attention placement
# --------------------------------------------------------------------------------------------


def _plugin_case(case):
    """Two mmcv ContextBlocks (after conv1 in stages 2-4, and after conv2 of bottlenecks)."""
    stages_mask = (False, ) + (True, ) * (case.num_stages - 1)
    plugins = [dict(cfg=dict(type='ContextBlock', ratio=1. / 4, postfix=1),
                    position='after_conv1', stages=stages_mask)]
    if case.block == 'bottleneck':
        plugins.append(dict(cfg=dict(type='ContextBlock', ratio=1. / 4, postfix=2),
                            position='after_conv2'))
    return plugins


@pytest.mark.parametrize('case', _params(ALL_CASES))
def test_plugins_and_attention_compose(case):
    if expect_refusal(case, 'plugins'):
        return
    from mmcv.cnn import ContextBlock
    plugins = _plugin_case(case)
    model = randomise(case.build(plugins=plugins)).eval()
    for i, stage in enumerate(stages(model)):
        for block in stage:
            if not hasattr(block, 'conv1'):
                continue
            assert hasattr(block, 'context_block1') == (i > 0)
            if i > 0:
                assert block.context_block1.in_channels == block.conv1.out_channels
            if case.block == 'bottleneck':
                assert block.context_block2.in_channels == block.conv2.out_channels
            contexts = [m for m in block.modules() if isinstance(m, ContextBlock)]
            own = [m for m in contexts if not isinstance(m, MODELS.get('GCBlock'))]
            assert len(own) == (i > 0) + (case.block == 'bottleneck')
    check_forward_against_reference(model, torch.randn(2, 3, *ODD_SIZE), case)


@pytest.mark.parametrize('case', _params(ATTENTION_CASES))
def test_attention_sits_in_the_selected_stages(case):
    model = case.build()
    for i, stage in enumerate(stages(model)):
        if case.stage_attention:
            assert not attention_modules(stage, case)
            module = model.stage_attention(i)
            assert (module is not None) == case.attention_stages[i]
            if module is not None:
                assert module.in_channels == case.channels[i]
            continue
        for block in stage:
            if not hasattr(block, 'conv1'):
                continue
            found = attention_modules(block, case)
            assert len(found) == int(case.attention_stages[i])
            if found:
                assert found[0].in_channels == case.channels[i]
                last = 'after_conv3' if hasattr(block, 'conv3') else 'after_conv2'
                names = getattr(block, f'{last}_plugin_names')
                assert getattr(block, names[-1]) is found[0]  # right after the last norm


@pytest.mark.parametrize('case', _params(ATTENTION_CASES, 'own_init'))
def test_trunk_init_keeps_each_attention_modules_own_init(case):
    """After the backbone's ``init_weights`` every attention module holds the deterministic
    (constant) parts of its own initialisation, e.g. GCNet's zero last conv, CBAM's zero
    spatial-BN weight, SGE's 0/1 weight/bias: mmdet's default Kaiming / Constant init of the
    trunk must not re-draw them."""
    from resvariants.models.attention import build_attention
    model = case.build()
    model.init_weights()
    found = attention_modules(model, case)
    assert found
    for module in found:
        fresh = build_attention(dict(case.attention_cfg), module.in_channels)
        if hasattr(fresh, 'init_weights'):
            fresh.init_weights()
        expected = dict(fresh.named_parameters())
        for name, param in module.named_parameters():
            reference = expected[name]
            if torch.all(reference == reference.flatten()[0]):
                assert torch.equal(param, reference), name


@pytest.mark.parametrize('attention', ATTENTIONS)
@pytest.mark.parametrize('backbone', ['OctResNet', 'RMPlainResNet', 'PreActResNetCIFAR'])
def test_backbones_without_attention_refuse_every_attention(backbone, attention):
    case = CASES_BY_BACKBONE[backbone][0]
    error, _ = unsupported(case, 'attention')
    with pytest.raises(error, match='attention'):
        case.build(attention=dict(type=attention))


# --------------------------------------------------------------------------------------------
# batch 1, norms, conv configs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize('case', _params(ALL_CASES, 'batch_one'))
def test_batch_one_trains(case, size=ODD_SIZE):
    model = case.build(norm_eval=False)
    outs, grad = train_step(model, torch.randn(1, 3, *size))
    assert shapes(outs) == expected_shapes(case, 1, *size)
    assert all(torch.isfinite(o).all() for o in outs) and torch.isfinite(grad).all()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize('case', _params(BACKBONE_CASES))
def test_group_norm_config_reaches_every_norm(case):
    model = case.build(norm_cfg=dict(type='GN', num_groups=2, requires_grad=True))
    assert not batch_norms(model) or case.backbone == 'ResNet' and 'sk' in case.kwargs
    if case.merge != 'rm':
        assert any(isinstance(m, nn.GroupNorm) for m in model.modules())
    outs, _ = train_step(model, torch.randn(1, 3, 40, 40))
    assert shapes(outs) == expected_shapes(case, 1, 40, 40)


def _standardised(weight, eps=1e-5):
    flat = weight.flatten(1)
    mean = flat.mean(1).view(-1, 1, 1, 1)
    std = flat.std(1).view(-1, 1, 1, 1)
    return (weight - mean) / (std + eps)


@pytest.mark.parametrize('case', _params(BACKBONE_CASES))
def test_conv_ws_config_standardises_every_trunk_conv(case, randomised_model):
    """``conv_cfg=dict(type='ConvWS')`` (WS-ResNet): the network equals the plain-conv one
    with every trunk conv weight standardised per output channel."""
    if 'conv_cfg' in case.kwargs:
        return
    from mmcv.cnn.bricks.conv_ws import ConvWS2d
    model = randomise(case.build(conv_cfg=dict(type='ConvWS'))).eval()
    trunk = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)
             and not any(k in n for k in ('sk.', 'ed_path.decoder'))}
    assert trunk and all(isinstance(m, ConvWS2d) for m in trunk.values())
    plain = copy.deepcopy(randomised_model(case))
    state = model.state_dict()
    for name in trunk:
        state[f'{name}.weight'] = _standardised(state[f'{name}.weight'])
    plain.load_state_dict(state)
    x = torch.randn(2, 3, 40, 40)
    with torch.no_grad():
        for a, b in zip(model(x), plain(x)):
            assert_close(a, b, atol=1e-4 * max(1.0, float(b.abs().max())))


# --------------------------------------------------------------------------------------------
# errors of mmdet's test_resnet_backbone
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize('case', _params(BACKBONE_CASES))
def test_bad_arguments_raise(case):
    with pytest.raises((KeyError, ValueError), match='depth'):
        case.build(depth=42)
    if not case.mmdet_options:
        with pytest.raises(TypeError, match='pretrained'):
            case.build(pretrained='x.pth')
        return
    for num_stages in (0, 5):
        with pytest.raises((AssertionError, ValueError)):
            case.build(num_stages=num_stages)
    with pytest.raises((AssertionError, ValueError)):
        case.build(strides=(1, ), dilations=(1, 1), num_stages=3, out_indices=(0, ))
    with pytest.raises(TypeError, match='pretrained'):
        case.build(pretrained=0)
    with pytest.raises((AssertionError, ValueError)):
        case.build(style='tensorflow')
    if unsupported(case, 'plugins') is None:
        bad_stages = [dict(PLUGIN, stages=(False, True, True)[:case.num_stages - 1])]
        with pytest.raises((AssertionError, ValueError)):
            case.build(plugins=bad_stages)
        with pytest.raises(KeyError):
            case.build(plugins=[dict(cfg=dict(type='WrongPlugin'), position='after_conv1')])
        with pytest.raises((AssertionError, ValueError)):  # duplicate names need a postfix
            case.build(plugins=[PLUGIN, PLUGIN])
    if unsupported(case, 'dcn') is None:
        with pytest.raises(AssertionError):
            case.build(dcn=DCN, stage_with_dcn=(True, ))


# --------------------------------------------------------------------------------------------
# Pretrained / StrictPretrained
# --------------------------------------------------------------------------------------------


def _save_checkpoint(model, path, prefix='backbone.'):
    state = {prefix + k: v.clone() for k, v in model.state_dict().items()}
    torch.save({'state_dict': state, 'meta': dict(note='saved by the contract test')}, path)
    return state


@pytest.mark.parametrize('init_type', ['Pretrained', 'StrictPretrained'])
@pytest.mark.parametrize('case', _params(ALL_CASES))
def test_checkpoint_loads_through_init_cfg(case, init_type, tmp_path, randomised_model):
    source = randomised_model(case)
    path = tmp_path / 'backbone.pth'
    _save_checkpoint(source, path)
    model = case.build(init_cfg=dict(type=init_type, checkpoint=str(path), prefix='backbone.'))
    model.init_weights()
    model.eval()
    loaded = model.state_dict()
    for key, value in source.state_dict().items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)
    x = torch.randn(2, 3, *ODD_SIZE)
    with torch.no_grad():
        for a, b in zip(model(x), source(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize('case', _params(BACKBONE_CASES))
def test_strict_pretrained_names_a_missing_key(case, tmp_path, randomised_model):
    source = randomised_model(case)
    state = {'backbone.' + k: v for k, v in source.state_dict().items()}
    dropped = sorted(k for k in state if k.endswith('weight'))[-1]
    del state[dropped]
    path = tmp_path / 'partial.pth'
    torch.save({'state_dict': state}, path)
    model = case.build(init_cfg=dict(type='StrictPretrained', checkpoint=str(path),
                                     prefix='backbone.'))
    with pytest.raises(KeyError, match='missing') as info:
        model.init_weights()
    assert dropped[len('backbone.'):] in str(info.value)
