"""Export a backbone (optionally with its neck, or a whole classifier) to ONNX or TorchScript,
and check the exported file against PyTorch.

* ONNX: ``torch.onnx.export`` with the TorchScript-based exporter (``exporter='torchscript'``,
  ``dynamo=False``: what mmdeploy uses, the default) or the ``torch.export``-based one
  (``exporter='dynamo'``, needs onnxscript); batch, height and width are dynamic axes, and every
  output of the part is a graph output (a detection backbone's tuple of feature maps).
* TorchScript: ``torch.jit.trace`` of the part, saved with ``torch.jit.save``; sizes are read
  from the input at run time, so the traced module runs at other sizes too.

While an exporter records the graph, every attention module with a hand-written fast path runs
its plain formula (``resvariants.models.attention._fused.graph_capture``), so the file holds
standard operators only. :func:`verify` runs the file (onnxruntime's CPU provider, or the
reloaded TorchScript module) at sizes other than the export size and compares every output with
the PyTorch module's.
"""
import logging
import math
import os
import os.path as osp
import warnings

import numpy as np
import torch
import torch.nn as nn

FORMATS = ('onnx', 'torchscript')
EXPORTERS = ('torchscript', 'dynamo')
DEFAULT_OPSET = 17
#: the largest max |exported - PyTorch| accepted by default for outputs of order 1 (relative
#: to the output's scale beyond, see :func:`verify`)
DEFAULT_TOLERANCE = 1e-4
INPUT_NAME = 'input'


class ExportError(RuntimeError):
    """The part cannot be exported, or the exported file does not run."""


class VerificationError(ExportError):
    """The exported file runs, but its outputs differ from PyTorch's by more than allowed."""


class ExportablePart(nn.Module):
    """``backbone`` (then ``neck``, then ``head``) of a built mmdet / mmpretrain model, as a
    module that maps an image batch to a tuple of tensors (what the exporters need).

    The parts are held under their own names, so a TorchScript file's keys are the model's
    (``backbone.layer1.0.conv1.weight``).

    Args:
        model: A built model with a ``backbone`` (an mmdet detector, an mmpretrain classifier)
            or a bare backbone.
        with_neck (bool): Add the model's neck (FPN, global pooling).
        with_head (bool): Add the classifier head: logits (mmpretrain classifiers; implies
            the neck, when the model has one).
    """

    def __init__(self, model, with_neck=False, with_head=False):
        super().__init__()
        backbone = getattr(model, 'backbone', None)
        self.backbone = model if backbone is None else backbone
        self.neck = self.head = None
        kind = type(model).__name__
        if with_head:
            head = getattr(model, 'head', None)
            if head is None or not _is_classification_head(head):
                raise ExportError(f'--with-head exports a whole classifier (an mmpretrain '
                                  f'ImageClassifier config); {kind} has no classification head')
            self.neck, self.head = getattr(model, 'neck', None), head
        elif with_neck:
            self.neck = getattr(model, 'neck', None)
            if self.neck is None:
                raise ExportError(f'--with-neck: {kind} has no neck')

    @property
    def parts(self):
        """Names of the model's modules this part holds (``backbone``, ``neck``, ``head``)."""
        return tuple(n for n in ('backbone', 'neck', 'head') if getattr(self, n) is not None)

    def forward(self, x):
        outs = self.backbone(x)
        if self.neck is not None:
            outs = self.neck(outs)
        if self.head is not None:
            outs = self.head(outs)
        return tuple(outs) if isinstance(outs, (tuple, list)) else (outs, )


def _is_classification_head(head):
    try:
        from mmpretrain.models.heads import ClsHead
    except ImportError:  # pragma: no cover - mmpretrain is a dependency
        return False
    return isinstance(head, ClsHead)


def output_names(count):
    return ['output'] if count == 1 else [f'output{i}' for i in range(count)]


def _dynamic_axes(outputs):
    """ONNX ``dynamic_axes``: batch, height and width of the input and of every feature-map
    output (a (B, C) output: batch)."""
    axes = {INPUT_NAME: {0: 'batch', 2: 'height', 3: 'width'}}
    for i, (name, out) in enumerate(zip(output_names(len(outputs)), outputs)):
        axes[name] = {0: 'batch'}
        if out.dim() == 4:
            axes[name].update({2: f'height{i}', 3: f'width{i}'})
    return axes


