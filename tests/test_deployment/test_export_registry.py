"""Every registered backbone and every attention module exports to ONNX and TorchScript, and the
exported file equals PyTorch at input sizes other than the export size (issue 17, item 6).

The backbones come from the ``resvariants`` registry (the small arguments of
``test_attention_batch1.BACKBONE_KWARGS``, which must name every registered backbone; one
registered later without an entry is exported with its defaults) and the attention modules from
the factory (``_attention_cases.TYPES``, each in a ResNet-50 trunk of base width 16), plus the
trunk options without a class of their own (``preact=True``), so a new
backbone or module is exported as soon as it is registered.

Each model is exported at 64x64 (batch 2) with dynamic batch / height / width and run at 57x41
(odd sides: the ED path's transposed conv meets the other parity) and 30x26 (stage 4 is a 1x1
map, where SGE's and SRM's unbiased statistics are undefined and the modules use 0), batch 3:
every output within 1e-4 of PyTorch's (eager, with the fast paths on), and the outputs change
with the input. ``test_fast_functions_export_their_plain_formula`` is the issue's SGE case: a
traced hand-written Function made a graph whose output was a constant.
"""
import os.path as osp
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'test_models'))

from _attention_cases import TINY, TYPES, randomise, trunk_kwargs  # noqa: E402
from test_attention_batch1 import BACKBONE_KWARGS, _registered_backbones  # noqa: E402

from resvariants.deployment import (ExportablePart, Runner, VerificationError,  # noqa: E402
                                    example_input, export, verify)
from resvariants.models import EpsilonResNet, ResNet  # noqa: E402
from resvariants.models.attention import _fused  # noqa: E402

EXPORT_SIZE = (64, 64)
#: odd sides (the other parity than the export size); stage 4 at 1x1 (ImageNet stem)
CHECK_SIZES = [(57, 41), (30, 26)]
TOLERANCE = 1e-4
FORMATS = ['onnx', 'torchscript']


def _backbone_cases():
    cases = {}
    for name, cls in sorted(_registered_backbones().items()):
        kwargs = {k: v for k, v in BACKBONE_KWARGS.get(name, {}).items() if k != 'norm_eval'}
        cases[name] = (cls, kwargs)
    return cases


BACKBONES = _backbone_cases()
ATTENTION_CASES = {f'ResNet+{name}': (ResNet, dict(TINY, **trunk_kwargs(name))) for name in TYPES}
#: trunk options that change the blocks without a registered class of their own
OPTION_CASES = {'ResNet(preact=True)': (ResNet, dict(TINY, preact=True)),
                'EpsilonResNet(preact=True)': (EpsilonResNet, dict(TINY, preact=True))}
CASES = {**BACKBONES, **ATTENTION_CASES, **OPTION_CASES}


@pytest.fixture(scope='module')
def built():
    """One randomised eval-mode model per case, shared by both formats."""
    models = {}

    def get(name):
        if name not in models:
            cls, kwargs = CASES[name]
            torch.manual_seed(0)
            models[name] = ExportablePart(randomise(cls(**kwargs))).eval()
        return models[name]

    return get


def _onnx_ops(path):
    import onnx
    model = onnx.load(path)
    return [(node.domain, node.op_type) for node in model.graph.node], \
        [i.name for i in model.graph.input]


@pytest.mark.parametrize('fmt', FORMATS)
@pytest.mark.parametrize('name', sorted(CASES))
def test_exported_file_equals_pytorch_at_other_sizes(name, fmt, built, tmp_path):
    module = built(name)
    path = str(tmp_path / f'model.{fmt}')
    export(module, example_input(EXPORT_SIZE), path, fmt)
    results = verify(module, path, fmt, CHECK_SIZES, batch=3, tolerance=TOLERANCE)
    for r in results:
        assert max(r['diffs']) < TOLERANCE, (r['shape'], r['diffs'])  # absolute, here
        assert min(r['scales']) > 0.01  # the outputs are not ~0 (the comparison is not void)
    if fmt == 'onnx':
        ops, inputs = _onnx_ops(path)
        assert inputs == ['input']
        # standard operators only: no PythonOp of an autograd Function, no custom domain
        assert all(domain in ('', 'ai.onnx') for domain, _ in ops), sorted(set(ops))


