"""Real runs of the demo detector through tools/train.py, tools/test.py and dist_train.sh."""
import glob
import os.path as osp
import re

import pytest

from resvariants.utils import load_checkpoint_safely

from .utils import free_port, python_tool, run

DET_CFG = 'tests/configs/det_tiny.py'


@pytest.fixture(scope='module')
def trained_detector(tmp_path_factory):
    """Two real Faster R-CNN training iterations on det_small images."""
    work = tmp_path_factory.mktemp('det')
    code, out = python_tool('tools/train.py', DET_CFG, '--work-dir', str(work))
    assert code == 0, out[-4000:]
    return work, out


def test_detector_trains_two_iterations(trained_detector):
    work, out = trained_detector
    losses = [float(x) for x in re.findall(r'Iter\(train\) \[\s*\d+/2\].*? loss: ([0-9.]+)', out)]
    assert len(losses) == 2 and all(l > 0 and l == l for l in losses), out[-3000:]
    ckpt = load_checkpoint_safely(osp.join(work, 'iter_2.pth'))
    assert ckpt['meta']['iter'] == 2
    assert any(k.startswith('backbone.layer4.') for k in ckpt['state_dict'])


@pytest.fixture(scope='module')
def coco_evaluation(trained_detector, tmp_path_factory):
    """tools/test.py on the trained detector: (output, COCO figures)."""
    work, _ = trained_detector
    # after 2 iterations scores are low: keep every box so COCOeval has detections to score
    code, out = python_tool('tools/test.py', DET_CFG, osp.join(work, 'iter_2.pth'),
                            '--work-dir', str(tmp_path_factory.mktemp('test')), '--cfg-options',
                            'model.test_cfg.rcnn.score_thr=0.0')
    assert code == 0, out[-4000:]
    return out, check_coco_summary(out)


def test_coco_evaluation_with_tools_test(coco_evaluation):
    out, _ = coco_evaluation
    assert 'inference fast path' not in out


def test_inference_fast_path_gives_the_same_coco_figures(trained_detector, coco_evaluation,
                                                         tmp_path):
    """--fuse-conv-bn --channels-last: BatchNorms folded after the checkpoint is loaded, the
    backbone in channels_last; the 12 COCO figures equal the plain evaluation's."""
    work, _ = trained_detector
    code, out = python_tool('tools/test.py', DET_CFG, osp.join(work, 'iter_2.pth'),
                            '--work-dir', str(tmp_path), '--fuse-conv-bn', '--channels-last',
                            '--cfg-options', 'model.test_cfg.rcnn.score_thr=0.0')
    assert code == 0, out[-4000:]
    assert re.search(r'inference fast path: folded (\d+) of \1 BatchNorms into their '
                     r'convolutions; backbone in channels_last', out), out[-3000:]
    values = check_coco_summary(out)
    plain = coco_evaluation[1]
    assert values.keys() == plain.keys()
    for key, value in plain.items():
        assert values[key] == pytest.approx(value, abs=2e-3), key


def check_coco_summary(out):
    """COCOeval's summary in ``out`` holds 12 real figures and the logged mAP is its AP."""
    summary = re.findall(r'Average (Precision|Recall) +\((?:AP|AR)\) @\[ IoU=([0-9.:]+) +\| '
                         r'area= *(\w+) \| maxDets= *(\d+) \] = (-?[0-9.]+)', out)
    assert len(summary) == 12, out[-3000:]  # COCOeval's 6 AP and 6 AR lines
    # -1 is COCOeval's "nothing to evaluate": the 32 val images hold boxes of every area
    # range (83 small, 63 medium, 66 large), so every figure is a real one in [0, 1]
    values = {(kind, iou, area, dets): float(v) for kind, iou, area, dets, v in summary}
    assert all(0.0 <= v <= 1.0 for v in values.values()), values
    # the logged metric is COCOeval's AP@[.5:.95] of all areas, to its 3 printed decimals
    logged = float(re.search(r'coco/bbox_mAP: (-?[0-9.]+)', out).group(1))
    assert logged == pytest.approx(values['Precision', '0.50:0.95', 'all', '100'], abs=5e-4)
    return values


def test_resume_continues_at_the_right_iteration(trained_detector, tmp_path):
    work, _ = trained_detector
    code, out = python_tool('tools/train.py', DET_CFG, '--work-dir', str(tmp_path), '--resume',
                            osp.join(work, 'iter_2.pth'), '--cfg-options',
                            'train_cfg.max_iters=3')
    assert code == 0, out[-4000:]
    assert re.search(r'resumed epoch: \d+, iter: 2', out), out[-3000:]
    assert re.findall(r'Iter\(train\) \[\s*(\d+)/3\]', out) == ['3']
    assert osp.exists(osp.join(tmp_path, 'iter_3.pth'))


def test_two_process_cpu_ddp(tmp_path):
    code, out = run(['bash', 'tools/dist_train.sh', DET_CFG, '2', '--work-dir', str(tmp_path)],
                    PORT=str(free_port()), timeout=900)
    assert code == 0, out[-4000:]
    assert 'Distributed launcher: pytorch' in out or "'world_size': 2" in out or \
        'World size: 2' in out, out[-3000:]
    assert len(re.findall(r'Iter\(train\) \[\s*2/2\]', out)) == 1  # rank 0 logs
    assert sorted(osp.basename(p) for p in glob.glob(osp.join(tmp_path, '*.pth'))) == \
        ['iter_2.pth']


def test_detector_trains_with_its_backbone_and_neck_compiled(tmp_path):
    """The one config line of docs/benchmarks.md ("Compiling"): Faster R-CNN trains with
    backbone and neck compiled whole (``aot_eager`` here: inductor's code generation takes
    minutes on 2 cores), and its checkpoint keys are the uncompiled model's."""
    code, out = python_tool('tools/train.py', 'tests/configs/det_tiny_compiled.py',
                            '--work-dir', str(tmp_path))
    assert code == 0, out[-4000:]
    assert 'compiled backbone (ResNet)' in out and 'compiled neck (FPN)' in out
    losses = [float(x) for x in re.findall(r'Iter\(train\) \[\s*\d+/2\].*? loss: ([0-9.]+)', out)]
    assert len(losses) == 2 and all(l > 0 and l == l for l in losses), out[-3000:]
    state = load_checkpoint_safely(osp.join(tmp_path, 'iter_2.pth'))['state_dict']
    assert 'backbone.layer4.2.conv3.weight' in state and not any('_orig_mod' in k for k in state)
