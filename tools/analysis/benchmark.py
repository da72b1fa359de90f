"""Speed of the ResNet variants: train step, inference latency, throughput, peak memory.

    python tools/analysis/benchmark.py                      # the 8 ResNet-50 variants, CPU
    python tools/analysis/benchmark.py --configs 'configs/imagenet/*resnet50_in1k.py'
    python tools/analysis/benchmark.py --device cuda --amp --train-batch 32 --size 224 \\
        --detector configs/faster_rcnn_r50_fpn.py configs/faster_rcnn_sge_r50_fpn.py
    python tools/analysis/benchmark.py --modules            # each attention module vs the source

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

Module mode (``--modules``). Each attention module is timed against a reference
implementation of the same maths written the way the source (PytorchInsight / the official
SRM / GCNet code) writes it, sharing the module's parameters: ``REFERENCES`` below. On
each ResNet-50 stage shape (``--train-batch`` x C x H x W of stages 1-4 at ``--size``) the two
are first checked equal (outputs and all gradients, ``allclose``), then timed forward +
backward (train mode) and forward (eval, no autograd), interleaved. ``network`` rows add the
stages up with the number of modules ResNet-50 has in each (3/4/6/3 blocks; BAM one per
stage 1-3). Writes ``modules.md`` / ``modules.csv``.

``--detector CONFIG ...`` adds mmdet detectors (e.g. Faster R-CNN) at ``--det-size`` (800 x 1333
by default) and ``--det-batch`` images: train step (``mode='loss'``, all losses, SGD) and
batch inference (``mode='tensor'``), into ``detector.md`` / ``detector.csv``.
"""
import argparse
import copy
import csv
import gc
import glob
import math
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
TARGET_MARGIN = 0.10  # train-step ratio may exceed the GFLOPs ratio by at most this
COLUMNS = [
    'config', 'params_M', 'gflops', 'gflops_ratio', 'train_ms', 'train_img_s', 'train_ratio',
    'target', 'verdict', 'latency_b1_ms', 'latency_bN_ms', 'infer_img_s', 'peak_mem_MB'
]
MODULE_COLUMNS = [
    'module', 'stage', 'shape', 'equal', 'ours_train_ms', 'ref_train_ms', 'train_speedup',
    'ours_infer_ms', 'ref_infer_ms', 'infer_speedup'
]
DETECTOR_COLUMNS = ['config', 'shape', 'train_ms', 'train_ratio', 'infer_ms', 'peak_mem_MB']


# --------------------------------------------------------------------------------------------
# Reference implementations: the source's way of writing each module (PytorchInsight
# ``resnet_*.py``, Jongchan's CBAM/BAM, the official SRM code, GCNet's ContextBlock2d), on
# the parameters of our module, so both compute the same function of the same weights.
# --------------------------------------------------------------------------------------------

def reference_se(m, x):
    """SE as PytorchInsight: AdaptiveAvgPool -> Linear -> ReLU -> Linear -> Sigmoid ->
    ``x * y.expand_as(x)`` (our 1x1 convs hold the Linear weights)."""
    b, c, _, _ = x.size()
    y = F.adaptive_avg_pool2d(x, 1).view(b, c)
    y = F.relu(F.linear(y, m.conv1.conv.weight.flatten(1), m.conv1.conv.bias))
    y = torch.sigmoid(F.linear(y, m.conv2.conv.weight.flatten(1), m.conv2.conv.bias))
    return x * y.view(b, c, 1, 1).expand_as(x)


