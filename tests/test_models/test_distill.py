"""Stage-wise distillation model: what each phase trains, teacher handling, checkpoints."""
import io

import pytest
import torch
import torch.nn.functional as F
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


# --- the loss and the update pinned against a hand computation --------------------------------
# ResNet-20 written out with torch.nn.functional from the state dicts (docs/architectures.md 4.1):
# 3x3 stem (16, stride 1) + BN + ReLU, no max-pool; three stages of three basic blocks (16/32/64
# channels, stride 2 on the first 3x3 of stages 2 and 3); the teacher adds the shortcut (identity,
# or 1x1 strided conv + BN where the shape changes), the student does not. Phase k (4.2): the
# mean absolute difference between student and teacher stage-k outputs, the student's stage k
# fed by its own stem and earlier stages. BN: the teacher and the frozen student parts use running
# statistics; the stage being trained is in train mode (batch statistics).


def _bn(x, s, prefix, batch_stats):
    shape = (1, -1, 1, 1)
    if batch_stats:
        mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)
    else:
        mean, var = s[prefix + 'running_mean'], s[prefix + 'running_var']
    return ((x - mean.view(shape)) / torch.sqrt(var.view(shape) + 1e-5) *
            s[prefix + 'weight'].view(shape) + s[prefix + 'bias'].view(shape))


def hand_resnet20(s, x, residual, prefix, batch_stats_stages=()):
    """[stem, stage 1, stage 2, stage 3] outputs; ``s`` maps names to (live) tensors; the BNs of
    the stages in ``batch_stats_stages`` (0 = the stem) use batch statistics."""
    out = F.relu(_bn(F.conv2d(x, s[prefix + 'conv1.weight'], padding=1), s, prefix + 'bn1.',
                     0 in batch_stats_stages))
    outs = [out]
    for stage in (1, 2, 3):
        batch_stats = stage in batch_stats_stages
        for i in range(3):
            p = f'{prefix}layer{stage}.{i}.'
            stride = 2 if stage > 1 and i == 0 else 1
            y = F.relu(_bn(F.conv2d(out, s[p + 'conv1.weight'], stride=stride, padding=1), s,
                           p + 'bn1.', batch_stats))
            y = _bn(F.conv2d(y, s[p + 'conv2.weight'], padding=1), s, p + 'bn2.', batch_stats)
            if residual:
                if p + 'downsample.0.weight' in s:
                    shortcut = _bn(F.conv2d(out, s[p + 'downsample.0.weight'], stride=stride), s,
                                   p + 'downsample.1.', batch_stats)
                else:
                    shortcut = out
                y = y + shortcut
            out = F.relu(y)
        outs.append(out)
    return outs


def tensors(model):
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


