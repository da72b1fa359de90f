"""A real (short) stage-wise distillation run with tools/train.py on cls_small, then the
exact-removal tool on the distilled student: phases in order, student-only checkpoint."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmpretrain.models.classifiers import ImageClassifier

from resvariants.engine.strict_pretrained import load_state_dict_strictly
from resvariants.utils import load_checkpoint_safely

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO, 'projects', 'resnet_no_res', 'configs')
DATA = os.environ.get('RESVARIANTS_DATA', osp.join(REPO, 'tests', 'data'))

def run_tool(*args):
    env = dict(os.environ, RESVARIANTS_DATA=DATA, PYTHONPATH=REPO, OMP_NUM_THREADS='2')
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def distilled(tmp_path_factory):
    work = tmp_path_factory.mktemp('distill')
    teacher_cfg = Config.fromfile(osp.join(CONFIGS, 'resnet20_cls-small.py')).model
    teacher_cfg.pop('type')
    teacher = ImageClassifier(**teacher_cfg)
    teacher.init_weights()
    torch.save(dict(state_dict=teacher.state_dict()), work / 'teacher.pth')
    config = work / 'distill_tiny.py'
    config.write_text(f"""
_base_ = ['{CONFIGS}/plain-resnet20_stagewise-distill_cls-small.py']
model = dict(teacher_checkpoint='{work / 'teacher.pth'}')
train_dataloader = dict(batch_size=16, num_workers=0, persistent_workers=False)
val_dataloader = dict(batch_size=50, num_workers=0, persistent_workers=False,
                      dataset=dict(indices=50))
test_dataloader = val_dataloader
custom_hooks = [dict(type='resvariants.StagewiseDistillHook', phase_lengths=[2, 2, 2, 2],
                     phase_lrs=[0.1, 0.1, 0.1, 0.001], by_epoch=False)]
param_scheduler = []
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=8, val_interval=4)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(by_epoch=False, interval=8))
log_processor = dict(by_epoch=False)
""")
    code, out = run_tool('tools/train.py', str(config), '--work-dir', str(work / 'run'))
    assert code == 0, out[-4000:]
    return work, config, out


def test_phases_run_in_order_with_their_losses(distilled):
    _, _, out = distilled
    starts = re.findall(r'phase (\d)/4 from iter (\d+): (distilling stage \d|fine-tuning)', out)
    assert starts == [('1', '0', 'distilling stage 1'), ('2', '2', 'distilling stage 2'),
                      ('3', '4', 'distilling stage 3'), ('4', '6', 'fine-tuning')], out[-3000:]
    lines = re.findall(r'Iter\(train\) \[\s*\d/8\].*', out)
    keys = [re.findall(r'loss_stage\d_l1', line) for line in lines]
    # the logger keeps showing the last value of earlier phases' keys; each phase adds its own
    stage = [f'loss_stage{k}_l1' for k in (1, 2, 3)]
    assert keys == [stage[:1]] * 2 + [stage[:2]] * 2 + [stage] * 4, out[-3000:]
    frozen = [re.search(r'loss_stage1_l1: ([0-9.]+)', line).group(1) for line in lines[1:]]
    assert len(set(frozen)) == 1  # stage 1's loss is no longer computed after phase 1
    logged = [re.search(r'lr: ([0-9.e+-]+)', line).groups() for line in lines]
    assert [float(lr) for lr, in logged] == pytest.approx([0.1] * 6 + [0.001] * 2)
    assert 'teacher loaded from' in out and 'student initialised from the teacher' in out
    assert re.search(r'accuracy/top1: [0-9.]+', out)


def test_checkpoint_is_an_ordinary_plain_classifier(distilled):
    work, _, _ = distilled
    state = load_checkpoint_safely(str(work / 'run' / 'iter_8.pth'))['state_dict']
    assert not any(k.startswith('teacher.') for k in state)
    assert not any('downsample' in k for k in state)
    student_cfg = Config.fromfile(osp.join(CONFIGS, 'plain-resnet20_stagewise-distill_cls-small.py'))
    classifier = ImageClassifier(backbone=student_cfg.model.backbone, neck=student_cfg.model.neck,
                                 head=student_cfg.model.head)
    load_state_dict_strictly(classifier, state)


def test_validations_keep_the_best_top1_checkpoint(distilled):
    """save_best='accuracy/top1' of configs/_base_/runtime_mmpretrain.py (the sources' tables
    are best-epoch): of the two validations (iterations 4 and 8), the one with the higher top-1
    (the earlier on a tie) is the one best checkpoint left, written by the atomic backend."""
    work, _, out = distilled
    scores = [float(x) for x in re.findall(r'Iter\(val\) \[\d+/\d+\]\s+accuracy/top1: ([0-9.]+)',
                                            out)]
    assert len(scores) == 2, out[-3000:]
    best_iter = 4 if scores[0] >= scores[1] else 8
    best = sorted(p.name for p in (work / 'run').glob('best_*.pth'))
    assert best == [f'best_accuracy_top1_iter_{best_iter}.pth']
    checkpoint = load_checkpoint_safely(str(work / 'run' / best[0]))
    assert checkpoint['meta']['iter'] == best_iter
    assert checkpoint['message_hub']['runtime_info']['best_score'] == pytest.approx(max(scores))
    if best_iter == 8:
        last = load_checkpoint_safely(str(work / 'run' / 'iter_8.pth'))['state_dict']
        assert all(torch.equal(v, last[k]) for k, v in checkpoint['state_dict'].items())


def test_distilled_student_folds_into_the_deploy_form(distilled):
    work, config, _ = distilled
    code, out = run_tool('tools/model_converters/remove_residual.py', str(config),
                         str(work / 'run' / 'iter_8.pth'), str(work / 'deploy'),
                         '--latency-runs', '1')
    assert code == 0, out[-4000:]
    diff = float(re.search(r'logits ([0-9.e+-]+)', out).group(1))
    assert diff < 1e-4
    cfg = Config.fromfile(str(work / 'deploy' / 'distill_tiny_rm-plain.py'))
    assert cfg.model.type == 'ImageClassifier'
    assert cfg.model.backbone.type == 'resvariants.RMPlainResNet'
    assert cfg.model.backbone.reserve_identity is False
