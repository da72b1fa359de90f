"""Speed of the ResNet variants: train step, inference latency, throughput, peak memory.

    python tools/analysis/benchmark.py                      # the 8 ResNet-50 variants, CPU
    python tools/analysis/benchmark.py --configs 'configs/imagenet/*resnet50_in1k.py'
    python tools/analysis/benchmark.py --device cuda --amp --train-batch 32 --size 224 \\
        --detector configs/faster_rcnn_r50_fpn.py configs/faster_rcnn_sge_r50_fpn.py
    python tools/analysis/benchmark.py --modules            # fast paths vs plain formulas

Model mode (default). For every classifier config (mmpretrain ``ImageClassifier``) it measures

* **train step**: forward + cross-entropy + backward + SGD (momentum 0.9, weight decay 1e-4)
  on a ``--train-batch x 3 x --size x --size`` random batch, train mode;
* **inference latency** at batch 1 and ``--infer-batch`` (eval mode, no autograd), and the
  images/s both give;
* **peak memory** of one train step: on CUDA ``torch.cuda.max_memory_allocated`` (reset
  before the step, minus what was allocated before it); on CPU the peak growth of the
  process's resident set (``psutil``, sampled every millisecond from a thread while the step
  runs, after ``gc`` + glibc ``malloc_trim`` so freed memory is not counted);
* **GFLOPs** at 224 x 224 in PytorchInsight's counting convention
  (``resvariants.analysis.count_complexity``, as ``tools/analysis/get_flops.py``).

Timing: ``--warmup`` untimed rounds, then ``--runs`` rounds; in every round each model takes
its turn (interleaved), so a change of load on the machine hits all of them alike. A time is
the median over the rounds (CUDA: CUDA events around the work; CPU: ``perf_counter``), with
``torch.set_num_threads(--threads)`` fixed. The **ratio** of a model's train step to the plain
ResNet-50 (the first config with no attention, or ``--baseline``) is the median of the
per-round ratios, and the **target** of the issue is ``ratio <= GFLOPs ratio + 0.10``.

Writes ``benchmark.md``, ``benchmark.csv`` and ``benchmark.png`` (train-step time and
batch inference time against GFLOPs, one point per backbone) to ``--out-dir``.

Module mode (``--modules``). Each registered attention module with a fast path is timed
against its own plain formula (the library's ``fused=False``, sharing the parameters; the
source-style re-implementations they equal are tests/test_models/test_attention_source_style.py).
On each ResNet-50 stage shape (``--train-batch`` x C x H x W of stages 1-4 at ``--size``) the
two are first checked equal (eval outputs), then timed forward + backward (train mode) and
forward (eval, no autograd), interleaved. ``network`` rows add the stages up with the number of
modules ResNet-50 has in each, from the module's declared placement (3/4/6/3 blocks; a
stage-level module such as BAM one per stage 1-3). Writes ``modules.md`` / ``modules.csv``.

``--detector CONFIG ...`` adds mmdet detectors (e.g. Faster R-CNN) at ``--det-size`` (800 x 1333
by default) and ``--det-batch`` images: train step (``mode='loss'``, all losses, SGD) and
batch inference (``mode='tensor'``), into ``detector.md`` / ``detector.csv``.
"""
import argparse
import copy
import csv
import gc
import glob
import os
import os.path as osp
import platform
import statistics
import sys
import threading
import time
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DEFAULT_CONFIGS = [
    f'configs/imagenet/{name}_in1k.py'
    for name in ('resnet50', 'se_resnet50', 'sk_resnet50', 'cbam_resnet50', 'bam_resnet50',
                 'gc_resnet50', 'sge_resnet50', 'srm_resnet50')
]
TARGET_MARGIN = 0.10  # eager: train-step ratio may exceed the GFLOPs ratio by at most this
COMPILED_TARGET_MARGIN = 0.05  # compiled: the same, with this margin (issue 18)
REFERENCE_TARGET = 0.9  # ours / the source-style reference, train and inference (issue 18)
COLUMNS = [
    'config', 'params_M', 'gflops', 'gflops_ratio', 'train_ms', 'train_img_s', 'train_ratio',
    'target', 'verdict', 'latency_b1_ms', 'latency_bN_ms', 'infer_img_s', 'peak_mem_MB'
]
#: extra columns of --reference (ours / reference in the same mode), --compile, --fold-bn
REFERENCE_COLUMNS = ['ref_train_ratio', 'ref_b1_ratio', 'ref_bN_ratio', 'ref_verdict']
COMPILE_COLUMNS = ['compile_s']
#: --reference --compile: ours compiled / the reference as its source runs it (eager)
COMPILED_VS_EAGER_REFERENCE_COLUMNS = ['vs_ref_eager_train', 'vs_ref_eager_b1',
                                       'vs_ref_eager_bN', 'vs_ref_eager_verdict']
