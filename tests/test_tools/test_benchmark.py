"""tools/analysis/benchmark.py: the tables it writes, and the plain formulas it times the fast
paths against (no timing assertions). The modules' equality with their sources' formulas is
tests/test_models/test_attention_source_style.py."""
import csv
import importlib.util
import os
import os.path as osp

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool():
    path = osp.join(REPO, 'tools', 'analysis', 'benchmark.py')
    spec = importlib.util.spec_from_file_location('resvariants_benchmark', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = load_tool()


def test_close_is_scale_aware():
    b = torch.tensor([100.0, 1e-6])
    assert tool.close(b + torch.tensor([0.0, 1e-3]), b)  # rounding next to a large entry
    assert not tool.close(b + torch.tensor([1.0, 0.0]), b)


def test_module_names_and_layouts_come_from_the_registry():
    assert tool.fused_attention_types() == {'gc': 'GCBlock', 'sge': 'SGE', 'srm': 'SRM'}
    assert tool.module_layout('BAM') == ((1, 1, 1, 0), 4, 1)
    assert tool.module_layout('SKFusion') == ((3, 4, 6, 3), 1, 2)
    assert tool.module_layout('SGE') == ((3, 4, 6, 3), 4, 1)


def test_tiny_model_run_writes_markdown_csv_and_plot(tmp_path, capsys):
    configs = ['configs/imagenet/resnet50_in1k.py', 'configs/imagenet/sge_resnet50_in1k.py']
    result = tool.main(['--configs', *configs, '--device', 'cpu', '--size', '32',
                        '--train-batch', '2', '--infer-batch', '2', '--runs', '1', '--warmup',
                        '0', '--threads', '1', '--out-dir', str(tmp_path)])
    printed = capsys.readouterr().out
    assert '[1/2] resnet50_in1k' in printed and 'train: round 1/1' in printed  # progress
    with open(tmp_path / 'benchmark.csv') as f:
        rows = list(csv.DictReader(f))
    assert [r['config'] for r in rows] == ['resnet50_in1k', 'sge_resnet50_in1k']
    assert list(rows[0]) == tool.COLUMNS
    assert rows[0]['verdict'] == 'baseline' and float(rows[0]['train_ratio']) == 1.0
    # one timed round: the ratio is the two measured times, the verdict the target rule on it
    base, sge = rows
    assert float(sge['train_ratio']) == pytest.approx(
        float(sge['train_ms']) / float(base['train_ms']), rel=1e-4)
    assert float(sge['gflops_ratio']) == pytest.approx(
        float(sge['gflops']) / float(base['gflops']), rel=1e-4)
    assert sge['verdict'] == ('holds' if float(sge['train_ratio']) <= float(sge['target'])
                              else 'FAILS')
    for row in rows:
        assert float(row['train_ms']) > 0 and float(row['latency_b1_ms']) > 0
        assert float(row['gflops']) == pytest.approx(4.12, abs=0.01)  # counted at 224
        assert float(row['target']) == pytest.approx(float(row['gflops_ratio']) + 0.10)
    markdown = (tmp_path / 'benchmark.md').read_text()
    assert '| config | params_M | gflops |' in markdown and 'sge_resnet50_in1k' in markdown
    assert (tmp_path / 'benchmark.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert len(result['models']) == 2


@pytest.mark.parametrize('sge_seconds,verdict', [(0.105, 'holds'), (0.125, 'FAILS')])
def test_verdict_applies_the_target_to_the_median_ratio(sge_seconds, verdict, tmp_path,
                                                      monkeypatch):
    """With the clock replaced by fixed times, the ratio, target and verdict are exact: SGE-R50
    has R50's GFLOPs to 0.5 %, so the target is about 1.10; 1.05 holds and 1.25 fails."""
    seconds = {'resnet50_in1k': [0.100, 0.200, 0.100], 'sge_resnet50_in1k':
               [sge_seconds, 2 * sge_seconds, 1.5 * sge_seconds]}  # per-round ratios r, r, 1.5r

    def fixed_times(fns, clock, warmup, runs, progress=None):
        return {name: list(seconds[name]) for name in fns}

    monkeypatch.setattr(tool, 'interleaved', fixed_times)
    result = tool.main(['--configs', 'configs/imagenet/resnet50_in1k.py',
                        'configs/imagenet/sge_resnet50_in1k.py', '--device', 'cpu', '--size',
                        '32', '--train-batch', '2', '--infer-batch', '2', '--runs', '3',
                        '--warmup', '0', '--threads', '1', '--out-dir', str(tmp_path)])
    base, sge = result['models']
    assert base['verdict'] == 'baseline' and base['train_ratio'] == 1.0
    assert base['train_ms'] == pytest.approx(100.0)  # the median round, not the mean
    ratio = sge_seconds / 0.100
    assert sge['train_ratio'] == pytest.approx(ratio)  # median of the per-round ratios
    assert sge['gflops_ratio'] == pytest.approx(sge['gflops'] / base['gflops'])
    assert sge['gflops_ratio'] == pytest.approx(1.0, abs=0.005)
    assert sge['target'] == pytest.approx(sge['gflops_ratio'] + 0.10)
    assert sge['verdict'] == verdict
    with open(tmp_path / 'benchmark.csv') as f:
        assert [r['verdict'] for r in csv.DictReader(f)] == ['baseline', verdict]


def test_modules_mode_writes_table(tmp_path):
    result = tool.main(['--modules', '--module-names', 'sge', 'gc', '--size', '32',
                        '--train-batch', '2', '--module-runs', '1', '--warmup', '0',
                        '--threads', '1', '--out-dir', str(tmp_path)])
    rows = result['modules']
    assert [(r['module'], r['stage']) for r in rows] == [
        ('sge', '1'), ('sge', '2'), ('sge', '3'), ('sge', '4'), ('sge', 'network'),
        ('gc', '1'), ('gc', '2'), ('gc', '3'), ('gc', '4'), ('gc', 'network')]
    with open(tmp_path / 'modules.csv') as f:
        assert list(csv.DictReader(f).fieldnames) == tool.MODULE_COLUMNS
    assert '| sge | network |' in (tmp_path / 'modules.md').read_text()


def test_modules_mode_with_compile_times_every_module_compiled(tmp_path):
    result = tool.main(['--modules', '--compile', '--compile-backend', 'eager',
                        '--module-names', 'se', 'srm', '--size', '32', '--train-batch', '2',
                        '--module-runs', '1', '--warmup', '0', '--threads', '1',
                        '--out-dir', str(tmp_path)])
    rows = {(r['module'], r['stage']): r for r in result['modules']}
    assert len(rows) == 10
    se, srm = rows['se', '1'], rows['srm', 'network']
    # SE has no fast path: its eager column is its plain formula
    assert se['fused_train_ms'] == se['plain_train_ms'] and se['train_speedup'] == 1.0
    assert se['compiled_train_speedup'] == pytest.approx(
        se['plain_train_ms'] / se['compiled_train_ms'])
    stages = [rows['srm', str(i)] for i in range(1, 5)]
    assert srm['compiled_train_ms'] == pytest.approx(
        sum(n * r['compiled_train_ms'] for n, r in zip((3, 4, 6, 3), stages)))
    assert srm['compile_s'] == pytest.approx(sum(r['compile_s'] for r in stages))
    with open(tmp_path / 'modules.csv') as f:
        assert list(csv.DictReader(f).fieldnames) == (tool.MODULE_COLUMNS +
                                                      tool.MODULE_COMPILE_COLUMNS)
    assert 'torch.compile(backend=\'eager\'' in (tmp_path / 'modules.md').read_text()


def test_reference_compile_and_fold_rows(tmp_path, monkeypatch):
    """--reference, --compile and --fold-bn add their rows and columns; every ratio is to the
    row of the same mode (fixed times make them exact)."""
    times = {'resnet50_in1k': 1.0, 'resnet50_in1k [compiled]': 0.5, 'sge_resnet50_in1k': 1.2,
             'sge_resnet50_in1k [reference]': 1.5, 'sge_resnet50_in1k [compiled]': 0.6,
             'sge_resnet50_in1k [reference, compiled]': 0.6}

    def fixed_times(fns, clock, warmup, runs, progress=None):
        for fn in fns.values():
            fn()  # the folded copies and compiled graphs run
        return {name: [times.get(name.removesuffix(' [folded]'), 1.0) *
                       (0.5 if name.endswith('[folded]') else 1.0)] for name in fns}

    monkeypatch.setattr(tool, 'interleaved', fixed_times)
    result = tool.main(['--configs', 'configs/imagenet/resnet50_in1k.py',
                        'configs/imagenet/sge_resnet50_in1k.py', '--reference', '--compile',
                        '--compile-backend', 'eager', '--fold-bn', '--device', 'cpu',
                        '--size', '64', '--train-batch', '2', '--infer-batch', '2', '--runs',
                        '1', '--warmup', '0', '--threads', '1', '--out-dir', str(tmp_path)])
    rows = {r['config']: r for r in result['models']}
    assert list(rows) == list(times)  # the plain ResNet has no reference row
    sge, comp = rows['sge_resnet50_in1k'], rows['sge_resnet50_in1k [compiled]']
    assert sge['train_ratio'] == pytest.approx(1.2) and sge['target'] == pytest.approx(
        sge['gflops_ratio'] + 0.10)
    assert sge['ref_train_ratio'] == pytest.approx(0.8) and sge['ref_verdict'] == 'holds'
    assert comp['train_ratio'] == pytest.approx(1.2)  # to the compiled plain ResNet
    assert comp['target'] == pytest.approx(comp['gflops_ratio'] + 0.05)
    assert comp['ref_train_ratio'] == pytest.approx(1.0) and comp['ref_verdict'] == 'FAILS'
    # ours compiled against the reference as its source runs it (eager): 0.6 / 1.5
    assert comp['vs_ref_eager_train'] == pytest.approx(0.4)
    assert comp['vs_ref_eager_bN'] == pytest.approx(0.4)  # the same fixed times in every phase
    assert comp['vs_ref_eager_verdict'] == 'holds'
    assert 'vs_ref_eager_train' not in sge
    assert rows['resnet50_in1k [compiled]']['verdict'] == 'baseline'
    assert comp['compile_s'] > 0 and 'compile_s' not in sge
    assert sge['fold_speedup_bN'] == pytest.approx(2.0) and 'folded_bN_ms' not in comp
    with open(tmp_path / 'benchmark.csv') as f:
        assert list(csv.DictReader(f).fieldnames) == (
            tool.COLUMNS + tool.REFERENCE_COLUMNS + tool.COMPILE_COLUMNS +
            tool.COMPILED_VS_EAGER_REFERENCE_COLUMNS + tool.FOLD_COLUMNS)


def test_channels_last_rows_run_channels_last_and_give_speedups(tmp_path, monkeypatch):
    """--channels-last-rows: one eager channels_last row per config (its tensors really are
    channels_last), and the speed-ups contiguous / channels_last from the same rounds."""
    times = {'resnet50_in1k': 1.0, 'resnet50_in1k [channels_last]': 0.8,
             'se_resnet50_in1k': 1.1, 'se_resnet50_in1k [channels_last]': 1.25}
    formats = {}

    def fixed_times(fns, clock, warmup, runs, progress=None):
        return {name: [times[name]] for name in fns}

    real_init = tool.ClassifierBench.__init__

    def spy_init(self, model, *args, **kwargs):
        real_init(self, model, *args, **kwargs)
        formats[len(formats)] = self.train_x.is_contiguous(memory_format=torch.channels_last) \
            and not self.train_x.is_contiguous()

    monkeypatch.setattr(tool, 'interleaved', fixed_times)
    monkeypatch.setattr(tool.ClassifierBench, '__init__', spy_init)
    result = tool.main(['--configs', 'configs/imagenet/resnet50_in1k.py',
                        'configs/imagenet/se_resnet50_in1k.py', '--channels-last-rows',
                        '--device', 'cpu', '--size', '32', '--train-batch', '2',
                        '--infer-batch', '2', '--runs', '1', '--warmup', '0', '--threads', '1',
                        '--out-dir', str(tmp_path)])
    rows = {r['config']: r for r in result['models']}
    assert list(rows) == list(times)
    assert list(formats.values()) == [False, True, False, True]
    assert rows['resnet50_in1k']['cl_train_speedup'] == pytest.approx(1.25)
    assert rows['se_resnet50_in1k']['cl_bN_speedup'] == pytest.approx(0.88)
    assert 'cl_train_speedup' not in rows['se_resnet50_in1k [channels_last]']
    assert rows['resnet50_in1k [channels_last]']['train_ratio'] == pytest.approx(0.8)
    with open(tmp_path / 'benchmark.csv') as f:
        assert list(csv.DictReader(f).fieldnames) == tool.COLUMNS + tool.CHANNELS_LAST_COLUMNS


def test_fold_conv_bn_keeps_the_logits_and_refuses_a_change(monkeypatch):
    import mmcv.cnn
    model = tool.build_model('configs/imagenet/se_resnet50_in1k.py')
    x = torch.randn(1, 3, 64, 64)
    folded = tool.fold_conv_bn(model, x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.backbone.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.backbone.modules())
    with torch.no_grad():
        expected = model.head(model.extract_feat(x))
        assert tool.close(folded.head(folded.extract_feat(x)), expected, rtol=1e-4)
    real_fuse = mmcv.cnn.fuse_conv_bn

    def wrong_fuse(module):  # a fold that forgets one BN's shift
        module = real_fuse(module)
        with torch.no_grad():
            module.backbone.conv1.bias.add_(1.0)
        return module

    monkeypatch.setattr(mmcv.cnn, 'fuse_conv_bn', wrong_fuse)
    with pytest.raises(AssertionError, match='conv-BN folding changed the eval logits'):
        tool.fold_conv_bn(model, x)


def test_configs_accept_globs_and_reject_missing():
    paths = tool.resolve_configs(['configs/imagenet/s*_resnet50_in1k.py'])
    assert [osp.basename(p) for p in paths] == [
        'se_resnet50_in1k.py', 'sge_resnet50_in1k.py', 'sk_resnet50_in1k.py',
        'srm_resnet50_in1k.py']
    with pytest.raises(FileNotFoundError):
        tool.resolve_configs(['configs/imagenet/nope_in1k.py'])


def test_bad_arguments_are_rejected(capsys):
    with pytest.raises(SystemExit):
        tool.parse_args(['--runs', '0'])
    with pytest.raises(SystemExit):
        tool.parse_args(['--modules', '--module-names', 'sgee'])
    assert "--module-names: unknown ['sgee']" in capsys.readouterr().err


def test_detector_option_writes_its_table(tmp_path):
    result = tool.main(['--no-models', '--detector', 'configs/faster_rcnn_r50_fpn.py',
                        '--det-size', '64', '96', '--det-batch', '1', '--runs', '1',
                        '--warmup', '0', '--threads', '1', '--device', 'cpu', '--out-dir',
                        str(tmp_path)])
    row, = result['detectors']
    assert row['config'] == 'faster_rcnn_r50_fpn' and row['shape'] == '1x3x64x96'
    assert row['train_ms'] > 0 and row['infer_ms'] > 0 and row['train_ratio'] == 1.0
    with open(tmp_path / 'detector.csv') as f:
        assert list(csv.DictReader(f).fieldnames) == tool.DETECTOR_COLUMNS


@pytest.mark.parametrize('attention,sk,expected', [('sge', None, 16), ('srm', None, 16),
                                                   ('gc', None, 16), ('cbam', None, 0)])
def test_plain_formula_swap_keeps_the_network_function(attention, sk, expected):
    from resvariants.models import ResNet
    torch.manual_seed(0)
    model = tool.randomised(ResNet(depth=50, base_channels=16, attention=attention, sk=sk))
    plain = ResNet(depth=50, base_channels=16, attention=attention, sk=sk)
    plain.load_state_dict(model.state_dict())
    assert tool.use_plain_formulas(plain) == expected
    assert tool.use_plain_formulas(plain) == 0  # already plain
    assert not any(getattr(m, 'fused', False) for m in plain.modules())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model.eval()(x), plain.eval()(x)):
            assert tool.close(a, b)


def test_gpu_bench_refuses_unknown_arguments():
    import subprocess
    done = subprocess.run(['bash', osp.join(REPO, 'tools', 'analysis', 'gpu_bench.sh'),
                           '--dryrun'], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown argument '--dryrun'" in done.stderr


def test_gpu_wheels_refuses_unknown_arguments():
    """tools/analysis/gpu_wheels.sh names the argument it does not know (and downloads nothing)."""
    import subprocess
    done = subprocess.run(['bash', osp.join(REPO, 'tools', 'analysis', 'gpu_wheels.sh'),
                           '--python', '3.12'], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown argument '--python'" in done.stderr


def test_gpu_bench_dry_run_runs_every_step_on_the_cpu(tmp_path):
    """tools/analysis/gpu_bench.sh --dry-run: the GPU script's four steps at tiny shapes, on
    the CPU (bfloat16 / float16 autocast, compiled rows with the eager backend)."""
    import subprocess
    import sys
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1')
    done = subprocess.run(['bash', osp.join(REPO, 'tools', 'analysis', 'gpu_bench.sh'),
                           '--dry-run', '--out', str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    check = (tmp_path / 'device_check.txt').read_text()
    assert '12/12 checks hold on cpu' in check  # 3 modules x (fp32, bf16) x (built, compiled)
    with open(tmp_path / 'bf16' / 'benchmark.csv') as f:
        rows = list(csv.DictReader(f))
    assert [r['config'] for r in rows] == [
        'resnet50_in1k', 'resnet50_in1k [compiled]', 'sge_resnet50_in1k',
        'sge_resnet50_in1k [reference]', 'sge_resnet50_in1k [compiled]',
        'sge_resnet50_in1k [reference, compiled]']
    assert all(float(r['compile_s']) > 0 for r in rows if 'compiled' in r['config'])
    assert 'AMP (bfloat16)' in (tmp_path / 'bf16' / 'benchmark.md').read_text()
    assert 'AMP (float16)' in (tmp_path / 'fp16' / 'benchmark.md').read_text()
    with open(tmp_path / 'fp16' / 'benchmark.csv') as f:
        fp16_rows = [r['config'] for r in csv.DictReader(f)]
    assert fp16_rows == ['resnet50_in1k', 'resnet50_in1k [channels_last]', 'sge_resnet50_in1k',
                         'sge_resnet50_in1k [reference]', 'sge_resnet50_in1k [channels_last]']
    assert '| sge | network |' in (tmp_path / 'modules' / 'modules.md').read_text()
    assert 'gpu_bench.sh: done in' in done.stdout