def test_every_registered_backbone_is_exported():
    assert set(BACKBONES) == set(_registered_backbones()) and len(BACKBONES) >= 9
    assert set(ATTENTION_CASES) == {f'ResNet+{t}' for t in TYPES} and len(TYPES) >= 7


# ------------------------------------------------------------ the fast paths while exporting


class _Call(torch.nn.Module):
    """A fast function of ``_fused`` called directly (not through a module's ``fast_path``)."""

    def __init__(self, function, channels=32):
        super().__init__()
        self.function = function
        g = torch.Generator().manual_seed(3)
        self.weight = torch.nn.Parameter(torch.randn(1, 4, 1, 1, generator=g))
        self.bias = torch.nn.Parameter(torch.randn(1, 4, 1, 1, generator=g))
        self.mask = torch.nn.Parameter(torch.randn(1, channels, 1, 1, generator=g))

    def forward(self, x):
        if self.function == 'sge':
            return _fused.sge(x, self.weight, self.bias, 4)
        if self.function == 'mean_std_hw':
            return _fused.mean_std_hw(x, unbiased=True)
        if self.function == 'attention_pool':
            return _fused.attention_pool(x, self.mask)
        return _fused.channel_scale(x, torch.sigmoid(x.mean(dim=(2, 3), keepdim=True)))


FAST_FUNCTIONS = ['sge', 'mean_std_hw', 'attention_pool', 'channel_scale']
PLAIN = {'sge': lambda m, x: _fused.sge_plain(x, m.weight, m.bias, 4),
         'mean_std_hw': lambda m, x: _fused.mean_std_hw_plain(x),
         'attention_pool': lambda m, x: _fused.attention_pool_plain(x, m.mask),
         'channel_scale': lambda m, x: x * torch.sigmoid(x.mean(dim=(2, 3), keepdim=True))}


def test_fast_functions_cover_every_public_function_of_fused():
    public = {name for name, value in vars(_fused).items()
              if callable(value) and not name.startswith('_') and getattr(
                  value, '__module__', None) == _fused.__name__}
    helpers = {'exporting', 'graph_capture', 'fast_path', 'sample_variance'}
    assert public - helpers == set(FAST_FUNCTIONS) | {f for f in public if f.endswith('_plain')}


@pytest.mark.parametrize('function', FAST_FUNCTIONS)
def test_fast_functions_export_their_plain_formula(function, tmp_path):
    """Exported while a graph is recorded, each fast function is its plain formula: standard
    ops, the input in the graph, the plain formula's values at two other sizes. (Traced, the
    hand-written ``_SGE`` Function made a graph whose output was the buffer it writes into: a
    constant, with no graph input at all at static shapes; ``_MeanStdHW`` did not export.)"""
    module = _Call(function).eval()
    path = str(tmp_path / 'f.onnx')
    x = torch.randn(2, 32, 9, 7)
    # autograd on (parameters that need gradients): where the Functions would run eagerly
    torch.onnx.export(module, (x, ), path, dynamo=False, input_names=['input'],
                      dynamic_axes={'input': {0: 'b', 2: 'h', 3: 'w'}}, opset_version=17)
    ops, inputs = _onnx_ops(path)
    assert inputs == ['input'] and 'ConstantOfShape' not in {op for _, op in ops}
    runner = Runner(path, 'onnx')
    for shape in [(3, 32, 6, 11), (1, 32, 12, 5)]:
        x = torch.randn(shape)
        with torch.no_grad():
            expected = PLAIN[function](module, x)
        expected = expected if isinstance(expected, tuple) else (expected, )
        got = runner(x)
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-5)