FOLD_COLUMNS = ['folded_b1_ms', 'folded_bN_ms', 'fold_speedup_bN']
#: --channels-last-rows: contiguous time / channels_last time of the same model (eager)
CHANNELS_LAST_COLUMNS = ['cl_train_speedup', 'cl_b1_speedup', 'cl_bN_speedup']
MODULE_COLUMNS = [
    'module', 'stage', 'shape', 'equal', 'fused_train_ms', 'plain_train_ms', 'train_speedup',
    'fused_infer_ms', 'plain_infer_ms', 'infer_speedup'
]
#: --modules --compile: the plain formula compiled (a compiled fast-path module takes the plain
#: formula, ``_fused.fast_path``, so "fused compiled" is this same graph)
MODULE_COMPILE_COLUMNS = ['compiled_train_ms', 'compiled_train_speedup', 'compiled_infer_ms',
                          'compiled_infer_speedup', 'compile_s']
DETECTOR_COLUMNS = ['config', 'shape', 'train_ms', 'train_ratio', 'infer_ms', 'peak_mem_MB']


# --------------------------------------------------------------------------------------------
# The library's plain formulas (``fused=False``) beside its fast paths
# --------------------------------------------------------------------------------------------

def fused_attention_types():
    """``{short name: type name}`` of the registered attention modules with a fast path
    (a ``fused`` argument), the names the module mode and ``--plain-modules`` know."""
    import inspect
    from resvariants.models.attention import attention_aliases, attention_types
    short = {}
    for alias, type_name in attention_aliases().items():
        short.setdefault(type_name, alias)
    types = attention_types()
    for type_name in types:  # modules without an attention= alias (SK) by their lowered name
        short.setdefault(type_name, type_name.lower().removesuffix('fusion'))
    return {short[t]: t for t, cls in types.items()
            if 'fused' in inspect.signature(cls.__init__).parameters}


def use_plain_formulas(model):
    """Make every attention module of ``model`` run its plain formula (``fused=False``, the
    same parameters); returns how many were switched."""
    fused_types = set(fused_attention_types().values())
    count = 0
    for module in model.modules():
        if type(module).__name__ in fused_types and getattr(module, 'fused', False):
            module.fused = False
            count += 1
    return count


def randomised(module, seed=0):
    """Random parameters (weights ~ N(0, 1/fan_in), vectors ~ N(0, 0.5)) and BN statistics,
    so the equality check exercises every term (several modules start from all-zero weights
    that would hide differences)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            std = p[0].numel()**-0.5 if p.dim() > 1 else 0.5
            p.copy_(torch.randn(p.shape, generator=gen) * std)
        for name, buf in module.named_buffers():
            if name.endswith('running_var'):
                buf.copy_(torch.rand(buf.shape, generator=gen) + 0.5)
            elif name.endswith('running_mean'):
                buf.copy_(torch.randn(buf.shape, generator=gen) * 0.2)
    return module


def module_layout(type_name):
    """(modules per ResNet-50 stage, channels = factor x stage width, inputs) from where the
    module is placed: in every block after conv3 (4x the stage width), after stages 1-3, or
    fusing the two width-p 3x3 branches of every block (SK)."""
    from resvariants.models.attention import attention_placement
    placement = attention_placement(type_name)
    if placement == 'stage':
        return (1, 1, 1, 0), 4, 1
    if placement == 'branches':
        return (3, 4, 6, 3), 1, 2
    return (3, 4, 6, 3), 4, 1


def close(a, b, rtol=1e-4, atol=1e-5):
    """``max |a - b| <= atol + rtol * max |b|``: equal to float rounding, measured against the
    tensor's scale (a gradient through train-mode BN has cancelling terms, so an element-wise
    relative test would flag rounding in elements near zero)."""
    return a.shape == b.shape and bool(
        (a.double() - b.double()).abs().max() <= atol + rtol * b.double().abs().max())


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------

class Clock:
    """Seconds of ``fn()``: CUDA events on a GPU, ``perf_counter`` on the CPU."""

    def __init__(self, device):
        self.cuda = torch.device(device).type == 'cuda'

    def __call__(self, fn):
        if self.cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        begin = time.perf_counter()
        fn()
        return time.perf_counter() - begin


def interleaved(fns, clock, warmup, runs, progress=None):
    """``{name: [seconds per round]}``; every round runs each function once, in turn."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples = {name: [] for name in fns}
    for r in range(runs):
        for name, fn in fns.items():
            samples[name].append(clock(fn))
        if progress:
            progress(r + 1, runs)
    return samples


def median_ratio(samples, name, base):
    return statistics.median(a / b for a, b in zip(samples[name], samples[base]))


class PeakMemory:
    """Peak memory of the code inside the ``with`` block, in bytes (``.peak``).

    CUDA: ``max_memory_allocated`` growth. CPU: growth of the resident set (sampled every
    millisecond by a thread; freed heap memory is handed back first with ``malloc_trim``).
    """

    def __init__(self, device):
        self.cuda = torch.device(device).type == 'cuda'
        self.peak = 0

    def __enter__(self):
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._start = torch.cuda.memory_allocated()
            return self
        _malloc_trim()
        import psutil
        self._proc = psutil.Process()
        self._start = self._max = self._proc.memory_info().rss
        self._stop = threading.Event()

        def sample():
            while not self._stop.is_set():
                self._max = max(self._max, self._proc.memory_info().rss)
                time.sleep(0.001)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self._start
            return False
        self._stop.set()
        self._thread.join()
        self._max = max(self._max, self._proc.memory_info().rss)
        self.peak = self._max - self._start
        return False