def reference_cbam(m, x):
    """CBAM as Jongchan's code: avg_pool2d / max_pool2d with the whole map as kernel, a shared
    MLP per pool, summed; then ChannelPool = cat(max over C, mean over C) -> conv -> BN."""
    h, w = x.shape[2:]
    att = None
    for pool in (F.avg_pool2d, F.max_pool2d):
        pooled = pool(x, (h, w), stride=(h, w))
        raw = m.channel_fc2(F.relu(m.channel_fc1(pooled.view(pooled.size(0), -1))))
        att = raw if att is None else att + raw
    x = x * torch.sigmoid(att).unsqueeze(2).unsqueeze(3).expand_as(x)
    compressed = torch.cat((torch.max(x, 1)[0].unsqueeze(1), torch.mean(x, 1).unsqueeze(1)),
                           dim=1)
    return x * torch.sigmoid(m.spatial_bn(m.spatial_conv(compressed)))


def reference_bam(m, x):
    """BAM as Jongchan's code: both gates ``expand_as(x)``, ``att = 1 + sigmoid(c * s)``,
    ``att * x`` (BAM's ChannelGate pools with a kernel of the map size)."""
    h, w = x.shape[2:]
    y = F.avg_pool2d(x, (h, w), stride=(h, w))
    y = F.relu(m.channel_bn(m.channel_fc1(y.view(y.size(0), -1))))
    channel = m.channel_fc2(y).unsqueeze(2).unsqueeze(3).expand_as(x)
    s = F.relu(m.spatial_reduce_bn(m.spatial_reduce(x)))
    for conv, bn in zip(m.spatial_dilated, m.spatial_dilated_bn):
        s = F.relu(bn(conv(s)))
    spatial = m.spatial_final(s).expand_as(x)
    att = 1 + torch.sigmoid(channel * spatial)
    return att * x


def reference_sge(m, x):
    """SpatialGroupEnhance as PytorchInsight ``resnet_sge.py``."""
    b, c, h, w = x.size()
    x = x.view(b * m.groups, -1, h, w)
    xn = x * F.adaptive_avg_pool2d(x, 1)
    xn = xn.sum(dim=1, keepdim=True)
    t = xn.view(b * m.groups, -1)
    t = t - t.mean(dim=1, keepdim=True)
    std = t.std(dim=1, keepdim=True) + 1e-5
    t = t / std
    t = t.view(b, m.groups, h, w)
    t = t * m.weight + m.bias
    t = t.view(b * m.groups, 1, h, w)
    x = x * torch.sigmoid(t)
    return x.view(b, c, h, w)


def reference_srm(m, x):
    """SRM as the official code: ``_style_pooling`` (mean, sqrt(var + eps)) then
    ``_style_integration`` (``t * cfc`` summed, BN, sigmoid)."""
    n, c, _, _ = x.size()
    channel_mean = x.view(n, c, -1).mean(dim=2, keepdim=True)
    channel_var = x.view(n, c, -1).var(dim=2, keepdim=True) + 1e-5
    t = torch.cat((channel_mean, channel_var.sqrt()), dim=2)
    z = torch.sum(t * m.cfc[None, :, :], dim=2)[:, :, None, None]
    return x * torch.sigmoid(m.bn(z))


def reference_sk(m, branches):
    """SK fusion as PytorchInsight ``resnet_sk.py`` (after its two 3x3 branches)."""
    d1, d2 = branches
    planes = d1.size(1)
    d = F.adaptive_avg_pool2d(d1, 1) + F.adaptive_avg_pool2d(d2, 1)
    d = F.relu(m.bn_fc1(m.conv_fc1(d)))
    d = m.conv_fc2(d)
    d = torch.unsqueeze(d, 1).view(-1, 2, planes, 1, 1)
    d = F.softmax(d, 1)
    return d1 * d[:, 0, :, :, :].squeeze(1) + d2 * d[:, 1, :, :, :].squeeze(1)


def reference_gc(m, x):
    """GCNet ``ContextBlock2d`` (att pooling, channel_add fusion) as its source writes it."""
    batch, channel, height, width = x.size()
    input_x = x.view(batch, channel, height * width).unsqueeze(1)
    context_mask = m.conv_mask(x).view(batch, 1, height * width)
    context_mask = F.softmax(context_mask, dim=2).unsqueeze(3)
    context = torch.matmul(input_x, context_mask).view(batch, channel, 1, 1)
    return x + m.channel_add_conv(context)


