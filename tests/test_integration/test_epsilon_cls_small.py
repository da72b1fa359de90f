"""A real epsilon-ResNet run on cls_small: blocks get discarded, logged and plotted, the learning
rate restarts, and the compact export initialises a Faster R-CNN whose backbone outputs equal
the gated network's."""
import glob
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from resvariants.models.backbones.strict_identity import apply_discard_record
from resvariants.utils.safe_load import load_checkpoint_safely

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA = os.environ.get('RESVARIANTS_DATA', osp.join(REPO, 'tests', 'data'))
PROJECT = osp.join(REPO, 'projects', 'epsilon_resnet', 'configs')

# 48 training images spread over the 10 classes, batch 8: 6 iterations per epoch, 3 epochs.
# Epoch 1 runs with epsilon 0, epochs 2-3 with epsilon 8 (the project smoke config).
TEST_CFG = f"""
_base_ = {osp.join(PROJECT, 'eps-resnet50_cls-small.py')!r}
train_dataloader = dict(num_workers=0, persistent_workers=False,
                        dataset=dict(indices=list(range(0, 2000, 42))))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(indices=list(range(0, 500, 25))))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=3)
default_hooks = dict(logger=dict(interval=2), checkpoint=dict(interval=1, max_keep_ckpts=1))
randomness = dict(seed=0, deterministic=True)
"""
BASE_LR_EPOCH3, RESTART_LR = 0.001, 0.01  # from the smoke config's two schedules