def test_a_static_shape_sge_graph_reads_its_input(tmp_path):
    """The issue's report: an SGE exported with static shapes (the TorchScript exporter's
    default) had no input; the module in eval mode, fast path on, now exports the formula."""
    from resvariants.models.attention import SGE
    module = randomise(SGE(32, groups=4)).eval()
    assert module.fused
    path = str(tmp_path / 'sge.onnx')
    x = torch.randn(2, 32, 9, 7)
    with torch.no_grad():
        torch.onnx.export(module, (x, ), path, dynamo=False, input_names=['input'],
                          opset_version=17)
    assert _onnx_ops(path)[1] == ['input']
    runner = Runner(path, 'onnx')
    for seed in (1, 2):
        x = torch.randn(2, 32, 9, 7, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            np.testing.assert_allclose(runner(x)[0], module(x).numpy(), rtol=1e-5, atol=1e-5)


def test_runner_without_spinning_sets_the_session_option_and_computes_the_same(tmp_path):
    """``Runner(..., spinning=False)`` (what the latency benchmark uses) turns onnxruntime's
    busy-waiting threads off in the session it runs, and changes no output."""
    from resvariants.models.attention import SGE
    module = randomise(SGE(32, groups=4)).eval()
    path = str(tmp_path / 'sge.onnx')
    with torch.no_grad():
        torch.onnx.export(module, (torch.randn(2, 32, 9, 7), ), path, dynamo=False,
                          input_names=['input'], opset_version=17)
    quiet, default = Runner(path, 'onnx', threads=1, spinning=False), Runner(path, 'onnx')
    options = quiet.session.get_session_options()
    assert options.get_session_config_entry('session.intra_op.allow_spinning') == '0'
    assert options.get_session_config_entry('session.inter_op.allow_spinning') == '0'
    with pytest.raises(RuntimeError, match='allow_spinning'):  # the default: no entry, spinning
        default.session.get_session_options().get_session_config_entry(
            'session.intra_op.allow_spinning')
    x = torch.randn(2, 32, 9, 7)
    np.testing.assert_array_equal(quiet(x)[0], default(x)[0])


def test_a_constant_graph_fails_verification(tmp_path):
    """What the verification catches: an exported graph that ignores its input."""

    class Constant(torch.nn.Module):
        def forward(self, x):
            return (torch.zeros(x.shape[0], 2) + 1, )

    module = Constant()
    path = str(tmp_path / 'c.onnx')
    export(module, example_input((8, 8)), path, 'onnx')
    with pytest.raises(VerificationError, match='do not change when the input changes'):
        verify(module, path, 'onnx', [(9, 7)])


# ------------------------------------------------------------ the torch.export-based exporter

ONE_STAGE = dict(num_stages=1, out_indices=(0, ), strides=(2, ), dilations=(1, ))


@pytest.mark.parametrize('name,kwargs', [
    ('EDResNet', dict(TINY, ed_groups=4, attention='SRM', **ONE_STAGE)),
    ('EpsilonResNet', dict(TINY, depth=18, attention=dict(type='SGE', groups=4), **ONE_STAGE)),
], ids=['ed+srm', 'epsilon+sge'])
def test_dynamo_exporter(name, kwargs, tmp_path):
    """``exporter='dynamo'`` (torch.export, onnxscript) on what it once failed on: the ED
    path's output size, the strict-identity gate's max, and SRM's and SGE's statistics (a
    branch on the map size fixed the graph to the export size). One-stage trunks (stride 8)
    keep it fast; verified at an odd size and at 8x8, a 1x1 map."""
    pytest.importorskip('onnxscript')
    torch.manual_seed(0)
    module = ExportablePart(randomise(_registered_backbones()[name](**kwargs))).eval()
    path = str(tmp_path / 'dynamo.onnx')
    export(module, example_input((32, 32)), path, 'onnx', exporter='dynamo')
    results = verify(module, path, 'onnx', [(23, 17), (8, 8)], batch=3, tolerance=TOLERANCE)
    assert all(max(r['diffs']) < TOLERANCE for r in results)