def _build_ours(name, channels):
    from resvariants.models.attention import build_attention
    from resvariants.models.attention.sk import SKFusion
    if name == 'sk':
        return SKFusion(channels, ratio=16)
    return build_attention(dict(sge=dict(type='SGE', groups=64)).get(name, name), channels)


#: name -> (reference function, modules per ResNet-50 stage, channels = factor x stage width)
REFERENCES = {
    'se': (reference_se, (3, 4, 6, 3), 4),
    'sk': (reference_sk, (3, 4, 6, 3), 1),  # fuses the two width-p 3x3 branches
    'cbam': (reference_cbam, (3, 4, 6, 3), 4),
    'bam': (reference_bam, (1, 1, 1, 0), 4),  # after stages 1-3
    'gc': (reference_gc, (3, 4, 6, 3), 4),
    'sge': (reference_sge, (3, 4, 6, 3), 4),
    'srm': (reference_srm, (3, 4, 6, 3), 4),
}


def use_reference_modules(model):
    """Make every attention module of ``model`` run its reference implementation (same
    parameters); returns how many were switched."""
    import types
    from resvariants.models.attention import BAM, CBAM, SGE, SRM, GCBlock, SEModule, SKFusion
    kinds = {SEModule: 'se', SKFusion: 'sk', CBAM: 'cbam', BAM: 'bam', GCBlock: 'gc',
             SGE: 'sge', SRM: 'srm'}
    count = 0
    for module in model.modules():
        name = kinds.get(type(module))
        if name is not None:
            module.forward = types.MethodType(REFERENCES[name][0], module)
            count += 1
    return count


def randomised(module, seed=0):
    """Random parameters (weights ~ N(0, 1/fan_in), vectors ~ N(0, 0.5)) and BN statistics,
    so the comparison exercises every term (several modules start from all-zero weights that
    would hide differences)."""
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


def module_inputs(name, channels, size, batch, device='cpu', seed=0, requires_grad=True):
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, channels, size, size)
    count = 2 if name == 'sk' else 1
    xs = [torch.randn(shape, generator=gen).to(device).requires_grad_(requires_grad)
          for _ in range(count)]
    return xs if name == 'sk' else xs[0]


def _inputs_list(inputs):
    return list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]


def compare_with_reference(name, channels=128, size=12, batch=3, train=True,
                           dtype=torch.float64, rtol=None, atol=None, seed=0):
    """Check ``name``'s module against its reference: same outputs, same gradients of the
    inputs and of every parameter, same BN running statistics afterwards. Raises
    AssertionError with the largest difference.

    In float64 (the default) the two agree to about 1e-15; the tolerance (1e-9 relative to
    each tensor's scale) separates rounding from a wrong term by many orders of magnitude,
    even for gradients that cancel to zero (a bias before a train-mode BatchNorm). float32
    takes ``rtol=1e-4``.
    """
    double = dtype == torch.float64
    rtol = rtol if rtol is not None else (1e-9 if double else 1e-4)
    atol = atol if atol is not None else (1e-12 if double else 1e-5)
    reference = REFERENCES[name][0]
    ours = randomised(_build_ours(name, channels), seed).to(dtype).train(train)
    ref = copy.deepcopy(ours)
    inputs = module_inputs(name, channels, size, batch, seed=seed)
    inputs = [x.detach().to(dtype).requires_grad_(True) for x in _inputs_list(inputs)]
    ref_inputs = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = ours(inputs if name == 'sk' else inputs[0])
    ref_out = reference(ref, ref_inputs if name == 'sk' else ref_inputs[0])
    gen = torch.Generator().manual_seed(seed + 1)
    grad = torch.randn(out.shape, generator=gen).to(dtype)
    out.backward(grad)
    ref_out.backward(grad)
    pairs = [('output', out, ref_out)]
    pairs += [(f'input{i} grad', x.grad, r.grad)
              for i, (x, r) in enumerate(zip(inputs, ref_inputs))]
    ref_params = dict(ref.named_parameters())
    pairs += [(f'{k} grad', p.grad, ref_params[k].grad) for k, p in ours.named_parameters()]
    ref_buffers = dict(ref.named_buffers())
    pairs += [(k, b, ref_buffers[k]) for k, b in ours.named_buffers()
              if b.dtype.is_floating_point]
    for what, a, b in pairs:
        if (a is None) != (b is None):
            raise AssertionError(f'{name}: {what} is missing on one side')
        if a is not None and not close(a, b, rtol, atol):
            diff = (a - b).abs().max().item()
            raise AssertionError(f'{name}: {what} differs from the reference (max |diff| '
                                 f'{diff:.3g}, max |reference| {b.abs().max().item():.3g})')
    return True


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


