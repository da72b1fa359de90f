"""How the train step grows: time and peak memory against batch size and input size, with
gradient checkpointing (``with_cp``) off and on, for every variant (issue 18, item 6).

    python tools/analysis/growth.py --threads 2 --out-dir docs/benchmarks/growth
    python tools/analysis/growth.py --configs configs/imagenet/sge_resnet50_in1k.py \\
        --batches 1 8 32 --det-sizes 224x224 800x1333

Two sweeps, each over the same variants (``--configs``: ImageNet classifier configs; the
default is the eight ResNet-50s plus the ED, WS and octave ResNet-50s):

* **batch**: the classifier's train step (forward + cross-entropy + backward + SGD) at
  ``--size`` x ``--size`` for every batch of ``--batches`` (default 1 ... 64);
* **input size**: the same network as a *detection backbone* (the settings of
  ``configs/_base_/det_backbone.py``: four outputs, stem + stage 1 frozen, BN statistics frozen)
  at batch ``--det-batch``, for every ``HxW`` of ``--det-sizes`` (default 224x224 ...
  800x1333); its loss is the sum of the means of the four feature maps.

Every point is run with ``with_cp`` off and on (a variant whose blocks cannot checkpoint,
such as the octave ResNet, gets the ``off`` rows only). Before timing, each variant's
checkpointed copy is checked to give the same loss and the same gradients as the plain one
at the smallest point (same weights, same input): checkpointing trades time for memory and
must not change the step.

Timing at a point: one untimed warm-up step, then ``--runs`` timed steps (median; the peak
memory is sampled during the first timed step: ``benchmark.PeakMemory``, CUDA
``max_memory_allocated`` growth or the CPU resident-set growth). Points are interleaved over
the variants (every variant takes its turn at a point before the next point), so a change
of load on the machine hits them alike.

Writes ``growth.csv``, ``growth.md`` and ``growth.png`` (four panels: train step and peak
memory against batch, and against input pixels; one colour per variant, dashed = ``with_cp``)
to ``--out-dir``.
"""
import argparse
import copy
import os
import os.path as osp
import statistics
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tools', 'analysis'))
sys.path.insert(0, REPO)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import benchmark as bench  # noqa: E402  (tools/analysis/benchmark.py: timing, memory, output)

DEFAULT_CONFIGS = bench.DEFAULT_CONFIGS + [
    f'configs/imagenet/{name}_in1k.py' for name in ('ed_resnet50', 'ws_resnet50', 'oct_resnet50')
]
DEFAULT_BATCHES = [1, 2, 4, 8, 16, 32, 64]
DEFAULT_DET_SIZES = ['224x224', '448x448', '640x640', '800x1333']
COLUMNS = ['config', 'sweep', 'with_cp', 'batch', 'height', 'width', 'train_ms',
           'ms_per_image', 'peak_mem_MB', 'mem_MB_per_image']
#: the detection-backbone settings of configs/_base_/det_backbone.py
DET_BACKBONE = dict(out_indices=(0, 1, 2, 3), frozen_stages=1, norm_eval=True)


def parse_size(text):
    """``'800x1333'`` -> ``(800, 1333)``."""
    parts = text.lower().split('x')
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'input size {text!r} is not HxW (two positive integers, e.g. 800x1333)') from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f'input size {text!r}: H and W must be >= 1')
    return h, w


def set_with_cp(model, on):
    for module in model.modules():
        if hasattr(module, 'with_cp'):
            module.with_cp = on
    return model


class ClassifierStep:
    """A classifier's train step on a random batch (cross-entropy, SGD)."""

    sweep = 'batch'

    def __init__(self, model, device, batch, size, seed=0):
        self.model = model.to(device).train()
        gen = torch.Generator().manual_seed(seed)
        num_classes = getattr(model.head, 'num_classes', 1000)
        self.x = torch.randn(batch, 3, size, size, generator=gen).to(device)
        self.y = torch.randint(0, num_classes, (batch, ), generator=gen).to(device)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def loss(self):
        return F.cross_entropy(self.model.head(self.model.extract_feat(self.x)), self.y)

    def __call__(self):
        self.model.train()
        loss = self.loss()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