@pytest.fixture
def random_distiller():
    """Float64 distiller whose teacher has random BN parameters and statistics and whose student
    (initialised from the teacher, as the source does) is then perturbed: every stage of the
    student differs from the teacher's, and running and batch statistics differ."""
    torch.manual_seed(0)
    model = build_distiller().double()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in tensors(model.teacher).items():
            if name.endswith(('running_mean', 'bias')):
                t.copy_(torch.randn(t.shape, generator=g) * 0.2)
            elif name.endswith('running_var') or (name.endswith('weight') and t.dim() == 1):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
        model.copy_teacher_to_student()
        for name, p in model.named_parameters():
            if not name.startswith('teacher.'):
                p.mul_(1 + 0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def images(n=4, seed=1):
    return torch.randn(n, 3, 28, 28, dtype=torch.float64,
                       generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize('phase', [1, 2, 3])
def test_distillation_loss_is_the_stage_l1_to_the_teacher(random_distiller, phase):
    model = random_distiller
    model.set_phase(phase)
    model.train()
    x = images()
    losses = model.loss(x, None)
    assert set(losses) == {f'loss_stage{phase}_l1'}
    with torch.no_grad():
        teacher = hand_resnet20(tensors(model.teacher), x, True, 'backbone.')[phase]
        student = hand_resnet20(tensors(model), x, False, 'backbone.', (phase, ))[phase]
        expected = (student - teacher).abs().mean()
        # a wrong stage or a squared distance would be far off
        others = [(b - a).abs().mean() for k, (a, b) in enumerate(zip(
            hand_resnet20(tensors(model.teacher), x, True, 'backbone.'),
            hand_resnet20(tensors(model), x, False, 'backbone.', (phase, )))) if k != phase]
    assert min(abs(o - expected) for o in others[1:]) > 1e-3 and \
        abs((student - teacher).pow(2).mean() - expected) > 1e-3
    torch.testing.assert_close(losses[f'loss_stage{phase}_l1'], expected, rtol=1e-10, atol=0)
    model.distill_loss_weight = 2.5
    torch.testing.assert_close(model.loss(x, None)[f'loss_stage{phase}_l1'], 2.5 * expected,
                               rtol=1e-10, atol=0)


@pytest.mark.parametrize('phase', [1, 2, 3])
def test_distillation_step_moves_only_stage_k_along_the_l1_gradient(random_distiller, phase):
    """One SGD step in phase k: stage k's weights move by -lr * d(L1)/dw (the gradient of the
    hand-computed loss), its BN statistics take the batch's; every other tensor of the student
    and of the teacher stays bit for bit."""
    model = random_distiller
    model.set_phase(phase)
    model.train()
    x, lr = images(), 0.5
    s = tensors(model)
    before = {k: v.detach().clone() for k, v in s.items()}
    teacher_before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    prefix = f'backbone.layer{phase}.'
    trained = {k: v for k, v in model.named_parameters() if k.startswith(prefix)}
    teacher_out = hand_resnet20(tensors(model.teacher), x, True, 'backbone.')[phase].detach()
    student_outs = hand_resnet20(s, x, False, 'backbone.', (phase, ))
    loss = (student_outs[phase] - teacher_out).abs().mean()
    grads = dict(zip(trained, torch.autograd.grad(loss, list(trained.values()))))
    # the batch statistics that stage k's BN layers see, for the running-statistics update
    batch_stats = {}

    def record(name):
        def hook(module, inputs, output):
            x = inputs[0].detach()
            batch_stats[name] = (x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=True))
        return hook

    for name, module in model.backbone.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d) and f'backbone.{name}.'.startswith(prefix):
            module.register_forward_hook(record(f'backbone.{name}'))

    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=lr))
    parsed, _ = model.parse_losses(model.loss(x, None))
    optim.update_params(parsed)

    after = tensors(model)
    for key, old in before.items():
        new = after[key].detach()
        if key in trained:
            torch.testing.assert_close(new, old - lr * grads[key], rtol=1e-9, atol=1e-12)
            assert not torch.equal(new, old)
        elif key.startswith(prefix) and key.endswith(('running_mean', 'running_var')):
            mean, var = batch_stats[key.rsplit('.', 1)[0]]
            stat = mean if key.endswith('running_mean') else var
            torch.testing.assert_close(new, 0.9 * old + 0.1 * stat, rtol=1e-9, atol=1e-12)
        elif key.startswith(prefix) and key.endswith('num_batches_tracked'):
            assert new == old + 1
        else:
            assert torch.equal(new, old), f'{key} changed in phase {phase}'
    assert all(torch.equal(v, teacher_before[k]) for k, v in model.teacher.state_dict().items())


def test_finetune_loss_is_the_cross_entropy_of_the_whole_student(random_distiller):
    model = random_distiller
    model.set_phase(model.num_phases)
    model.train()
    x = images()
    samples = [DataSample().set_gt_label(i % 5) for i in range(4)]
    loss = model.loss(x, samples)
    assert set(loss) == {'loss'}
    with torch.no_grad():
        s = tensors(model)
        features = hand_resnet20(s, x, False, 'backbone.', (0, 1, 2, 3))[3].mean(dim=(2, 3))
        logits = features @ s['head.fc.weight'].T + s['head.fc.bias']
        expected = F.cross_entropy(logits, torch.arange(4) % 5)
    torch.testing.assert_close(loss['loss'], expected, rtol=1e-10, atol=0)


# --- phases, options and messages (found by mutation testing, docs/testing.md) ---------------

def test_phase_numbering(distiller):
    assert distiller.num_stages == 3 and distiller.num_phases == 4
    assert distiller.phase == 1 and distiller.distilling  # a new distiller starts in phase 1
    for phase, distilling in [(1, True), (3, True), (4, False)]:
        distiller.set_phase(phase)
        assert distiller.phase == phase and distiller.distilling is distilling
    for phase in (0, 5):
        with pytest.raises(ValueError, match=rf'^phase must be in 1\.\.4 \(3 stage phases \+ '
                                             rf'fine-tuning\), got {phase}$'):
            distiller.set_phase(phase)


def test_last_distillation_phase_trains_only_the_last_stage(distiller):
    distiller.set_phase(3)
    distiller.train()
    trainable = {n.split('.')[1] for n, p in distiller.named_parameters() if p.requires_grad}
    assert trainable == {'layer3'}
    assert not distiller.head.training and not distiller.neck.training


