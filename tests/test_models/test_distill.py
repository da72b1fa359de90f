"""Stage-wise distillation model: what each phase trains, teacher handling, checkpoints."""
import io

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.structures import DataSample

from resvariants.models import StagewiseDistiller
from resvariants.models.distill import backbone_stage, backbone_stem

HEAD = dict(type='LinearClsHead', num_classes=5, in_channels=64,
            loss=dict(type='CrossEntropyLoss'))
NECK = dict(type='GlobalAveragePooling')


def teacher_cfg(depth=20):
    return dict(backbone=dict(type='resvariants.CifarResNet', depth=depth, norm_eval=False,
                              zero_init_residual=False),
                neck=NECK, head=HEAD)


def build_distiller(teacher=None, **kwargs):
    model = StagewiseDistiller(
        backbone=dict(type='resvariants.PlainResNet', depth=20, norm_eval=False),
        teacher=teacher or teacher_cfg(), neck=NECK, head=HEAD, **kwargs)
    model.init_weights()
    return model


def batch(n=4):
    return dict(inputs=torch.rand(n, 3, 28, 28) * 255,
                data_samples=[DataSample().set_gt_label(i % 5) for i in range(n)])


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before, after):
    return {k for k in before if not torch.equal(before[k], after[k])}


@pytest.fixture
def distiller():
    return build_distiller()


def test_student_starts_as_the_teacher_without_shortcuts(distiller):
    teacher = distiller.teacher.state_dict()
    student = distiller.state_dict()
    assert student and all(torch.equal(v, teacher[k]) for k, v in student.items())
    assert {k for k in teacher if k not in student} == {k for k in teacher if '.downsample.' in k}


@pytest.mark.parametrize('phase', [1, 2, 3])
def test_distillation_phase_updates_only_its_stage(distiller, phase):
    distiller.set_phase(phase)
    distiller.train()
    optim = OptimWrapper(torch.optim.SGD(distiller.parameters(), lr=0.1, momentum=0.9,
                                         weight_decay=1e-4))
    student, teacher = snapshot(distiller), snapshot(distiller.teacher)
    losses = distiller.train_step(batch(), optim)
    assert set(losses) == {'loss', f'loss_stage{phase}_l1'} and losses['loss'] > 0
    updated = changed(student, distiller.state_dict())
    prefix = f'backbone.layer{phase}.'
    assert updated and all(k.startswith(prefix) for k in updated)
    # every weight of the stage moved, and its BN statistics (train mode) too
    stage_params = {n for n, _ in distiller.named_parameters() if n.startswith(prefix)}
    assert stage_params <= updated
    assert any(k.endswith('running_mean') for k in updated)
    assert not changed(teacher, distiller.teacher.state_dict())
    trainable = {n for n, p in distiller.named_parameters() if p.requires_grad}
    assert trainable == stage_params


def test_finetune_phase_trains_the_whole_student_with_the_head_loss(distiller):
    distiller.set_phase(distiller.num_phases)
    distiller.train()
    optim = OptimWrapper(torch.optim.SGD(distiller.parameters(), lr=0.1))
    student, teacher = snapshot(distiller), snapshot(distiller.teacher)
    losses = distiller.train_step(batch(), optim)
    assert 'loss' in losses and not any(k.startswith('loss_stage') for k in losses)
    updated = changed(student, distiller.state_dict())
    params = {n for n, _ in distiller.named_parameters() if not n.startswith('teacher.')}
    assert params <= updated and 'head.fc.weight' in updated and 'backbone.conv1.weight' in updated
    assert not changed(teacher, distiller.teacher.state_dict())


def test_frozen_stages_stay_frozen_when_finetuning():
    model = StagewiseDistiller(
        backbone=dict(type='resvariants.PlainResNet', depth=20, norm_eval=False,
                      frozen_stages=1),
        teacher=teacher_cfg(), neck=NECK, head=HEAD)
    model.set_phase(4)
    assert not any(p.requires_grad for p in model.backbone.layer1.parameters())
    assert all(p.requires_grad for p in model.backbone.layer2.parameters())