class BackboneStep(ClassifierStep):
    """A detection backbone's train step: loss = sum of the feature maps' means."""

    sweep = 'input size'

    def __init__(self, backbone, device, batch, shape, seed=0):
        self.model = backbone.to(device).train()
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(batch, 3, *shape, generator=gen).to(device)
        self.optimizer = torch.optim.SGD(
            [p for p in backbone.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)

    def loss(self):
        return sum(out.mean() for out in self.model(self.x))


def measure_bn_statistics(backbone, size=64, batch=4, seed=0):
    """Set every BatchNorm's running statistics to those of one random batch (as a trained
    network has statistics that fit its weights). The detection backbone normalises with its
    running statistics (``norm_eval``); at their initial values (0, 1) a weight-standardised
    network's features grow by every conv's fan-in and overflow."""
    from torch.nn.modules.batchnorm import _BatchNorm
    norms = [m for m in backbone.modules() if isinstance(m, _BatchNorm)]
    saved = [(m, m.momentum, m.training) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: after one batch, that batch's statistics
        m.train()
    with torch.no_grad():
        backbone(torch.randn(batch, 3, size, size,
                             generator=torch.Generator().manual_seed(seed)))
    for m, momentum, training in saved:
        m.momentum = momentum
        m.train(training)
    return backbone


def build_variant(path):
    """``(classifier, detection backbone, supports with_cp)`` of an ImageNet config: the
    classifier with its own initialisation, and its backbone config rebuilt with the detection
    settings, holding the classifier's backbone weights."""
    from resvariants.engine.config_loading import build_model, read_config
    cfg = read_config(path)
    classifier = bench.build_model(path)
    det_cfg = copy.deepcopy(cfg.model.backbone)
    det_cfg.update(DET_BACKBONE, init_cfg=None)
    det = build_model(cfg, det_cfg, without_checkpoint=True)
    measure_bn_statistics(classifier.backbone)
    det.load_state_dict(classifier.backbone.state_dict())
    try:  # a backbone whose blocks define no checkpointing refuses with_cp=True
        build_model(cfg, dict(det_cfg, with_cp=True), without_checkpoint=True)
        supports_cp = True
    except ValueError:
        supports_cp = False
    return classifier, det.train(), supports_cp  # train(): frozen_stages / norm_eval


def check_with_cp_keeps_the_step(make_step, name, atol=1e-5, rtol=1e-4):
    """Raise if the checkpointed copy's loss or gradients differ from the plain one's."""
    plain, ckpt = make_step(False), make_step(True)
    results = []
    for step in (plain, ckpt):
        step.model.zero_grad(set_to_none=True)
        loss = step.loss()
        loss.backward()
        results.append((loss.detach(), {n: p.grad.detach().clone() for n, p in
                                         step.model.named_parameters() if p.grad is not None}))
    (loss_a, grads_a), (loss_b, grads_b) = results
    if not torch.allclose(loss_a, loss_b, rtol=rtol, atol=atol):
        raise AssertionError(f'{name}: with_cp changed the loss ({loss_a.item():.6g} -> '
                             f'{loss_b.item():.6g})')
    if grads_a.keys() != grads_b.keys():
        raise AssertionError(f'{name}: with_cp changed which parameters get gradients: '
                             f'{sorted(grads_a.keys() ^ grads_b.keys())[:5]}')
    for key, grad in grads_a.items():
        if not bench.close(grads_b[key], grad, rtol=rtol, atol=atol):
            diff = (grads_b[key] - grad).abs().max().item()
            raise AssertionError(f'{name}: with_cp changed the gradient of {key} '
                                 f'(max |diff| {diff:.3g})')


def run(args, device):
    """All rows: ``[dict(config, sweep, with_cp, batch, height, width, train_ms, ...)]``."""
    configs = bench.resolve_configs(args.configs)
    variants = {}
    for i, path in enumerate(configs):
        name = bench.config_name(path)
        bench._log(f'[{i + 1}/{len(configs)}] {name}: build')
        classifier, det, supports_cp = build_variant(path)
        cp_modes = [False, True] if supports_cp else [False]
        if not args.no_check and True in cp_modes:
            smallest = min(args.batches)
            check_with_cp_keeps_the_step(
                lambda on: ClassifierStep(set_with_cp(copy.deepcopy(classifier), on), device,
                                          max(smallest, 2), args.check_size), name)
            check_with_cp_keeps_the_step(
                lambda on: BackboneStep(set_with_cp(copy.deepcopy(det), on), device, 1,
                                        (args.check_size, args.check_size)), name + ' (det)')
            bench._log(f'  {name}: with_cp gives the same loss and gradients')
        variants[name] = (classifier, det, cp_modes)
    points = [('batch', b, (args.size, args.size)) for b in args.batches] + \
             [('input size', args.det_batch, hw) for hw in args.det_sizes]
    clock = bench.Clock(device)
    rows = []
    for sweep, batch, (h, w) in points:
        bench._log(f'{sweep}: batch {batch} x {h}x{w}')
        steps = {}
        for name, (classifier, det, cp_modes) in variants.items():
            for on in cp_modes:
                if sweep == 'batch':
                    model = set_with_cp(copy.deepcopy(classifier), on)
                    steps[name, on] = ClassifierStep(model, device, batch, h)
                else:
                    model = set_with_cp(copy.deepcopy(det), on)
                    steps[name, on] = BackboneStep(model, device, batch, (h, w))
        times = {key: [] for key in steps}
        peaks = {}
        for key, step in steps.items():
            step()  # warm-up
        for r in range(args.runs):
            for key, step in steps.items():
                if r == 0:
                    with bench.PeakMemory(device) as mem:
                        times[key].append(clock(step))
                    peaks[key] = mem.peak / 2**20
                else:
                    times[key].append(clock(step))
        for (name, on), samples in times.items():
            ms = statistics.median(samples) * 1e3
            rows.append(dict(config=name, sweep=sweep, with_cp=on, batch=batch, height=h,
                             width=w, train_ms=ms, ms_per_image=ms / batch,
                             peak_mem_MB=peaks[name, on],
                             mem_MB_per_image=peaks[name, on] / batch))
        del steps
    return rows


def plot(rows, path, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    names = list(dict.fromkeys(r['config'] for r in rows))
    panels = ((0, 0, 'batch', 'batch', 'train_ms', 'train step (ms)'),
              (0, 1, 'batch', 'batch', 'peak_mem_MB', 'peak memory of the step (MB)'),
              (1, 0, 'input size', 'pixels', 'train_ms', 'backbone train step (ms)'),
              (1, 1, 'input size', 'pixels', 'peak_mem_MB', 'peak memory of the step (MB)'))
    for i, j, sweep, xkey, ykey, ylabel in panels:
        ax = axes[i][j]
        for k, name in enumerate(names):
            for on in (False, True):
                pts = sorted((r['batch'] if xkey == 'batch' else r['height'] * r['width'],
                              r[ykey]) for r in rows
                             if r['config'] == name and r['sweep'] == sweep and
                             r['with_cp'] == on)
                if not pts:
                    continue
                # tab20's ten dark colours, then its ten light ones, then new markers: every
                # variant its own line however many there are
                ax.plot(*zip(*pts), marker='os^D'[k // 20 % 4], ms=3,
                        color=plt.get_cmap('tab20')((2 * k) % 20 + (k % 20) // 10),
                        linestyle='--' if on else '-', linewidth=1,
                        label=name.replace('_in1k', '') if not on else None)
        ax.set_xscale('log', base=2)
        ax.set_yscale('log')
        first = next((r for r in rows if r['sweep'] == sweep), None)
        if first is None:
            continue
        ax.set_xlabel(f'batch ({first["height"]} x {first["width"]}, classifier)'
                      if xkey == 'batch' else
                      f'input pixels H x W (detection backbone, batch {first["batch"]})')
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which='both')
    axes[0][0].legend(fontsize=7, ncol=2, title='solid: with_cp off, dashed: on',
                      title_fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cp_summary(rows):
    """Rows of the with_cp trade at every point: time ratio and memory ratio (on / off)."""
    out = []
    by_key = {(r['config'], r['sweep'], r['batch'], r['height'], r['width'], r['with_cp']): r
              for r in rows}
    for key, off in by_key.items():
        if key[-1]:
            continue
        on = by_key.get(key[:-1] + (True, ))
        if on is None:
            continue
        out.append(dict(config=key[0], sweep=key[1], batch=key[2], height=key[3],
                        width=key[4], time_ratio=on['train_ms'] / off['train_ms'],
                        memory_ratio=(on['peak_mem_MB'] / off['peak_mem_MB']
                                      if off['peak_mem_MB'] > 0 else float('nan'))))
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train-step time and peak memory against batch and input size, with_cp '
                    'off and on')
    parser.add_argument('--configs', nargs='+', default=DEFAULT_CONFIGS,
                        help='ImageNet classifier configs or globs (default: the ResNet-50 '
                             'variants)')
    parser.add_argument('--batches', type=int, nargs='+', default=DEFAULT_BATCHES)
    parser.add_argument('--size', type=int, default=224, help='square input of the batch sweep')
    parser.add_argument('--det-sizes', type=parse_size, nargs='+',
                        default=[parse_size(s) for s in DEFAULT_DET_SIZES],
                        help='HxW inputs of the detection-backbone sweep')
    parser.add_argument('--det-batch', type=int, default=1)
    parser.add_argument('--runs', type=int, default=2, help='timed steps per point (median)')
    parser.add_argument('--check-size', type=int, default=64,
                        help='input size of the with_cp equality check')
    parser.add_argument('--no-check', action='store_true', help='skip the with_cp check')
    parser.add_argument('--device', default=None)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--out-dir', default=osp.join(REPO, 'work_dirs', 'growth'))
    args = parser.parse_args(argv)
    for key in ('size', 'det_batch', 'runs', 'check_size'):
        if getattr(args, key) < 1:
            parser.error(f'--{key.replace("_", "-")} must be >= 1')
    if min(args.batches) < 1:
        parser.error(f'--batches must all be >= 1, got {args.batches}')
    return args


def main(argv=None):
    args = parse_args(argv)
    device, machine = bench.prepare_device(args.device, args.threads)
    rows = run(args, device)
    os.makedirs(args.out_dir, exist_ok=True)
    bench.write_csv(osp.join(args.out_dir, 'growth.csv'), rows, COLUMNS)
    trade = cp_summary(rows)
    trade_columns = ['config', 'sweep', 'batch', 'height', 'width', 'time_ratio',
                     'memory_ratio']
    setting = (f'train step, median of {args.runs} timed steps after 1 warm-up; batch sweep '
               f'at {args.size}x{args.size} (classifier), input sweep at batch '
               f'{args.det_batch} (detection backbone)')
    with open(osp.join(args.out_dir, 'growth.md'), 'w') as f:
        f.write(f'Machine: {machine}\n\nSetting: {setting}.\n\n')
        f.write(bench.markdown_table(rows, COLUMNS) + '\n\n')
        f.write('with_cp on / off at each point:\n\n')
        f.write(bench.markdown_table(trade, trade_columns) + '\n')
    plot(rows, osp.join(args.out_dir, 'growth.png'), f'{machine}\n{setting}')
    print(bench.markdown_table(rows, COLUMNS))
    bench._log(f'written to {args.out_dir}')
    return rows


if __name__ == '__main__':
    main()