def test_distill_loss_weight_scales_the_stage_loss():
    torch.manual_seed(0)
    inputs = batch()['inputs']
    plain = build_distiller()
    with torch.no_grad():
        for p in plain.backbone.layer1.parameters():
            p.mul_(1.5)  # so the student differs from the teacher
    weighted = build_distiller(distill_loss_weight=0.25)
    weighted.load_state_dict(plain.state_dict())
    weighted.teacher.load_state_dict(plain.teacher.state_dict())
    assert plain.distill_loss_weight == 1.0
    full = plain.train().loss(inputs, None)['loss_stage1_l1']
    quarter = weighted.train().loss(inputs, None)['loss_stage1_l1']
    assert full > 0
    torch.testing.assert_close(quarter, 0.25 * full)


def test_norm_eval_keeps_the_trained_stage_bns_frozen():
    model = StagewiseDistiller(
        backbone=dict(type='resvariants.PlainResNet', depth=20, norm_eval=True),
        teacher=teacher_cfg(), neck=NECK, head=HEAD)
    model.set_phase(2)
    model.train()
    layer2 = model.backbone.layer2
    assert layer2.training
    bns = [m for m in layer2.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(bn.training for bn in bns)
    convs = [m for m in layer2.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.training for c in convs)


def test_student_can_start_from_its_own_init():
    model = build_distiller(init_student_from_teacher=False)
    teacher = model.teacher.state_dict()
    student = {k: v for k, v in model.state_dict().items() if k.endswith('conv1.weight')}
    assert student and not any(torch.equal(v, teacher[k]) for k, v in student.items())


def test_init_logs_what_it_did(monkeypatch, tmp_path):
    from resvariants.models import distill
    messages = []
    monkeypatch.setattr(distill, 'print_log', lambda msg, **kwargs: messages.append(msg))
    build_distiller()
    # plain ResNet-20: stem conv + BN (1 + 5 tensors), 9 blocks x (2 convs + 2 BNs x 5), fc (2)
    # = 116; the teacher's two projection shortcuts (conv + BN) are the 12 dropped
    assert messages == [
        'StagewiseDistiller: no teacher_checkpoint, the teacher keeps its initialisation',
        'StagewiseDistiller: student initialised from the teacher (116 tensors; 12 shortcut '
        'tensors dropped)']
    teacher = ImageClassifier(**teacher_cfg())
    path = tmp_path / 'teacher.pth'
    torch.save(teacher.state_dict(), path)  # a bare state dict (no 'state_dict' key)
    messages.clear()
    model = build_distiller(teacher_checkpoint=str(path))
    assert messages[0] == f'StagewiseDistiller: teacher loaded from {path}'
    for key, value in teacher.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[key], value), key


def test_teacher_checkpoint_without_a_state_dict_is_refused(tmp_path):
    path = tmp_path / 'list.pth'
    torch.save([1, 2], path)
    with pytest.raises(KeyError, match=r'list.pth holds no state dict \(got list\)'):
        build_distiller(teacher_checkpoint=str(path))
    path = tmp_path / 'nested.pth'
    torch.save(dict(state_dict=[1]), path)
    with pytest.raises(KeyError, match=r"nested.pth holds no tensors; top-level keys: \['state_dict'\]"):
        build_distiller(teacher_checkpoint=str(path))


def test_mismatch_message_names_the_keys():
    with pytest.raises(KeyError) as info:
        build_distiller(teacher=teacher_cfg(depth=32))  # 5 blocks per stage, student 3
    message = str(info.value)
    assert 'missing in teacher []' in message and 'mis-shaped []' in message
    assert "teacher-only non-shortcut keys ['backbone.layer1.3.bn1.bias'" in message
    with pytest.raises(KeyError) as info:
        build_distiller(teacher=dict(teacher_cfg(), head=dict(HEAD, num_classes=7)))
    assert "mis-shaped ['head.fc.bias: teacher (7,) vs student (5,)'" in str(info.value)


def test_backbone_that_is_not_a_resnet_is_refused():
    with pytest.raises(TypeError, match=r'the student backbone \(MobileNetV2\) is not an '
                                        r'mmdet-style ResNet with res_layers'):
        StagewiseDistiller(backbone=dict(type='mmpretrain.MobileNetV2'),
                           teacher=teacher_cfg(), neck=NECK, head=HEAD)
    with pytest.raises(TypeError, match=r'the teacher backbone \(MobileNetV2\)'):
        StagewiseDistiller(backbone=dict(type='resvariants.PlainResNet', depth=20),
                           teacher=dict(teacher_cfg(), backbone=dict(type='MobileNetV2')),
                           neck=NECK, head=HEAD)