def example_input(shape, batch=2, seed=0):
    """A random image batch (B, 3, H, W). The default batch is 2: ``torch.export`` takes a
    size of 1 for a constant."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, *shape, generator=g)


def export_onnx(module, example, path, exporter='torchscript', opset=DEFAULT_OPSET):
    """Write ``module`` (eval mode, returning a tuple of tensors) to the ONNX file ``path``
    with dynamic batch, height and width. Returns ``path``."""
    if exporter not in EXPORTERS:
        raise ValueError(f'unknown ONNX exporter {exporter!r}; choose one of {EXPORTERS}')
    module.eval()
    with torch.no_grad():
        outputs = module(example)
    names = output_names(len(outputs))
    with warnings.catch_warnings():
        # the TorchScript exporter warns that it is legacy and traces size arithmetic
        warnings.simplefilter('ignore')
        try:
            if exporter == 'torchscript':
                with torch.no_grad():
                    torch.onnx.export(module, (example, ), path, dynamo=False,
                                      input_names=[INPUT_NAME], output_names=names,
                                      dynamic_axes=_dynamic_axes(outputs), opset_version=opset,
                                      do_constant_folding=True)
            else:
                _require('onnxscript', 'the dynamo ONNX exporter')
                dim = torch.export.Dim.DYNAMIC
                with torch.no_grad():
                    program = torch.onnx.export(
                        module, (example, ), dynamo=True, input_names=[INPUT_NAME],
                        output_names=names, opset_version=max(opset, 18), verbose=False,
                        dynamic_shapes=({0: dim, 2: dim, 3: dim}, ))
                program.save(path)
        except Exception as exc:
            what = type(getattr(module, 'backbone', module)).__name__
            raise ExportError(f'the {exporter} ONNX exporter failed on {what}: '
                              f'{_first_line(exc)}') from exc
    return path


def export_torchscript(module, example, path):
    """Write ``torch.jit.trace(module)`` to ``path`` (``torch.jit.save``). Returns ``path``."""
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # TracerWarnings of size arithmetic, recorded as ops
        try:
            with torch.no_grad():
                traced = torch.jit.trace(module, (example, ), check_trace=False)
        except Exception as exc:
            raise ExportError(f'torch.jit.trace failed: {_first_line(exc)}') from exc
    torch.jit.save(traced, path)
    return path


def export(module, example, path, fmt='onnx', exporter='torchscript', opset=DEFAULT_OPSET):
    """Export ``module`` in format ``fmt`` (``'onnx'`` or ``'torchscript'``) to ``path``."""
    if fmt not in FORMATS:
        raise ValueError(f'unknown format {fmt!r}; choose one of {FORMATS}')
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if fmt == 'onnx':
        return export_onnx(module, example, path, exporter, opset)
    return export_torchscript(module, example, path)


def _require(package, what):
    try:
        __import__(package)
    except ImportError:
        raise ExportError(f'{what} needs the {package!r} package: pip install -e ".[deploy]" '
                          f'(onnx, onnxruntime, onnxscript)') from None


class Runner:
    """Runs an exported file on CPU: ``runner(x)`` -> list of float32 numpy arrays.

    ``spinning=False`` stops onnxruntime's worker threads from busy-waiting after a run (its
    default keeps them spinning, which takes the CPU from whatever runs next: set it when
    timing other runtimes in the same process).
    """

    def __init__(self, path, fmt, threads=None, spinning=True):
        if fmt not in FORMATS:
            raise ValueError(f'unknown format {fmt!r}; choose one of {FORMATS}')
        if not osp.isfile(path):
            raise FileNotFoundError(f'exported file not found: {path}')
        self.fmt = fmt
        if fmt == 'onnx':
            _require('onnxruntime', 'running an ONNX file')
            import onnxruntime as ort
            options = ort.SessionOptions()
            if threads:
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
            if not spinning:
                options.add_session_config_entry('session.intra_op.allow_spinning', '0')
                options.add_session_config_entry('session.inter_op.allow_spinning', '0')
            self.session = ort.InferenceSession(path, options,
                                                providers=['CPUExecutionProvider'])
            self.input_name = self.session.get_inputs()[0].name
            self.graph_inputs = [i.name for i in self.session.get_inputs()]
        else:
            self.module = torch.jit.load(path, map_location='cpu').eval()

    def __call__(self, x):
        if self.fmt == 'onnx':
            array = x.numpy() if torch.is_tensor(x) else np.asarray(x, dtype=np.float32)
            return self.session.run(None, {self.input_name: array})
        with torch.no_grad():
            outs = self.module(torch.as_tensor(x))
        outs = outs if isinstance(outs, (tuple, list)) else (outs, )
        return [o.numpy() for o in outs]


def compare_outputs(module, runner, x):
    """``[(max |exported - PyTorch|, max |PyTorch|)]`` per output of ``module`` on ``x``.

    Raises:
        VerificationError: an output count or shape differs.
    """
    with torch.no_grad():
        expected = module.eval()(x)
    got = runner(x)
    size = tuple(x.shape)
    if len(got) != len(expected):
        raise VerificationError(f'input {size}: the exported file returns {len(got)} outputs, '
                                f'PyTorch {len(expected)}')
    found = []
    for i, (a, b) in enumerate(zip(got, expected)):
        if tuple(a.shape) != tuple(b.shape):
            raise VerificationError(f'input {size}: output {i} has shape {tuple(a.shape)} in the '
                                    f'exported file, {tuple(b.shape)} in PyTorch (a size frozen '
                                    f'at the export size?)')
        b = b.double().numpy()
        found.append((float(np.abs(a.astype(np.float64) - b).max()), float(np.abs(b).max())))
    return found


def verification_shapes(shape):
    """Two input sizes other than the export size ``(H, W)``: one smaller and one larger, with
    odd sides and H != W (parity and aspect ratio both change)."""
    h, w = shape
    first = (max(16, _odd(h * 3 // 4)), max(16, _odd(w * 5 // 8)))
    second = (_odd(h * 5 // 4), _odd(w * 9 // 8))
    return [first if first != tuple(shape) else (h + 1, w + 3), second]


def _odd(n):
    return n if n % 2 else n + 1


def verify(module, path, fmt, shapes, batch=2, tolerance=DEFAULT_TOLERANCE, threads=None,
           seed=1):
    """Run the exported file at each ``(H, W)`` of ``shapes`` (batch ``batch``) and compare
    every output with ``module``'s.

    An output passes when ``max |exported - PyTorch| <= tolerance * max(1, max |PyTorch|)``:
    the absolute ``tolerance`` for outputs of order 1 (trained networks' features, the tests'
    models), relative to the output's scale beyond (float32 rounding grows with it: a randomly
    initialised ResNet-50 has features of order 100). Also checks that the outputs change with
    the input (a graph that ignores its input is a constant).

    Returns:
        list[dict]: per shape, ``shape``, ``diffs`` (max |diff| per output) and ``scales``
        (max |PyTorch output|).

    Raises:
        VerificationError: a difference above the tolerance, an output shape or count that
            differs, or outputs that do not depend on the input.
    """
    runner = Runner(path, fmt, threads)
    if fmt == 'onnx' and INPUT_NAME not in runner.graph_inputs:
        raise VerificationError(f'{path}: the ONNX graph has no input {INPUT_NAME!r} (inputs: '
                                f'{runner.graph_inputs}); its outputs are constants')
    results = []
    for i, shape in enumerate(shapes):
        found = compare_outputs(module, runner, example_input(shape, batch, seed + i))
        results.append(dict(shape=tuple(shape), diffs=[d for d, _ in found],
                            scales=[s for _, s in found]))
    failed = [(r['shape'], d, s) for r in results for d, s in zip(r['diffs'], r['scales'])
              if not math.isfinite(d) or d > tolerance * max(1.0, s)]
    if failed:
        lines = '; '.join(f'{h}x{w}: {d:.3g} (outputs up to {s:.3g})'
                          for (h, w), d, s in failed)
        raise VerificationError(f'{path}: the exported {fmt} outputs differ from PyTorch\'s by '
                                f'more than {tolerance:g} x max(1, max |output|): {lines}')
    shape = tuple(shapes[0])
    a, b = (runner(example_input(shape, batch, seed + k)) for k in (100, 101))
    if all(np.array_equal(p, q) for p, q in zip(a, b)):
        raise VerificationError(f'{path}: the exported outputs do not change when the input '
                                f'changes (a constant graph)')
    return results


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_weights(model, path, parts=('backbone', )):
    """Load the checkpoint at ``path`` (weights-only, ``resvariants.utils.read_checkpoint``)
    into ``model`` for exporting ``parts``.

    Accepts a checkpoint of the whole model (mmengine / mmdet / mmpretrain: ``state_dict`` keys
    ``backbone.*``, ``neck.*``, ``head.*``, a ``module.`` prefix removed) or of the bare backbone
    (keys without ``backbone.``). Every weight of the exported parts must be in it with its
    shape; other keys (a detector's RPN and RoI heads) are ignored. An epsilon-ResNet's block
    decisions in ``meta`` are applied (discarded blocks are then exported as shortcuts).

    Returns:
        dict: ``loaded`` (count), ``ignored`` (checkpoint keys outside the parts).

    Raises:
        KeyError: weights of the exported parts missing from the checkpoint.
        ValueError: weights of another shape (a checkpoint of another config).
    """
    from resvariants.utils import read_checkpoint, state_dict_of
    checkpoint = read_checkpoint(path, 'checkpoint')
    state = state_dict_of(checkpoint, f'checkpoint {path}')
    own = model.state_dict()
    backbone = getattr(model, 'backbone', None)
    if backbone is not None and not any(k.startswith('backbone.') for k in state):
        bare = set(backbone.state_dict())
        if set(state) & bare:  # a backbone-only checkpoint
            state = {f'backbone.{k}': v for k, v in state.items()}
    wanted = [k for k in own if k.split('.', 1)[0] in parts or backbone is None]
    missing = [k for k in wanted if k not in state and not k.endswith('num_batches_tracked')]
    if missing:
        raise KeyError(f'checkpoint {path} lacks {len(missing)} of the {len(wanted)} weights of '
                       f'the exported {"+".join(parts)} (e.g. {", ".join(missing[:3])}): is it a '
                       f'checkpoint of this config?')
    wrong = [(k, tuple(state[k].shape), tuple(own[k].shape)) for k in wanted
             if k in state and state[k].shape != own[k].shape]
    if wrong:
        k, got, expected = wrong[0]
        raise ValueError(f'checkpoint {path}: {len(wrong)} weights have another shape than the '
                         f'config\'s model, e.g. {k}: {got} in the checkpoint, {expected} in the '
                         f'model: is it a checkpoint of this config?')
    model.load_state_dict({k: state[k] for k in wanted if k in state}, strict=False)
    record = (checkpoint.get('meta') or {}).get('epsilon_resnet') \
        if isinstance(checkpoint, dict) else None
    if record is not None:
        from resvariants.models.backbones.strict_identity import apply_discard_record
        apply_discard_record(model, record)
    return dict(loaded=sum(k in state for k in wanted),
                ignored=sum(1 for k in state if k not in set(wanted)))


def build_exportable(config, checkpoint=None, with_neck=False, with_head=False,
                     cfg_options=None, warn=True):
    """The :class:`ExportablePart` of a config's model (eval mode) and a line on its weights.

    ``checkpoint`` None or ``'none'``: the model's own initialisation (``init_weights``), with
    a warning (``warn``); otherwise :func:`load_weights`.
    """
    from resvariants.engine.config_loading import build_model, read_config
    model = build_model(read_config(config, cfg_options), without_checkpoint=True)
    part = ExportablePart(model, with_neck=with_neck, with_head=with_head)
    if checkpoint is None or str(checkpoint).lower() == 'none':
        if warn:
            warnings.warn('no checkpoint given: exporting random weights (the file only shows '
                          'that the model exports; give CHECKPOINT for a usable file)',
                          stacklevel=2)
        _quiet_init_weights(model)
        weights = 'random (no checkpoint)'
    else:
        counts = load_weights(model, checkpoint, part.parts)
        weights = (f'{checkpoint} ({counts["loaded"]} tensors loaded, {counts["ignored"]} '
                   f'outside the exported part ignored)')
    return part.eval(), weights


def _quiet_init_weights(model):
    """``model.init_weights()`` without mmengine's per-parameter report on stdout."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


def random_weights(module, shape=None, seed=0):
    """Random weights that exercise every branch (no zero-initialised gate or last norm hides a
    term; ``init_weights`` leaves several attention modules constant, e.g. SGE's gate weight
    0): weights N(0, 1/fan_in), 1-d parameters (norm scales and biases, SGE / SRM gate
    parameters) N(0, 0.5^2), as the tests' ``randomise``. BatchNorm statistics: running means
    N(0, 0.2^2) and variances U(0.5, 1.5); or, with ``shape`` (H, W), measured on one random
    batch of that size (needed under weight standardisation, which rescales every conv by its
    fan-in: the features overflow otherwise; measured statistics make a random ResNet-50 more
    sensitive to rounding, ~2e-5 of the output's scale against ~1e-6). Returns ``module`` in
    eval mode."""
    from torch.nn.modules.batchnorm import _BatchNorm
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            std = p[0].numel()**-0.5 if p.dim() > 1 else 0.5
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)
        for name, buf in module.named_buffers():
            if name.endswith('running_var'):
                buf.copy_(torch.rand(buf.shape, generator=g, dtype=buf.dtype) + 0.5)
            elif name.endswith('running_mean'):
                buf.copy_(torch.randn(buf.shape, generator=g, dtype=buf.dtype) * 0.2)
        module.eval()
        if shape is not None:
            norms = [m for m in module.modules() if isinstance(m, _BatchNorm)]
            momenta = [m.momentum for m in norms]
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # one batch: the running statistics are its statistics
                m.train()
            module(example_input(shape, 4, seed))
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
                m.eval()
    return module.eval()