def _malloc_trim():
    try:
        import ctypes
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

def quiet_mmengine():
    """Keep mmengine's per-parameter init log out of the progress output."""
    from mmengine.logging import MMLogger
    name = 'resvariants-benchmark'
    if MMLogger.check_instance_created(name):
        MMLogger.get_instance(name)  # makes it the current instance again
    else:
        MMLogger.get_instance(name, log_level='WARNING')


def load_get_flops():
    import importlib.util
    path = osp.join(REPO, 'tools', 'analysis', 'get_flops.py')
    spec = importlib.util.spec_from_file_location('resvariants_get_flops', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_model(config):
    """The config's model with its own initialisation (no pretrained checkpoint)."""
    import resvariants  # noqa: F401
    model = load_get_flops().build_model_from_config(config)
    torch.manual_seed(0)
    model.init_weights()
    return model


def resolve_configs(patterns):
    paths = []
    for pattern in patterns:
        full = pattern if osp.isabs(pattern) else osp.join(REPO, pattern)
        found = sorted(glob.glob(full)) if any(ch in pattern for ch in '*?[') else [full]
        if not found:
            raise FileNotFoundError(f'no config matches {pattern!r}')
        for path in found:
            if not osp.isfile(path):
                raise FileNotFoundError(f'config file not found: {pattern}')
            if path not in paths:
                paths.append(path)
    return paths


def config_name(path):
    return osp.splitext(osp.basename(path))[0]


def has_attention(model):
    backbone = getattr(model, 'backbone', model)
    return bool(getattr(backbone, 'attention_cfg', None) or getattr(backbone, 'sk', None))


def amp_dtype(device, amp):
    """The autocast dtype of ``--amp`` (``auto``: float16 on CUDA, bfloat16 on the CPU)."""
    if amp in ('float16', 'bfloat16'):
        return getattr(torch, amp)
    return torch.float16 if torch.device(device).type == 'cuda' else torch.bfloat16


def autocast(device, amp):
    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=amp_dtype(device, amp), enabled=bool(amp))


def grad_scaler(device, amp):
    """A GradScaler for float16 autocast on CUDA, else None."""
    if amp and torch.device(device).type == 'cuda' and amp_dtype(device, amp) == torch.float16:
        return torch.amp.GradScaler('cuda')
    return None