def autocast(device, enabled):
    device_type = torch.device(device).type
    dtype = torch.float16 if device_type == 'cuda' else torch.bfloat16
    return torch.autocast(device_type, dtype=dtype, enabled=enabled)


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
                 channels_last=False, seed=0):
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
        use_scaler = amp and torch.device(device).type == 'cuda'
        self.scaler = torch.amp.GradScaler('cuda') if use_scaler else None

    def logits(self, x):
        return self.model.head(self.model.extract_feat(x))

    def train_step(self):
        self.model.train()
        with autocast(self.device, self.amp):
            loss = F.cross_entropy(self.logits(self.train_x).float(), self.train_y)
        _backward_and_step(loss, self.optimizer, self.scaler)

    def infer(self, batch):
        self.model.eval()
        with torch.no_grad(), autocast(self.device, self.amp):
            self.logits(self.infer_x[batch])


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
        use_scaler = amp and torch.device(device).type == 'cuda'
        self.scaler = torch.amp.GradScaler('cuda') if use_scaler else None

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


def benchmark_models(args, device):
    from resvariants.analysis import count_complexity
    configs = resolve_configs(args.configs)
    benches, rows = {}, {}
    for i, path in enumerate(configs):
        name = config_name(path)
        _log(f'[{i + 1}/{len(configs)}] {name}: build, count GFLOPs')
        model = build_model(path)
        complexity = count_complexity(model, (224, 224))
        rows[name] = dict(config=name, params_M=complexity.params / 1e6,
                          gflops=complexity.gflops, attention=has_attention(model))
        benches[name] = ClassifierBench(model, device, args.train_batch, args.size,
                                        args.infer_batch, amp=args.amp,
                                        channels_last=args.channels_last)
        if args.reference_modules and rows[name]['attention']:
            ref_name = f'{name} [reference modules]'
            ref_model = build_model(path)
            if use_reference_modules(ref_model):
                rows[ref_name] = dict(rows[name], config=ref_name)
                benches[ref_name] = ClassifierBench(ref_model, device, args.train_batch,
                                                    args.size, args.infer_batch, amp=args.amp,
                                                    channels_last=args.channels_last)
    names = list(benches)
    base = args.baseline or next((n for n in names if not rows[n]['attention']), names[0])
    if base not in benches:
        raise KeyError(f'--baseline {base!r} is not among the configs: {names}')
    clock = Clock(device)
    _log(f'train step, batch {args.train_batch} x {args.size}x{args.size}, '
         f'{len(names)} models interleaved')
    train = interleaved({n: b.train_step for n, b in benches.items()}, clock, args.warmup,
                        args.runs, _round_progress('train'))
    latency = {}
    for batch in sorted({1, args.infer_batch}):
        _log(f'inference, batch {batch} x {args.size}x{args.size}')
        latency[batch] = interleaved({n: (lambda b=b, k=batch: b.infer(k))
                                      for n, b in benches.items()}, clock, args.warmup,
                                     args.runs, _round_progress(f'batch {batch}'))
    _log('peak memory of one train step')
    for name, bench in benches.items():
        with PeakMemory(device) as mem:
            bench.train_step()
        rows[name]['peak_mem_MB'] = mem.peak / 2**20
    for name in names:
        row = rows[name]
        train_s = statistics.median(train[name])
        row['train_ms'] = train_s * 1e3
        row['train_img_s'] = args.train_batch / train_s
        row['train_ratio'] = median_ratio(train, name, base)
        row['gflops_ratio'] = row['gflops'] / rows[base]['gflops']
        row['target'] = row['gflops_ratio'] + TARGET_MARGIN
        if name == base:
            row['verdict'] = 'baseline'
        else:
            row['verdict'] = 'holds' if row['train_ratio'] <= row['target'] else 'FAILS'
        row['latency_b1_ms'] = statistics.median(latency[1][name]) * 1e3
        bn = statistics.median(latency[args.infer_batch][name])
        row['latency_bN_ms'] = bn * 1e3
        row['infer_img_s'] = args.infer_batch / bn
    return [rows[n] for n in names], base


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
# Modules vs reference implementations
# --------------------------------------------------------------------------------------------