def _tool(*parts):
    path = osp.join(REPO, 'tools', *parts)
    spec = importlib.util.spec_from_file_location(osp.splitext(parts[-1])[0] + '_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp('epsilon_cls_small')
    cfg_path = root / 'eps_r50_cls_small_test.py'
    cfg_path.write_text(TEST_CFG)
    work_dir = root / 'work'
    env = dict(os.environ, RESVARIANTS_DATA=DATA, PYTHONPATH=REPO, OMP_NUM_THREADS='2')
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', str(cfg_path), '--work-dir', str(work_dir)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    scalars = glob.glob(str(work_dir / '*' / 'vis_data' / 'scalars.json'))
    assert len(scalars) == 1
    points = [json.loads(line) for line in open(scalars[0]) if line.strip()]
    return dict(root=root, cfg=str(cfg_path), work_dir=work_dir, log=output, points=points,
                checkpoint=str(work_dir / 'epoch_3.pth'))


def _per_epoch(points, key):
    return {p['step']: p[key] for p in points if key in p}


def test_blocks_are_discarded_and_logged(trained):
    counts = _per_epoch(trained['points'], 'epsilon/discarded_cnt')
    ratios = _per_epoch(trained['points'], 'epsilon/discarded_ratio')
    assert sorted(counts) == [1, 2, 3]
    assert counts[1] == 0  # epsilon 0 in epoch 1
    assert counts[2] >= 1 and counts[3] >= 1
    assert ratios[2] == pytest.approx(counts[2] / 16)
    assert 'epsilon-ResNet epoch 1: 0/16 blocks discarded' in trained['log']
    assert f'epsilon-ResNet epoch 2: {counts[2]}/16 blocks discarded' in trained['log']
    meta = load_checkpoint_safely(trained['checkpoint'])['meta']['epsilon_resnet']
    assert len(meta['discarded']) == counts[3]
    assert [h['discarded_cnt'] for h in meta['history']] == [counts[1], counts[2], counts[3]]


def test_validation_logs_the_side_heads_accuracy_beside_the_main_heads(trained):
    main = _per_epoch(trained['points'], 'accuracy/top1')
    side = _per_epoch(trained['points'], 'side/accuracy/top1')
    assert sorted(main) == sorted(side) == [1, 2, 3]  # every validation pass logs both
    assert all(0 <= v <= 100 for v in list(main.values()) + list(side.values()))
    assert set(_per_epoch(trained['points'], 'side/accuracy/top5')) == {1, 2, 3}


def test_learning_rate_restarts_when_blocks_are_discarded(trained):
    lrs = _per_epoch(trained['points'], 'epsilon/lr')
    restarts = _per_epoch(trained['points'], 'epsilon/lr_restart')
    assert restarts[2] == 1 and restarts[1] == 0
    assert lrs[3] == RESTART_LR != BASE_LR_EPOCH3
    # the optimizer really used it: LoggerHook's per-iteration lr in epoch 3 (iterations 13-18)
    iteration_lrs = {p['step']: p['lr'] for p in trained['points']
                     if 'lr' in p and 'epsilon/lr' not in p}
    assert iteration_lrs and all(lr == pytest.approx(RESTART_LR)
                                 for step, lr in iteration_lrs.items() if step > 12)
    assert 'the learning-rate schedule restarts at epoch 3' in trained['log']


def _colour_mask(image, rgb, tolerance):
    import numpy as np
    pixels = np.round(image[..., :3] * 255).astype(int)
    return np.all(np.abs(pixels - np.array(rgb)) <= tolerance, axis=-1)


def _coloured_pixels(image, rgb, tolerance=10):
    """Pixels of ``image`` (H x W x 3/4 floats) within ``tolerance`` of the 0-255 ``rgb``."""
    return int(_colour_mask(image, rgb, tolerance).sum())


def check_epsilon_plot(path, points, out, monkeypatch):
    """Run the plot tool on ``path``; the curves it draws are the run's per-epoch points, and
    the PNG shows them: 700x400 (7x4 in at 100 dpi), mostly white, with the red count curve,
    the blue learning-rate curve and a grey restart line."""
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex
    tool = _tool('analysis', 'plot_epsilon.py')
    drawn, figures = [], []
    real_plot = tool.plot
    monkeypatch.setattr(tool, 'plot', lambda curves, o: drawn.append(curves) or real_plot(
        curves, o))
    monkeypatch.setattr(plt, 'close', figures.append)  # keep the figure to inspect it
    tool.main([str(path), '--out', str(out)])
    counts = _per_epoch(points, 'epsilon/discarded_cnt')
    lrs = _per_epoch(points, 'epsilon/lr')
    restarts = _per_epoch(points, 'epsilon/lr_restart')
    epochs = sorted(counts)
    curves, = drawn
    assert curves['epoch'] == epochs
    assert curves['discarded_cnt'] == [counts[e] for e in epochs]
    assert curves['lr'] == lrs
    assert curves['restarts'] == [e + 1 for e in epochs if restarts.get(e)]
    # the lines of the figure: each value holds over [epoch, epoch + 1)
    figure, = figures
    lines = {}
    for axes in figure.axes:
        for line in axes.get_lines():
            lines.setdefault(to_hex(line.get_color()), []).append(line)
    plt.close(figure)
    count_line, = lines[to_hex('tab:red')]
    assert list(count_line.get_xdata()) == epochs + [epochs[-1] + 1]
    assert list(count_line.get_ydata()) == [counts[e] for e in epochs] + [counts[epochs[-1]]]
    lr_line, = lines[to_hex('tab:blue')]
    assert list(lr_line.get_ydata()) == [lrs[e] for e in sorted(lrs)] + [lrs[max(lrs)]]
    assert lr_line.axes.get_yscale() == 'log'
    assert sorted(line.get_xdata()[0] for line in lines.get(to_hex('grey'), [])) == \
        curves['restarts']
    image = mpimg.imread(str(out))
    assert image.shape[:2] == (400, 700)
    white = _coloured_pixels(image, (255, 255, 255), 3)
    assert 0.5 * 400 * 700 < white < 0.98 * 400 * 700  # drawn on, but not a blot
    assert _coloured_pixels(image, (214, 39, 40)) > 150  # tab:red: discarded blocks
    assert _coloured_pixels(image, (31, 119, 180)) > 150  # tab:blue: learning rate
    # grey dotted vertical lines at the restarts: columns holding many grey pixels (text,
    # antialiased, never does)
    import numpy as np
    columns = np.flatnonzero(_colour_mask(image, (128, 128, 128), 12).sum(axis=0) > 60)
    lines = 0 if not len(columns) else 1 + int((np.diff(columns) > 1).sum())
    assert lines == len(curves['restarts'])
    return curves


def test_plot_tool_draws_counts_and_lr(trained, tmp_path, monkeypatch):
    curves = check_epsilon_plot(trained['work_dir'], trained['points'], tmp_path / 'eps.png',
                                monkeypatch)
    assert curves['restarts'] == [3]  # the restart decided at the end of epoch 2


def test_plot_tool_on_a_scalars_file(tmp_path, monkeypatch):
    """The same checks on a hand-written visualiser file: 6 epochs, two restarts."""
    points = [dict(step=e, **{'epsilon/discarded_cnt': c, 'epsilon/discarded_ratio': c / 16,
                              'epsilon/lr': lr, 'epsilon/lr_restart': int(r)})
              for e, c, lr, r in [(1, 0, 0.1, 0), (2, 2, 0.1, 1), (3, 2, 0.1, 0),
                                  (4, 5, 0.01, 1), (5, 5, 0.1, 0), (6, 6, 0.01, 0)]]
    points.insert(2, dict(step=7, lr=0.1, loss=1.0))  # an iteration point without epsilon keys
    scalars = tmp_path / 'vis_data' / 'scalars.json'
    scalars.parent.mkdir()
    scalars.write_text(''.join(json.dumps(p) + '\n' for p in points))
    curves = check_epsilon_plot(scalars, points, tmp_path / 'eps.png', monkeypatch)
    assert curves['discarded_cnt'] == [0, 2, 2, 5, 5, 6] and curves['restarts'] == [3, 5]


def test_compact_export_initialises_faster_rcnn_with_identical_backbone(trained, tmp_path,
                                                                        monkeypatch):
    out_dir = tmp_path / 'compact'
    result = _tool('model_converters', 'epsilon_compact.py').main(
        [trained['cfg'], trained['checkpoint'], str(out_dir), '--shape', '64'])
    checkpoint = load_checkpoint_safely(trained['checkpoint'])
    record = checkpoint['meta']['epsilon_resnet']
    assert [f'backbone.{n}' for n in result.plan.removed] == sorted(
        record['discarded'], key=lambda n: (n.split('.')[1], int(n.split('.')[2])))
    assert result.max_abs_diff < 1e-5 and result.params_after < result.params_before

    # the gated network as trained, all four stage outputs
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        gated = PRETRAIN_MODELS.build(Config.fromfile(trained['cfg']).model)
    gated.load_state_dict(checkpoint['state_dict'], strict=True)
    apply_discard_record(gated, record)
    gated.backbone.out_indices = (0, 1, 2, 3)

    # the Faster R-CNN config of the project, pointed at this export
    monkeypatch.setenv('EPSILON_COMPACT_DIR', str(out_dir))
    monkeypatch.setenv('RESVARIANTS_DATA', DATA)
    from resvariants.engine.config_loading import register_scope
    register_scope('mmdet')
    det_cfg = Config.fromfile(osp.join(PROJECT, 'faster-rcnn_eps-r50-compact_fpn_det-small.py'))
    assert det_cfg.model.backbone.type == 'resvariants.CompactResNet'
    with DefaultScope.overwrite_default_scope('mmdet'):
        from mmdet.registry import MODELS as DET_MODELS
        detector = DET_MODELS.build(det_cfg.model)
    detector.init_weights()  # StrictPretrained: raises on any missing / unexpected key
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        det_feats = detector.eval().backbone(x)
        gated_feats = gated.eval().backbone(x)
        detector.extract_feat(x)  # the FPN takes the compact backbone's channels
    assert len(det_feats) == len(gated_feats) == 4
    for a, b in zip(det_feats, gated_feats):
        assert a.shape == b.shape
        assert (a - b).abs().max() < 1e-5