def test_stage_helpers_with_a_deep_stem_and_stage_attention():
    """backbone_stem / backbone_stage reproduce the trunk's forward with a deep stem and a
    stage-level attention (BAM after stages 1-3)."""
    from resvariants.models import ResNet
    torch.manual_seed(0)
    backbone = ResNet(depth=18, deep_stem=True, attention='bam', out_indices=(0, 1, 2, 3),
                      base_channels=16, stem_channels=16).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = backbone_stem(backbone, x)
        manual = []
        for i in range(4):
            out = backbone_stage(backbone, i, out)
            manual.append(out)
        expected = backbone(x)
    assert len(expected) == 4
    for a, b in zip(expected, manual):
        torch.testing.assert_close(a, b)


# --- exact messages, registration, stage attention (mutation testing, docs/testing.md) -------

def test_the_distiller_is_registered():
    from resvariants.registry import MODELS
    assert MODELS.get('StagewiseDistiller') is StagewiseDistiller


def test_student_parameters_leave_out_the_teacher(distiller):
    names = [n for n, _ in distiller._student_named_parameters()]
    assert names and not any(n.startswith('teacher.') for n in names)
    assert len(names) == sum(1 for n, _ in distiller.named_parameters()
                             if not n.startswith('teacher.'))


def test_exact_refusal_messages(tmp_path):
    with pytest.raises(TypeError) as info:
        StagewiseDistiller(backbone=dict(type='mmpretrain.MobileNetV2'),
                           teacher=teacher_cfg(), neck=NECK, head=HEAD)
    assert info.value.args[0] == ('the student backbone (MobileNetV2) is not an mmdet-style '
                                  'ResNet with res_layers; stage-wise distillation needs one')
    with pytest.raises(ValueError) as info:
        StagewiseDistiller(backbone=dict(type='resvariants.PlainResNet', depth=18),
                           teacher=teacher_cfg(), neck=NECK, head=HEAD)
    assert info.value.args[0] == 'student has 4 stages, teacher 3'
    with pytest.raises(TypeError) as info:
        build_distiller(teacher=dict(teacher_cfg(), type='mmdet.FasterRCNN'))
    assert info.value.args[0] == ("teacher must be an ImageClassifier config, "
                                  "got type='FasterRCNN'")
    path = tmp_path / 'list.pth'
    torch.save([1, 2], path)
    with pytest.raises(KeyError) as info:
        build_distiller(teacher_checkpoint=str(path))
    assert info.value.args[0] == f'{path} holds no state dict (got list)'
    bad = tmp_path / 'bad.pth'
    torch.save(dict(state_dict={'backbone.conv1.weight': torch.zeros(1)}), bad)
    with pytest.raises(KeyError, match=f'teacher checkpoint {bad}'):
        build_distiller(teacher_checkpoint=str(bad))


def test_prefixed_teacher_type_is_accepted():
    model = build_distiller(teacher=dict(teacher_cfg(), type='mmpretrain.ImageClassifier'))
    assert isinstance(model.teacher, ImageClassifier)


def test_a_stage_whose_output_does_not_fit_the_teacher_is_named():
    model = StagewiseDistiller(
        backbone=dict(type='resvariants.PlainResNet', depth=20, base_channels=8),
        teacher=teacher_cfg(), neck=NECK, head=dict(HEAD, in_channels=32),
        init_student_from_teacher=False)
    model.init_weights()
    model.set_phase(2)
    with pytest.raises(RuntimeError) as info:
        model.loss(batch()['inputs'], None)
    assert info.value.args[0] == ('stage 2: student output (4, 16, 14, 14) vs teacher '
                                  '(4, 32, 14, 14)')


def test_stage_attention_trains_with_its_stage():
    teacher = dict(teacher_cfg(), backbone=dict(teacher_cfg()['backbone'], attention='bam'))
    model = StagewiseDistiller(
        backbone=dict(type='resvariants.PlainResNet', depth=20, norm_eval=False,
                      attention='bam'),
        teacher=teacher, neck=NECK, head=HEAD)
    model.init_weights()
    attention = model.backbone.stage_attention(0)
    assert attention is not None
    assert model.stage_modules(0) == [model.backbone.layer1, attention]
    model.set_phase(1)
    model.train()
    assert attention.training and not model.backbone.layer2.training
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for p in attention.parameters()} <= trainable
    assert not {id(p) for p in model.backbone.stage_attention(1).parameters()} & trainable
    loss = model.loss(batch()['inputs'], None)['loss_stage1_l1']
    loss.backward()
    assert all(p.grad is not None for p in attention.parameters())
