"""Every attention module resvariants registers, built small, with inputs, and in a tiny trunk.

Shared by the attention tests, which iterate over ``attention_types()`` (the factory's record
of every registered attention class), so a newly registered module is tested too.
"""
import inspect

import torch

from resvariants.models.attention import SKFusion, attention_types

TYPES = sorted(attention_types())
#: the modules reproduced from the sources (docs/architectures.md 1.2-1.8): their initial state,
#: parameter shapes and plugin names are pinned module by module; a new module brings its own
#: formula test and is checked by every registry-driven test
SOURCE_TYPES = ('BAM', 'CBAM', 'GCBlock', 'SEModule', 'SGE', 'SKFusion', 'SRM')
#: modules with a hand-written fast path beside their plain formula (a ``fused`` argument)
FUSED_TYPES = [name for name in TYPES
               if 'fused' in inspect.signature(attention_types()[name].__init__).parameters]
#: a ResNet-50 with base width 16 (stage widths 64..512): small, every variant builds; no
#: zero-gamma (mmdet's default), as the ImageNet configs and PytorchInsight (docs/architectures.md
#: 1.1), so each block's residual branch, attention included, is live at init
TINY = dict(depth=50, base_channels=16, zero_init_residual=False)


def module_kwargs(name):
    """Constructor arguments for 16-32 channels: 4 groups (SGE), and a reduction of 4 so the
    hidden layers have several units (GC's ratio multiplies, the others' divides)."""
    params = inspect.signature(attention_types()[name].__init__).parameters
    kwargs = {}
    if 'groups' in params:
        kwargs['groups'] = 4
    if 'ratio' in params:
        kwargs['ratio'] = 1 / 4 if params['ratio'].default < 1 else 4
    return kwargs


def build(name, channels=32, **kwargs):
    cls = attention_types()[name]
    return cls(channels, **dict(module_kwargs(name), **kwargs))


def takes_branches(module_or_cls):
    cls = module_or_cls if isinstance(module_or_cls, type) else type(module_or_cls)
    return issubclass(cls, SKFusion)


def make_inputs(module, shape, dtype=torch.float32, requires_grad=True, seed=0):
    """The module's input tensors (SK fuses two branches of the same shape)."""
    gen = torch.Generator().manual_seed(seed)
    count = 2 if takes_branches(module) else 1
    return [torch.randn(shape, generator=gen, dtype=dtype).requires_grad_(requires_grad)
            for _ in range(count)]


def call(module, inputs):
    return module(list(inputs)) if takes_branches(module) else module(inputs[0])


def trunk_kwargs(name):
    """``resvariants.ResNet`` arguments that insert ``name`` (SK is ``sk=``, not ``attention=``)."""
    if takes_branches(attention_types()[name]):
        return dict(sk=dict(groups=4))
    if name == 'SGE':
        return dict(attention=dict(type='SGE', groups=4))
    return dict(attention=name)


def randomise(module, seed=0):
    """Random parameters and BN statistics, so no term hides behind a zero init."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            std = p[0].numel()**-0.5 if p.dim() > 1 else 0.5
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * std)
        for name, buf in module.named_buffers():
            if name.endswith('running_var'):
                buf.copy_(torch.rand(buf.shape, generator=gen, dtype=buf.dtype) + 0.5)
            elif name.endswith('running_mean'):
                buf.copy_(torch.randn(buf.shape, generator=gen, dtype=buf.dtype) * 0.2)
    return module
