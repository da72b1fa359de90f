"""Stage-wise distillation of a residual teacher into a plain student ("ResNet with No Res").

tgjjj/ResNet-Distillation (docs/architectures.md 4.2): the student is the teacher's network without
residual additions (``PlainResNet``), initialised from the teacher's weights. Training runs in
phases: phase ``k`` (k = 1 .. number of stages) trains only student stage ``k`` to reproduce
the teacher's stage-``k`` output, with the mean absolute (per-element L1) difference as the
loss, while the student's stem and earlier stages stay as they are; the last phase fine-tunes
the whole student with the classification head's loss (cross-entropy). The phase lengths and
learning rates come from ``StagewiseDistillHook`` (resvariants.engine).

Differences from the source, on purpose: the teacher runs in eval mode under ``no_grad`` (the
source leaves it in train mode, so its BN statistics drift); the frozen part of the student
runs in eval mode too (no BN statistics updates outside the stage being trained); the student
has no shortcut modules at all.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.registry import DefaultScope
from mmpretrain.models.classifiers import ImageClassifier
from torch.nn.modules.batchnorm import _BatchNorm

from resvariants.engine.strict_pretrained import load_state_dict_strictly
from resvariants.registry import MODELS
from resvariants.utils.safe_load import load_checkpoint_safely, state_dict_of

__all__ = ['StagewiseDistiller', 'backbone_stem', 'backbone_stage']

_TEACHER = 'teacher'


def backbone_stem(backbone, x):
    """The stem of an mmdet-style ResNet: (deep) stem conv(s), norm, ReLU, max-pool."""
    if backbone.deep_stem:
        x = backbone.stem(x)
    else:
        x = backbone.relu(backbone.norm1(backbone.conv1(x)))
    return backbone.maxpool(x)


def backbone_stage(backbone, index, x):
    """Stage ``index`` (0-based) of an mmdet-style ResNet, with its stage attention if any."""
    x = getattr(backbone, backbone.res_layers[index])(x)
    stage_attention = getattr(backbone, 'stage_attention', None)
    module = stage_attention(index) if stage_attention is not None else None
    return module(x) if module is not None else x


@MODELS.register_module()
class StagewiseDistiller(ImageClassifier):
    """An mmpretrain classifier (the plain student) trained stage by stage from a teacher.

    ``backbone`` / ``neck`` / ``head`` describe the student, exactly as in ``ImageClassifier``,
    so its checkpoints (which leave the teacher out) load into an ordinary classifier with the
    same backbone, and their ``backbone.*`` part into a detector.

    Args:
        backbone (dict): The student backbone, e.g.
            ``dict(type='resvariants.PlainResNet', depth=20)``.
        teacher (dict): The residual classifier: ``dict(backbone=..., neck=..., head=...)``
            (an ``ImageClassifier`` config; a ``type`` key, if present, must name it).
        teacher_checkpoint (str | None): Trained teacher weights (an mmpretrain checkpoint),
            loaded strictly by ``init_weights``. None leaves the teacher as initialised, which
            is only useful in tests.
        init_student_from_teacher (bool): Copy the teacher's weights into the student (every
            student key must exist in the teacher; the teacher's extra keys may only be
            shortcut ``downsample`` keys). Defaults to True, as in the source.
        distill_loss_weight (float): Factor of the stage L1 loss. Defaults to 1.
        neck, head, train_cfg, data_preprocessor, init_cfg: as ``ImageClassifier``.

    The phase is set with :meth:`set_phase` (``StagewiseDistillHook`` does it): phases
    ``1 .. num_stages`` distil one stage each, phase ``num_stages + 1`` fine-tunes.
    """

    def __init__(self, backbone, teacher, teacher_checkpoint=None, neck=None, head=None,
                 init_student_from_teacher=True, distill_loss_weight=1.0, train_cfg=None,
                 data_preprocessor=None, init_cfg=None):
        super().__init__(backbone=backbone, neck=neck, head=head, train_cfg=train_cfg,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.teacher = self._build_teacher(teacher)
        for param in self.teacher.parameters():
            param.requires_grad = False
        self.teacher.eval()
        self.teacher_checkpoint = teacher_checkpoint
        self.init_student_from_teacher = init_student_from_teacher
        self.distill_loss_weight = distill_loss_weight
        for name, module in (('student', self.backbone), ('teacher', self.teacher.backbone)):
            if not hasattr(module, 'res_layers'):
                raise TypeError(f'the {name} backbone ({type(module).__name__}) is not an '
                                f'mmdet-style ResNet with res_layers; stage-wise distillation '
                                f'needs one')
        self.num_stages = len(self.backbone.res_layers)
        if len(self.teacher.backbone.res_layers) != self.num_stages:
            raise ValueError(f'student has {self.num_stages} stages, teacher '
                             f'{len(self.teacher.backbone.res_layers)}')
        # requires_grad as the student was built (frozen_stages etc.); phases only narrow it
        self._base_requires_grad = {name: p.requires_grad
                                    for name, p in self._student_named_parameters()}
        self.register_state_dict_post_hook(_drop_teacher_keys)
        self.register_load_state_dict_pre_hook(_fill_teacher_keys)
        self.phase = None
        self.set_phase(1)

    @staticmethod
    def _build_teacher(cfg):
        cfg = dict(cfg)
        kind = str(cfg.pop('type', 'ImageClassifier')).rpartition('.')[2]
        if kind != 'ImageClassifier':
            raise TypeError(f'teacher must be an ImageClassifier config, got type={kind!r}')
        cfg.setdefault('data_preprocessor', nn.Identity())  # inputs arrive preprocessed
        scope = cfg.pop('_scope_', None)  # set by mmengine on dicts inherited from 'pkg::' bases
        with DefaultScope.overwrite_default_scope(scope):
            return ImageClassifier(**cfg)

    @property
    def num_phases(self):
        """Distillation phases (one per stage) plus the fine-tuning phase."""
        return self.num_stages + 1

    @property
    def distilling(self):
        """True in phases ``1 .. num_stages`` (stage-wise L1), False when fine-tuning."""
        return self.phase <= self.num_stages

    def _student_named_parameters(self):
        prefix = _TEACHER + '.'
        return [(n, p) for n, p in self.named_parameters() if not n.startswith(prefix)]

    def stage_modules(self, index):
        """The student modules of stage ``index`` (0-based): the res layer and its attention."""
        modules = [getattr(self.backbone, self.backbone.res_layers[index])]
        stage_attention = getattr(self.backbone, 'stage_attention', None)
        if stage_attention is not None and stage_attention(index) is not None:
            modules.append(stage_attention(index))
        return modules

    def set_phase(self, phase):
        """Enter ``phase``: only its parameters require grad, only its modules train."""
        if not 1 <= phase <= self.num_phases:
            raise ValueError(f'phase must be in 1..{self.num_phases} ({self.num_stages} stage '
                             f'phases + fine-tuning), got {phase}')
        self.phase = phase
        if self.distilling:
            active = {id(p) for m in self.stage_modules(phase - 1) for p in m.parameters()}
        else:
            active = None
        for name, param in self._student_named_parameters():
            param.requires_grad = self._base_requires_grad[name] and (
                active is None or id(param) in active)
        self.train(self.training)

    def train(self, mode=True):
        super().train(mode)
        self.teacher.eval()
        if mode and self.phase is not None and self.distilling:
            for module in (self.backbone, self.neck, self.head):
                if module is not None:
                    module.eval()
            for module in self.stage_modules(self.phase - 1):
                module.train()
                if self.backbone.norm_eval:
                    for norm in module.modules():
                        if isinstance(norm, _BatchNorm):
                            norm.eval()
        return self

    def loss(self, inputs, data_samples):
        """Stage-``k`` L1 to the teacher in distillation phases, the head's loss afterwards."""
        if not self.distilling:
            return super().loss(inputs, data_samples)
        index = self.phase - 1
        with torch.no_grad():
            target = backbone_stem(self.teacher.backbone, inputs)
            for i in range(index + 1):
                target = backbone_stage(self.teacher.backbone, i, target)
            features = backbone_stem(self.backbone, inputs)
            for i in range(index):
                features = backbone_stage(self.backbone, i, features)
        features = backbone_stage(self.backbone, index, features)
        if features.shape != target.shape:
            raise RuntimeError(f'stage {index + 1}: student output {tuple(features.shape)} vs '
                               f'teacher {tuple(target.shape)}')
        loss = F.l1_loss(features, target) * self.distill_loss_weight
        return {f'loss_stage{index + 1}_l1': loss}

    def init_weights(self):
        """Default inits, then the teacher checkpoint, then teacher -> student."""
        super().init_weights()
        if self.teacher_checkpoint is not None:
            self.load_teacher(self.teacher_checkpoint)
        else:
            print_log('StagewiseDistiller: no teacher_checkpoint, the teacher keeps its '
                      'initialisation', logger='current')
        if self.init_student_from_teacher:
            self.copy_teacher_to_student()

    def load_teacher(self, path):
        """Load a classifier checkpoint strictly into the teacher."""
        state = state_dict_of(load_checkpoint_safely(path, map_location='cpu'), path)
        load_state_dict_strictly(self.teacher, state, source=f'teacher checkpoint {path}')
        print_log(f'StagewiseDistiller: teacher loaded from {path}', logger='current')

    def copy_teacher_to_student(self):
        """Initialise the student with the teacher's weights (its shortcuts are dropped)."""
        teacher_state = self.teacher.state_dict()
        student_state = self.state_dict()
        missing = sorted(k for k in student_state if k not in teacher_state)
        mis_shaped = sorted(
            f'{k}: teacher {tuple(teacher_state[k].shape)} vs student {tuple(v.shape)}'
            for k, v in student_state.items()
            if k in teacher_state and teacher_state[k].shape != v.shape)
        extra = sorted(k for k in teacher_state
                       if k not in student_state and '.downsample.' not in k)
        if missing or mis_shaped or extra:
            raise KeyError(
                'the teacher does not match the student (same network minus shortcuts '
                f'expected): missing in teacher {missing[:10]}, mis-shaped {mis_shaped[:10]}, '
                f'teacher-only non-shortcut keys {extra[:10]}')
        self.load_state_dict({k: teacher_state[k] for k in student_state}, strict=True)
        dropped = len(teacher_state) - len(student_state)
        print_log(f'StagewiseDistiller: student initialised from the teacher '
                  f'({len(student_state)} tensors; {dropped} shortcut tensors dropped)',
                  logger='current')


def _drop_teacher_keys(module, state_dict, prefix, local_metadata):
    """Checkpoints hold the student only: it is what the phases train and what gets deployed."""
    teacher_prefix = prefix + _TEACHER + '.'
    for key in [k for k in state_dict if k.startswith(teacher_prefix)]:
        del state_dict[key]


def _fill_teacher_keys(module, state_dict, prefix, local_metadata, strict, missing_keys,
                       unexpected_keys, error_msgs):
    """Student-only checkpoints load strictly: the teacher keeps its current weights."""
    for key, value in module.teacher.state_dict().items():
        state_dict.setdefault(f'{prefix}{_TEACHER}.{key}', value)