def _backward_and_step(loss, optimizer, scaler):
    """Zero the gradients, backward (through the AMP grad scaler when there is one), step."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()


class ClassifierBench:
    """Train step and inference of an mmpretrain classifier on random data."""

    def __init__(self, model, device, train_batch, size, infer_batch, amp=False,
                 channels_last=False, seed=0, compile_backend=None, fold_bn=False):
        self.model = model.to(device)
        self.device, self.amp = device, amp
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.model.to(memory_format=fmt)
        gen = torch.Generator().manual_seed(seed)
        num_classes = getattr(model.head, 'num_classes', 1000)
        self.train_x = torch.randn(train_batch, 3, size, size, generator=gen).to(
            device, memory_format=fmt)
        self.train_y = torch.randint(0, num_classes, (train_batch, ), generator=gen).to(device)
        self.infer_x = {
            b: torch.randn(b, 3, size, size, generator=gen).to(device, memory_format=fmt)
            for b in sorted({1, infer_batch})
        }
        self.optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9,
                                         weight_decay=1e-4)
        self.scaler = grad_scaler(device, amp)
        self.logits = self._eager_logits
        self.compile_s = None
        if compile_backend:
            # the whole network as one graph per mode and shape (train / eval, each batch);
            # every bench's graphs hang on the one code object of ``_eager_logits``
            import torch._dynamo as dynamo
            dynamo.config.recompile_limit = max(dynamo.config.recompile_limit,
                                                       512)
            dynamo.config.accumulated_recompile_limit = max(
                dynamo.config.accumulated_recompile_limit, 4096)
            self.logits = torch.compile(self._eager_logits, backend=compile_backend,
                                        fullgraph=True, dynamic=False)
            begin = time.perf_counter()
            self.train_step()
            for batch in self.infer_x:
                self.infer(batch)
            if torch.device(device).type == 'cuda':
                torch.cuda.synchronize()
            self.compile_s = time.perf_counter() - begin
        self.folded = None
        if fold_bn:
            self.folded = fold_conv_bn(self.model, self.infer_x[1])

    def _eager_logits(self, x, model=None):
        model = self.model if model is None else model
        return model.head(model.extract_feat(x))

    def train_step(self):
        self.model.train()
        with autocast(self.device, self.amp):
            loss = F.cross_entropy(self.logits(self.train_x).float(), self.train_y)
        _backward_and_step(loss, self.optimizer, self.scaler)

    def infer(self, batch):
        self.model.eval()
        with torch.no_grad(), autocast(self.device, self.amp):
            self.logits(self.infer_x[batch])

    def infer_folded(self, batch):
        with torch.no_grad(), autocast(self.device, self.amp):
            self._eager_logits(self.infer_x[batch], self.folded)


def fold_conv_bn(model, x):
    """An eval copy of ``model`` with every BatchNorm that follows a convolution folded into
    it (mmcv's ``fuse_conv_bn``), checked to give the model's eval logits first."""
    from mmcv.cnn import fuse_conv_bn
    model.eval()
    folded = fuse_conv_bn(copy.deepcopy(model)).eval()
    with torch.no_grad():
        expected = model.head(model.extract_feat(x))
        got = folded.head(folded.extract_feat(x))
    if not close(got, expected, rtol=1e-3, atol=1e-4):
        raise AssertionError('conv-BN folding changed the eval logits (max |diff| '
                             f'{(got - expected).abs().max().item():.3g}; NaN: the input is '
                             'too small for a module, e.g. a std over a 1 x 1 map)')
    return folded


class DetectorBench:
    """Train step (all losses) and inference of an mmdet detector on synthetic images."""

    def __init__(self, model, device, batch, shape, amp=False, seed=0):
        from mmdet.testing import demo_mm_inputs
        self.model = model.to(device)
        self.device, self.amp = device, amp
        torch.manual_seed(seed)
        packed = demo_mm_inputs(batch_size=batch, image_shapes=(3, *shape), num_items=[5] * batch,
                                num_classes=80)
        self.train_data = self.model.data_preprocessor(packed, True)
        self.infer_data = self.model.data_preprocessor(packed, False)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9,
                                         weight_decay=1e-4)
        self.scaler = grad_scaler(device, amp)

    def train_step(self):
        self.model.train()
        with autocast(self.device, self.amp):
            losses = self.model(**self.train_data, mode='loss')
        loss, _ = self.model.parse_losses(losses)
        _backward_and_step(loss, self.optimizer, self.scaler)

    def infer(self):
        self.model.eval()
        with torch.no_grad(), autocast(self.device, self.amp):
            self.model(**self.infer_data, mode='tensor')


def _log(msg):
    print(msg, flush=True)


def _round_progress(what):
    start = time.perf_counter()

    def report(done, total):
        print(f'  {what}: round {done}/{total} ({time.perf_counter() - start:.0f} s)',
              flush=True)
    return report


def model_variants(args):
    """``[(suffix, implementation, compiled)]``: the rows each config gets. ``ours`` is the
    library's model; ``reference`` (``--reference``) the same weights with every attention
    module computing its source-style formula; ``plain formulas`` (``--plain-modules``) ours
    with the fast paths off; ``compiled`` (``--compile``) adds each of them compiled;
    ``channels_last`` (``--channels-last-rows``) ours, eager, in channels_last."""
    impls = ['ours'] + (['reference'] if args.reference else []) + (
        ['plain formulas'] if args.plain_modules else [])
    modes = [False] + ([True] if args.compile else [])
    out = []
    for compiled in modes:
        for impl in impls:
            tags = ([] if impl == 'ours' else [impl]) + (['compiled'] if compiled else [])
            out.append((f' [{", ".join(tags)}]' if tags else '', impl, compiled))
    if args.channels_last_rows:
        out.append((' [channels_last]', 'channels_last', False))
    return out


def benchmark_models(args, device):
    from resvariants.analysis import count_complexity
    from resvariants.analysis.source_style import use_source_style
    configs = resolve_configs(args.configs)
    benches, rows = {}, {}
    variants = model_variants(args)
    for i, path in enumerate(configs):
        name = config_name(path)
        _log(f'[{i + 1}/{len(configs)}] {name}: build, count GFLOPs')
        model = build_model(path)
        complexity = count_complexity(model, (224, 224))
        attention = has_attention(model)
        for suffix, impl, compiled in variants:
            if impl not in ('ours', 'channels_last') and not attention:
                continue  # the plain ResNet has no modules to swap: its own row serves
            copy_ = copy.deepcopy(model)
            if impl == 'reference' and not use_source_style(copy_):
                continue
            if impl == 'plain formulas' and not use_plain_formulas(copy_):
                continue
            row_name = name + suffix
            if compiled:
                _log(f'  {row_name}: compiling ({args.compile_backend})')
            benches[row_name] = ClassifierBench(
                copy_, device, args.train_batch, args.size, args.infer_batch, amp=args.amp,
                channels_last=args.channels_last or impl == 'channels_last',
                compile_backend=args.compile_backend if compiled else None,
                fold_bn=args.fold_bn and not compiled)
            rows[row_name] = dict(config=row_name, model=name, impl=impl, compiled=compiled,
                                  params_M=complexity.params / 1e6, gflops=complexity.gflops,
                                  attention=attention)
            if compiled:
                rows[row_name]['compile_s'] = benches[row_name].compile_s
    names = list(benches)
    base = args.baseline or next((n for n in names if not rows[n]['attention']), names[0])
    if base not in benches:
        raise KeyError(f'--baseline {base!r} is not among the configs: {names}')
    clock = Clock(device)
    _log(f'train step, batch {args.train_batch} x {args.size}x{args.size}, '
         f'{len(names)} models interleaved')
    train = interleaved({n: b.train_step for n, b in benches.items()}, clock, args.warmup,
                        args.runs, _round_progress('train'))
    latency, folded = {}, {}
    for batch in sorted({1, args.infer_batch}):
        _log(f'inference, batch {batch} x {args.size}x{args.size}')
        fns = {n: (lambda b=b, k=batch: b.infer(k)) for n, b in benches.items()}
        fns.update({n + ' [folded]': (lambda b=b, k=batch: b.infer_folded(k))
                    for n, b in benches.items() if b.folded is not None})
        samples = interleaved(fns, clock, args.warmup, args.runs,
                              _round_progress(f'batch {batch}'))
        latency[batch] = {n: samples[n] for n in benches}
        folded[batch] = {n: samples[n + ' [folded]'] for n, b in benches.items()
                         if b.folded is not None}
    _log('peak memory of one train step')
    for name, bench in benches.items():
        with PeakMemory(device) as mem:
            bench.train_step()
        rows[name]['peak_mem_MB'] = mem.peak / 2**20
    for name in names:
        row = rows[name]
        # the ratio to the baseline config in the same mode (compiled to compiled)
        row_base = base + (' [compiled]' if row['compiled'] and base + ' [compiled]' in rows
                           else '')
        train_s = statistics.median(train[name])
        row['train_ms'] = train_s * 1e3
        row['train_img_s'] = args.train_batch / train_s
        row['train_ratio'] = median_ratio(train, name, row_base)
        row['gflops_ratio'] = row['gflops'] / rows[base]['gflops']
        margin = COMPILED_TARGET_MARGIN if row['compiled'] else TARGET_MARGIN
        row['target'] = row['gflops_ratio'] + margin
        if name == row_base:
            row['verdict'] = 'baseline'
        else:
            row['verdict'] = 'holds' if row['train_ratio'] <= row['target'] else 'FAILS'
        row['latency_b1_ms'] = statistics.median(latency[1][name]) * 1e3
        bn = statistics.median(latency[args.infer_batch][name])
        row['latency_bN_ms'] = bn * 1e3
        row['infer_img_s'] = args.infer_batch / bn
        if name in folded[1]:
            row['folded_b1_ms'] = statistics.median(folded[1][name]) * 1e3
            row['folded_bN_ms'] = statistics.median(folded[args.infer_batch][name]) * 1e3
            row['fold_speedup_bN'] = row['latency_bN_ms'] / row['folded_bN_ms']
        ref = row['model'] + (' [reference, compiled]' if row['compiled'] else ' [reference]')
        if row['impl'] == 'ours' and ref in rows:
            row['ref_train_ratio'] = median_ratio(train, name, ref)
            row['ref_b1_ratio'] = median_ratio(latency[1], name, ref)
            row['ref_bN_ratio'] = median_ratio(latency[args.infer_batch], name, ref)
            worst = max(row['ref_train_ratio'], row['ref_b1_ratio'], row['ref_bN_ratio'])
            row['ref_verdict'] = 'holds' if worst <= REFERENCE_TARGET else 'FAILS'
        cl = row['model'] + ' [channels_last]'
        if row['impl'] == 'ours' and not row['compiled'] and cl in rows:
            row['cl_train_speedup'] = median_ratio(train, name, cl)
            row['cl_b1_speedup'] = median_ratio(latency[1], name, cl)
            row['cl_bN_speedup'] = median_ratio(latency[args.infer_batch], name, cl)
        eager_ref = row['model'] + ' [reference]'
        if row['impl'] == 'ours' and row['compiled'] and eager_ref in rows:
            # what a user of the library gets (compiled) against the source code as it runs
            row['vs_ref_eager_train'] = median_ratio(train, name, eager_ref)
            row['vs_ref_eager_b1'] = median_ratio(latency[1], name, eager_ref)
            row['vs_ref_eager_bN'] = median_ratio(latency[args.infer_batch], name, eager_ref)
            worst = max(row['vs_ref_eager_train'], row['vs_ref_eager_b1'],
                        row['vs_ref_eager_bN'])
            row['vs_ref_eager_verdict'] = 'holds' if worst <= REFERENCE_TARGET else 'FAILS'
    return [rows[n] for n in names], base


def model_columns(args):
    return (COLUMNS + (REFERENCE_COLUMNS if args.reference else []) +
            (COMPILE_COLUMNS if args.compile else []) +
            (COMPILED_VS_EAGER_REFERENCE_COLUMNS if args.reference and args.compile else []) +
            (FOLD_COLUMNS if args.fold_bn else []) +
            (CHANNELS_LAST_COLUMNS if args.channels_last_rows else []))


def benchmark_detectors(args, device):
    configs = resolve_configs(args.detector)
    benches, rows = {}, {}
    shape = tuple(args.det_size)
    for i, path in enumerate(configs):
        name = config_name(path)
        _log(f'[detector {i + 1}/{len(configs)}] {name}: build')
        benches[name] = DetectorBench(build_model(path), device, args.det_batch, shape,
                                      amp=args.amp)
        rows[name] = dict(config=name, shape=f'{args.det_batch}x3x{shape[0]}x{shape[1]}')
    clock = Clock(device)
    names = list(benches)
    train = interleaved({n: b.train_step for n, b in benches.items()}, clock, args.warmup,
                        args.runs, _round_progress('detector train'))
    infer = interleaved({n: b.infer for n, b in benches.items()}, clock, args.warmup,
                        args.runs, _round_progress('detector inference'))
    for name, bench in benches.items():
        with PeakMemory(device) as mem:
            bench.train_step()
        rows[name].update(train_ms=statistics.median(train[name]) * 1e3,
                          train_ratio=median_ratio(train, name, names[0]),
                          infer_ms=statistics.median(infer[name]) * 1e3,
                          peak_mem_MB=mem.peak / 2**20)
    return [rows[n] for n in names]


# --------------------------------------------------------------------------------------------
# Fast paths vs plain formulas, module by module
# --------------------------------------------------------------------------------------------

def module_choices(compile_too):
    """``{short name: type name}`` of --modules: the modules with a fast path, or with
    ``--compile`` every registered attention module (the compiled plain formula is timed)."""
    if not compile_too:
        return fused_attention_types()
    from resvariants.models.attention import attention_aliases, attention_types
    short = {t: a for a, t in reversed(list(attention_aliases().items()))}
    return {short.get(t, t.lower().removesuffix('fusion')): t for t in attention_types()}


def benchmark_modules(args, device):
    from resvariants.models.attention import attention_types
    known = module_choices(args.compile)
    names = args.module_names or list(known)
    clock = Clock(device)
    rows = []
    keys = ('fused_train_ms', 'plain_train_ms', 'fused_infer_ms', 'plain_infer_ms') + (
        ('compiled_train_ms', 'compiled_infer_ms', 'compile_s') if args.compile else ())
    for name in names:
        type_name = known[name]
        per_stage, factor, num_inputs = module_layout(type_name)
        totals = dict.fromkeys(keys, 0.0)
        for stage, count in enumerate(per_stage):
            if not count:
                continue
            channels = 64 * 2**stage * factor
            size = max(2, args.size // 2**(stage + 2))
            kwargs = dict(groups=64) if type_name == 'SGE' else {}
            plain = randomised(attention_types()[type_name](channels, **kwargs)).to(device)
            has_fast_path = hasattr(plain, 'fused')
            modules = dict(plain=plain)
            if has_fast_path:
                modules['fused'] = plain
                modules['plain'] = copy.deepcopy(plain)
                modules['plain'].fused = False
            gen = torch.Generator().manual_seed(stage)
            shape = (args.train_batch, channels, size, size)
            xs = [torch.randn(shape, generator=gen).to(device).requires_grad_()
                  for _ in range(num_inputs)]
            x = xs if num_inputs > 1 else xs[0]
            grad = torch.randn(shape, device=device)

            def step(module):
                module.train()
                with autocast(device, args.amp):
                    out = module(x)
                out.backward(grad.to(out.dtype))

            def infer(module):
                module.eval()
                with torch.no_grad(), autocast(device, args.amp):
                    return module(x)

            compile_s = None
            if args.compile:
                modules['compiled'] = copy.deepcopy(modules['plain'])
                modules['compiled'].compile(backend=args.compile_backend, fullgraph=True,
                                            dynamic=False)
                begin = time.perf_counter()
                step(modules['compiled'])
                infer(modules['compiled'])
                compile_s = time.perf_counter() - begin
                for module in {id(m): m for k, m in modules.items() if k != 'compiled'}.values():
                    step(module)  # the same BN update, so all compare in the same state
            with torch.no_grad():
                expected = infer(modules['plain'])
                for variant, module in modules.items():
                    if not close(infer(module), expected):
                        raise AssertionError(f'{name} stage {stage + 1}: the {variant} module '
                                             f'differs from the plain formula')
            _log(f'{name} stage {stage + 1}: {shape}')
            train = interleaved({k: (lambda m=m: step(m)) for k, m in modules.items()},
                                clock, max(args.warmup, 1), args.module_runs)
            test = interleaved({k: (lambda m=m: infer(m)) for k, m in modules.items()},
                               clock, max(args.warmup, 1), args.module_runs)
            row = dict(module=name, stage=str(stage + 1), shape='x'.join(map(str, shape)),
                       equal=True)
            for variant in modules:
                row[f'{variant}_train_ms'] = statistics.median(train[variant]) * 1e3
                row[f'{variant}_infer_ms'] = statistics.median(test[variant]) * 1e3
            if not has_fast_path:  # no fast path: the plain formula is what runs eagerly
                row['fused_train_ms'], row['fused_infer_ms'] = (row['plain_train_ms'],
                                                                row['plain_infer_ms'])
            if compile_s is not None:
                row['compile_s'] = compile_s
            rows.append(_speedups(row))
            for key in totals:
                totals[key] += count * row[key] if key != 'compile_s' else row[key]
        rows.append(_speedups(dict(module=name, stage='network',
                                   shape=f'x{sum(per_stage)} modules', equal=True, **totals)))
    return rows


def _speedups(row):
    row['train_speedup'] = row['plain_train_ms'] / row['fused_train_ms']
    row['infer_speedup'] = row['plain_infer_ms'] / row['fused_infer_ms']
    if 'compiled_train_ms' in row:
        row['compiled_train_speedup'] = row['plain_train_ms'] / row['compiled_train_ms']
        row['compiled_infer_speedup'] = row['plain_infer_ms'] / row['compiled_infer_ms']
    return row


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------

def _fmt(value):
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, float):
        return f'{value:.3f}' if abs(value) < 10 else f'{value:.1f}'
    return str(value)


def write_csv(path, rows, columns):
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction='ignore')
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f'{row[k]:.6g}' if isinstance(row.get(k), float) else
                                 row.get(k, '')) for k in columns})


def markdown_table(rows, columns):
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    lines += ['| ' + ' | '.join(_fmt(row.get(k, '')) for k in columns) + ' |' for row in rows]
    return '\n'.join(lines)


def machine_description(device, threads):
    if torch.device(device).type == 'cuda':
        where = torch.cuda.get_device_name(device)
    else:
        where = cpu_model()
    return (f'{where}; {threads} torch thread(s); torch {torch.__version__}; '
            f'{platform.system()} {platform.machine()}; python {platform.python_version()}')


def cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip() + f' ({os.cpu_count()} cores)'
    except OSError:
        pass
    return platform.processor() or platform.machine()


def plot(rows, path, title):
    """Train-step time and batch-inference time against GFLOPs, and the train-step ratio
    against the GFLOPs ratio with the target line (ratio = GFLOPs ratio + 0.10)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    panels = (('gflops', 'train_ms', 'GFLOPs (224x224, PytorchInsight convention)',
               'train step (ms)'),
              ('gflops', 'latency_bN_ms', 'GFLOPs (224x224, PytorchInsight convention)',
               'batch inference (ms)'),
              ('gflops_ratio', 'train_ratio', 'GFLOPs / plain ResNet-50',
               'train step / plain ResNet-50'))
    for ax, (xkey, ykey, xlabel, ylabel) in zip(axes, panels):
        for i, row in enumerate(rows):
            ax.scatter(row[xkey], row[ykey], s=28, color=f'C{i % 10}')
            ax.annotate(row['config'].replace('_in1k', ''), (row[xkey], row[ykey]),
                        textcoords='offset points', xytext=(4, 3 + 7 * (i % 2)), fontsize=7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    lo = min(r['gflops_ratio'] for r in rows)
    hi = max(r['gflops_ratio'] for r in rows)
    xs = [lo - 0.005, hi + 0.005]
    axes[2].plot(xs, [x + TARGET_MARGIN for x in xs], '--', color='gray',
                 label=f'target: GFLOPs ratio + {TARGET_MARGIN:.2f}')
    axes[2].plot(xs, xs, ':', color='gray', label='time ratio = GFLOPs ratio')
    axes[2].legend(fontsize=7, loc='upper right')
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_model_outputs(rows, base, args, out_dir, machine):
    os.makedirs(out_dir, exist_ok=True)
    columns = model_columns(args)
    write_csv(osp.join(out_dir, 'benchmark.csv'), rows, columns)
    setting = (f'train batch {args.train_batch}, inference batch 1 and {args.infer_batch}, '
               f'{args.size}x{args.size}, median of {args.runs} interleaved rounds after '
               f'{args.warmup} warm-up' + (f', AMP ({args.amp})' if args.amp else '') +
               (', channels_last' if args.channels_last else '') +
               (f', compiled rows: torch.compile(backend={args.compile_backend!r}, '
                'fullgraph=True)' if args.compile else ''))
    with open(osp.join(out_dir, 'benchmark.md'), 'w') as f:
        f.write(f'Machine: {machine}\n\nSetting: {setting}; baseline {base}; '
                f'latency_bN = batch {args.infer_batch}.\n\n')
        f.write(markdown_table(rows, columns) + '\n')
    plot(rows, osp.join(out_dir, 'benchmark.png'), f'{machine}\n{setting}')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train-step time, latency, throughput and memory of the ResNet variants')
    parser.add_argument('--configs', nargs='+', default=DEFAULT_CONFIGS,
                        help='classifier config paths or globs (default: the 8 ResNet-50s)')
    parser.add_argument('--baseline', default=None,
                        help='config name the ratios refer to (default: first without '
                             'attention)')
    parser.add_argument('--device', default=None, help='cpu or cuda (default: cuda if present)')
    parser.add_argument('--size', type=int, default=224, help='square input size')
    parser.add_argument('--train-batch', type=int, default=8, help='train-step batch')
    parser.add_argument('--infer-batch', type=int, default=32,
                        help='the large inference batch (batch 1 is always timed)')
    parser.add_argument('--runs', type=int, default=5, help='timed rounds (median)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed rounds first')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads, fixed (default: the number of CPU cores)')
    parser.add_argument('--amp', nargs='?', const='auto', default=None,
                        choices=['auto', 'float16', 'bfloat16'],
                        help='autocast; alone: float16 (+ GradScaler) on CUDA, bfloat16 on the '
                             'CPU; or the dtype')
    parser.add_argument('--channels-last', action='store_true',
                        help='models and inputs in channels_last memory format')
    parser.add_argument('--channels-last-rows', action='store_true',
                        help='add an eager channels_last row per config and the speed-ups '
                             'contiguous / channels_last (same weights, same rounds)')
    parser.add_argument('--out-dir', default=osp.join(REPO, 'work_dirs', 'benchmark'),
                        help='where the .md/.csv/.png go (docs/benchmarks for the docs)')
    parser.add_argument('--modules', action='store_true',
                        help='time each attention module\'s fast path against its plain '
                             'formula (fused=False) instead of whole models')
    parser.add_argument('--module-names', nargs='+', default=None,
                        help='attention modules of --modules (default: every one with a fast '
                             'path)')
    parser.add_argument('--module-runs', type=int, default=15,
                        help='timed rounds per module and stage')
    parser.add_argument('--detector', nargs='+', default=None, metavar='CONFIG',
                        help='also time these mmdet detector configs (e.g. Faster R-CNN)')
    parser.add_argument('--det-size', type=int, nargs=2, default=[800, 1333], metavar=('H', 'W'))
    parser.add_argument('--det-batch', type=int, default=2)
    parser.add_argument('--plain-modules', action='store_true',
                        help='add a row per attention config whose modules run their plain '
                             'formulas (fused=False), for comparison')
    parser.add_argument('--reference', action='store_true',
                        help='add a row per attention config whose modules compute their '
                             'source-style formulas (resvariants.analysis.source_style), and '
                             'the ratios ours / reference')
    parser.add_argument('--compile', action='store_true',
                        help='add every row compiled (torch.compile, fullgraph, static '
                             'shapes) with its compile time; ratios compare within a mode')
    parser.add_argument('--compile-backend', default='inductor',
                        help='torch.compile backend of --compile and --modules')
    parser.add_argument('--fold-bn', action='store_true',
                        help='also time eager inference with conv-BN folded (mmcv '
                             'fuse_conv_bn), checked equal first')
    parser.add_argument('--no-models', action='store_true',
                        help='skip the classifier table (e.g. detectors only)')
    args = parser.parse_args(argv)
    for key in ('size', 'train_batch', 'infer_batch', 'runs', 'module_runs', 'det_batch'):
        if getattr(args, key) < 1:
            parser.error(f'--{key.replace("_", "-")} must be >= 1')
    if args.warmup < 0:
        parser.error('--warmup must be >= 0')
    choices = module_choices(args.compile)
    unknown = sorted(set(args.module_names or ()) - set(choices))
    if unknown:
        what = 'attention modules' if args.compile else 'attention modules with a fast path'
        parser.error(f'--module-names: unknown {unknown}; {what}: {", ".join(choices)}')
    return args


def prepare_device(device=None, threads=None):
    """``(device, machine description)`` of a timing run: ``device`` or CUDA if present, a
    fixed number of torch CPU threads (default: the cores), cuDNN autotuning on a GPU."""
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if torch.device(device).type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('--device cuda asked for, but torch sees no GPU')
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    if torch.device(device).type == 'cuda':
        torch.backends.cudnn.benchmark = True
    quiet_mmengine()
    machine = machine_description(device, threads)
    _log(f'device: {device} ({machine})')
    return device, machine


def main(argv=None):
    args = parse_args(argv)
    device, machine = prepare_device(args.device, args.threads)
    result = {}
    os.makedirs(args.out_dir, exist_ok=True)
    if args.modules:
        rows = benchmark_modules(args, device)
        columns = MODULE_COLUMNS + (MODULE_COMPILE_COLUMNS if args.compile else [])
        write_csv(osp.join(args.out_dir, 'modules.csv'), rows, columns)
        with open(osp.join(args.out_dir, 'modules.md'), 'w') as f:
            f.write(f'Machine: {machine}\n\nEach stage: batch {args.train_batch}, median of '
                    f'{args.module_runs} interleaved rounds; train = forward + backward'
                    + (f'; compiled = the plain formula under torch.compile(backend='
                       f'{args.compile_backend!r}, fullgraph=True); compile_s = its first '
                       'train + eval call (network: summed over the stages)'
                       if args.compile else '') + '.\n\n')
            f.write(markdown_table(rows, columns) + '\n')
        print(markdown_table(rows, columns))
        result['modules'] = rows
        return result
    if not args.no_models:
        rows, base = benchmark_models(args, device)
        write_model_outputs(rows, base, args, args.out_dir, machine)
        print(markdown_table(rows, model_columns(args)))
        result['models'] = rows
    if args.detector:
        rows = benchmark_detectors(args, device)
        write_csv(osp.join(args.out_dir, 'detector.csv'), rows, DETECTOR_COLUMNS)
        with open(osp.join(args.out_dir, 'detector.md'), 'w') as f:
            f.write(f'Machine: {machine}\n\nDetectors: batch {args.det_batch}, '
                    f'{args.det_size[0]}x{args.det_size[1]}, median of {args.runs} rounds'
                    + (', AMP' if args.amp else '') + '.\n\n')
            f.write(markdown_table(rows, DETECTOR_COLUMNS) + '\n')
        print(markdown_table(rows, DETECTOR_COLUMNS))
        result['detectors'] = rows
    _log(f'written to {args.out_dir}')
    return result


if __name__ == '__main__':
    main()