def benchmark_modules(args, device):
    names = args.module_names or list(REFERENCES)
    clock = Clock(device)
    rows = []
    for name in names:
        compare_with_reference(name)  # small shapes, train mode: outputs and all gradients
        compare_with_reference(name, train=False)
        reference, per_stage, factor = REFERENCES[name]
        totals = dict(ours_train_ms=0.0, ref_train_ms=0.0, ours_infer_ms=0.0, ref_infer_ms=0.0)
        for stage, count in enumerate(per_stage):
            if not count:
                continue
            channels = 64 * 2**stage * factor
            # at least 2x2: on a 1x1 map the source's SGE and SRM divide by an undefined std
            size = max(2, args.size // 2**(stage + 2))
            ours = randomised(_build_ours(name, channels)).to(device)
            ref = copy.deepcopy(ours)
            x = module_inputs(name, channels, size, args.train_batch, device)
            rx = [t.detach().clone().requires_grad_(True) for t in _inputs_list(x)]
            rx = rx if name == 'sk' else rx[0]
            with torch.no_grad():
                equal = close(ours.eval()(x), reference(ref.eval(), rx))
            if not equal:
                raise AssertionError(f'{name} stage {stage + 1}: output differs from the '
                                     f'reference')
            grad = torch.randn((args.train_batch, channels, size, size), device=device)

            def step(module, inputs, fn=None):
                module.train()
                with autocast(device, args.amp):
                    out = fn(module, inputs) if fn else module(inputs)
                out.backward(grad.to(out.dtype))

            def infer(module, inputs, fn=None):
                module.eval()
                with torch.no_grad(), autocast(device, args.amp):
                    fn(module, inputs) if fn else module(inputs)

            _log(f'{name} stage {stage + 1}: {tuple(grad.shape)}')
            train = interleaved(dict(ours=lambda: step(ours, x),
                                     ref=lambda: step(ref, rx, reference)), clock,
                                max(args.warmup, 1), args.module_runs)
            test = interleaved(dict(ours=lambda: infer(ours, x),
                                    ref=lambda: infer(ref, rx, reference)), clock,
                               max(args.warmup, 1), args.module_runs)
            row = dict(module=name, stage=str(stage + 1),
                       shape='x'.join(str(s) for s in grad.shape), equal=True,
                       ours_train_ms=statistics.median(train['ours']) * 1e3,
                       ref_train_ms=statistics.median(train['ref']) * 1e3,
                       ours_infer_ms=statistics.median(test['ours']) * 1e3,
                       ref_infer_ms=statistics.median(test['ref']) * 1e3)
            row['train_speedup'] = row['ref_train_ms'] / row['ours_train_ms']
            row['infer_speedup'] = row['ref_infer_ms'] / row['ours_infer_ms']
            rows.append(row)
            for key in totals:
                totals[key] += count * row[key]
        total = dict(module=name, stage='network', shape=f'x{sum(per_stage)} modules',
                     equal=True, **totals)
        total['train_speedup'] = totals['ref_train_ms'] / totals['ours_train_ms']
        total['infer_speedup'] = totals['ref_infer_ms'] / totals['ours_infer_ms']
        rows.append(total)
    return rows


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
    write_csv(osp.join(out_dir, 'benchmark.csv'), rows, COLUMNS)
    setting = (f'train batch {args.train_batch}, inference batch 1 and {args.infer_batch}, '
               f'{args.size}x{args.size}, median of {args.runs} interleaved rounds after '
               f'{args.warmup} warm-up' + (', AMP' if args.amp else '') +
               (', channels_last' if args.channels_last else ''))
    with open(osp.join(out_dir, 'benchmark.md'), 'w') as f:
        f.write(f'Machine: {machine}\n\nSetting: {setting}; baseline {base}; '
                f'latency_bN = batch {args.infer_batch}.\n\n')
        f.write(markdown_table(rows, COLUMNS) + '\n')
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
    parser.add_argument('--amp', action='store_true',
                        help='autocast (float16 + GradScaler on CUDA, bfloat16 on CPU)')
    parser.add_argument('--channels-last', action='store_true',
                        help='models and inputs in channels_last memory format')
    parser.add_argument('--out-dir', default=osp.join(REPO, 'work_dirs', 'benchmark'),
                        help='where the .md/.csv/.png go (docs/benchmarks for the docs)')
    parser.add_argument('--modules', action='store_true',
                        help='time the attention modules against the reference '
                             'implementations instead of whole models')
    parser.add_argument('--module-names', nargs='+', choices=sorted(REFERENCES), default=None)
    parser.add_argument('--module-runs', type=int, default=15,
                        help='timed rounds per module and stage')
    parser.add_argument('--detector', nargs='+', default=None, metavar='CONFIG',
                        help='also time these mmdet detector configs (e.g. Faster R-CNN)')
    parser.add_argument('--det-size', type=int, nargs=2, default=[800, 1333], metavar=('H', 'W'))
    parser.add_argument('--det-batch', type=int, default=2)
    parser.add_argument('--reference-modules', action='store_true',
                        help='add a row per attention config whose modules run the '
                             'reference implementations (REFERENCES), for comparison')
    parser.add_argument('--no-models', action='store_true',
                        help='skip the classifier table (e.g. detectors only)')
    args = parser.parse_args(argv)
    for key in ('size', 'train_batch', 'infer_batch', 'runs', 'module_runs', 'det_batch'):
        if getattr(args, key) < 1:
            parser.error(f'--{key.replace("_", "-")} must be >= 1')
    if args.warmup < 0:
        parser.error('--warmup must be >= 0')
    return args


def main(argv=None):
    args = parse_args(argv)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if torch.device(device).type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('--device cuda asked for, but torch sees no GPU')
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    if torch.device(device).type == 'cuda':
        torch.backends.cudnn.benchmark = True
    quiet_mmengine()
    machine = machine_description(device, threads)
    _log(f'device: {device} ({machine})')
    result = {}
    os.makedirs(args.out_dir, exist_ok=True)
    if args.modules:
        rows = benchmark_modules(args, device)
        write_csv(osp.join(args.out_dir, 'modules.csv'), rows, MODULE_COLUMNS)
        with open(osp.join(args.out_dir, 'modules.md'), 'w') as f:
            f.write(f'Machine: {machine}\n\nEach stage: batch {args.train_batch}, median of '
                    f'{args.module_runs} interleaved rounds; train = forward + backward.\n\n')
            f.write(markdown_table(rows, MODULE_COLUMNS) + '\n')
        print(markdown_table(rows, MODULE_COLUMNS))
        result['modules'] = rows
        return result
    if not args.no_models:
        rows, base = benchmark_models(args, device)
        write_model_outputs(rows, base, args, args.out_dir, machine)
        print(markdown_table(rows, COLUMNS))
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