def test_teacher_is_frozen_in_eval_mode_and_outside_autograd(distiller):
    distiller.set_phase(2)
    distiller.train()
    assert not distiller.teacher.training
    assert not any(p.requires_grad for p in distiller.teacher.parameters())
    # frozen student parts are in eval mode, the stage being trained is not
    assert not distiller.backbone.layer1.training and not distiller.backbone.norm1.training
    assert distiller.backbone.layer2.training and not distiller.backbone.layer3.training
    loss = distiller.loss(batch()['inputs'], None)['loss_stage2_l1']
    loss.backward()
    assert all(p.grad is None for p in distiller.teacher.parameters())
    assert all(p.grad is None for p in distiller.backbone.layer1.parameters())


def test_stage_helpers_match_the_backbone_forward(distiller):
    backbone = distiller.teacher.backbone.eval()
    backbone.out_indices = (0, 1, 2)
    x = torch.randn(2, 3, 28, 28)
    out = backbone_stem(backbone, x)
    manual = []
    for i in range(3):
        out = backbone_stage(backbone, i, out)
        manual.append(out)
    for a, b in zip(backbone(x), manual):
        torch.testing.assert_close(a, b)


def test_checkpoint_holds_the_student_only_and_loads_into_a_plain_classifier(distiller):
    distiller.set_phase(4)
    state = distiller.state_dict()
    assert not any(k.startswith('teacher.') for k in state)
    classifier = ImageClassifier(
        backbone=dict(type='resvariants.PlainResNet', depth=20, norm_eval=False),
        neck=NECK, head=HEAD).eval()
    classifier.load_state_dict(state, strict=True)
    distiller.eval()
    x = torch.randn(2, 3, 28, 28)
    torch.testing.assert_close(classifier(x), distiller(x))
    # and back into a distiller (strict): the teacher keeps its weights
    other = build_distiller()
    teacher = snapshot(other.teacher)
    other.load_state_dict(state, strict=True)
    assert not changed(teacher, other.teacher.state_dict())


def test_teacher_checkpoint_is_loaded_strictly(tmp_path):
    teacher = ImageClassifier(**teacher_cfg())
    teacher.init_weights()
    path = tmp_path / 'teacher.pth'
    buffer = io.BytesIO()
    torch.save(dict(state_dict={f'module.{k}': v for k, v in teacher.state_dict().items()}),
               buffer)
    path.write_bytes(buffer.getvalue())
    model = build_distiller(teacher_checkpoint=str(path))
    for key, value in teacher.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[key], value)
    bad = tmp_path / 'bad.pth'
    torch.save(dict(state_dict={'backbone.conv1.weight': torch.zeros(1)}), bad)
    with pytest.raises(KeyError, match='missing keys'):
        build_distiller(teacher_checkpoint=str(bad))


def test_student_that_does_not_fit_the_teacher_is_refused():
    with pytest.raises(ValueError, match='stages'):
        StagewiseDistiller(backbone=dict(type='resvariants.PlainResNet', depth=18),
                           teacher=teacher_cfg(), neck=NECK, head=HEAD)
    with pytest.raises(KeyError, match='does not match the student'):
        build_distiller(teacher=teacher_cfg(depth=32))
    with pytest.raises(ValueError, match='phase must be in 1..4'):
        build_distiller().set_phase(5)


def test_teacher_config_from_an_inherited_mmpretrain_base():
    # configs inheriting 'mmpretrain::' bases carry _scope_ keys in every typed dict
    teacher = dict(teacher_cfg(), type='ImageClassifier', _scope_='mmpretrain')
    model = build_distiller(teacher=teacher)
    assert isinstance(model.teacher, ImageClassifier)
    with pytest.raises(TypeError, match='ImageClassifier config'):
        build_distiller(teacher=dict(teacher_cfg(), type='mmdet.FasterRCNN'))
