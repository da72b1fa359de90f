"""epsilon-ResNet, the rest of the source's recipe (docs/architectures.md 2.3, 2.5): the side
head evaluated in validation (``side/accuracy/top1`` beside ``accuracy/top1``) and the CIFAR
weight-decay staircase 2e-4 x 0.2^floor(step / 480000)."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.optim import build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS, DefaultScope
from mmpretrain.structures import DataSample

from resvariants.converters.epsilon_compact import compact_config
from resvariants.evaluation import SideAccuracy
from resvariants.models.classifiers.epsilon_classifier import EpsilonImageClassifier

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PROJECT = osp.join(REPO, 'projects', 'epsilon_resnet', 'configs')
CIFAR = osp.join(PROJECT, 'eps-preact-resnet110_cifar10.py')
SIDE_CONFIGS = ['eps-preact-resnet110_cifar10.py', 'eps-preact-resnet110_cls-small.py',
                'eps-resnet101_8xb32_in1k_eps2.0.py', 'eps-resnet101_8xb32_in1k_eps2.1.py',
                'eps-preact-resnet101_8xb32_in1k_eps2.0.py',
                'eps-preact-resnet101_8xb32_in1k_eps2.1.py', 'eps-resnet50_cls-small.py']


@pytest.fixture(scope='module')
def classifier():
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = EpsilonImageClassifier(
            backbone=dict(type='resvariants.PreActResNetCIFAR', depth=14, epsilon=2.5,
                          base_channels=4),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=4, in_channels=16))
    model.init_weights()
    with torch.no_grad():  # random running statistics: eval differs from train-mode BN
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    return model.eval()


def _side_logits_by_hand(model, x):
    """BN(eval) -> ReLU -> global average pool -> fc on the output of layer2[n/2]."""
    seen = {}
    handle = model.backbone.layer2[1].register_forward_hook(
        lambda m, i, o: seen.__setitem__('x', o.clone()))
    with torch.no_grad():
        model.extract_feat(x)
    handle.remove()
    head = model.side_head
    norm = head.bn
    y = (seen['x'] - norm.running_mean[:, None, None]) / (
        norm.running_var[:, None, None] + norm.eps).sqrt()
    y = torch.relu(y * norm.weight[:, None, None] + norm.bias[:, None, None])
    return y.mean(dim=(2, 3)) @ head.fc.weight.t() + head.fc.bias


def test_validation_logs_the_side_heads_top1_computed_from_its_logits(classifier):
    model = copy.deepcopy(classifier)
    assert model.side_position == (1, 1)  # depth 14: n = 2, block n/2 of stage 2
    x = torch.randn(8, 3, 32, 32)
    side_logits = _side_logits_by_hand(model, x)
    side_pred = side_logits.argmax(1)
    # labels: the side head is right on samples 0-4 (top-1 62.5 %)
    labels = torch.cat([side_pred[:5], (side_pred[5:] + 1) % 4])
    # the main head predicts one class whose share of the labels is not 5 / 8
    main_class = next(k for k in range(4) if int((labels == k).sum()) != 5)
    with torch.no_grad():
        model.head.fc.weight.zero_()
        model.head.fc.bias.copy_(torch.eye(4)[main_class])
    samples = [DataSample().set_gt_label(int(label)) for label in labels]
    with torch.no_grad():
        predictions = model.predict(x, samples)
    for prediction, logits in zip(predictions, side_logits):
        torch.testing.assert_close(prediction.side_pred_score, torch.softmax(logits, 0),
                                   rtol=1e-5, atol=1e-6)
    assert model.side_block.side_output is None  # released after predict
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        evaluator = Evaluator([dict(type='Accuracy', topk=(1, )),
                               dict(type='resvariants.SideAccuracy', topk=(1, ))])
    evaluator.process(predictions)
    metrics = evaluator.evaluate(len(predictions))
    assert set(metrics) == {'accuracy/top1', 'side/accuracy/top1'}
    assert metrics['side/accuracy/top1'] == pytest.approx(100 * 5 / 8)
    main = (labels == main_class).float().mean().item() * 100
    assert metrics['accuracy/top1'] == pytest.approx(main) != 100 * 5 / 8
    # the main head's predictions are those of mmpretrain's ImageClassifier
    plain = model.head.predict(model.extract_feat(x))
    assert all(torch.equal(a.pred_score, b.pred_score) for a, b in zip(predictions, plain))


def test_predict_without_side_scores_and_the_metrics_message(classifier):
    model = copy.deepcopy(classifier)
    model.predict_side = False
    predictions = model.predict(torch.randn(2, 3, 32, 32),
                                [DataSample().set_gt_label(0) for _ in range(2)])
    assert 'side_pred_score' not in predictions[0]
    metric = SideAccuracy()
    with pytest.raises(KeyError) as error:
        metric.process(None, [p.to_dict() for p in predictions])
    assert error.value.args[0] == (
        'SideAccuracy: a prediction has no "side_pred_score" (the side head\'s scores); it '
        'needs resvariants.EpsilonImageClassifier with a side_head. For other models remove '
        'SideAccuracy from val_evaluator / test_evaluator')


@pytest.mark.parametrize('name', SIDE_CONFIGS)
def test_epsilon_configs_evaluate_the_side_head(name):
    cfg = Config.fromfile(osp.join(PROJECT, name))
    types = [m['type'] for m in cfg.val_evaluator]
    assert types == ['Accuracy', 'resvariants.SideAccuracy']
    assert cfg.val_evaluator[0]['topk'] == cfg.val_evaluator[1]['topk']
    assert cfg.test_evaluator == cfg.val_evaluator
    assert cfg.model.type == 'resvariants.EpsilonImageClassifier'
    # the compact export has no side head, and so no side metric
    compact = compact_config(cfg, dict(type='resvariants.CompactResNet'))
    assert [m['type'] for m in compact.val_evaluator] == ['Accuracy']
    assert [m['type'] for m in compact.test_evaluator] == ['Accuracy']


def test_preact_imagenet_config_is_the_gated_preact_trunk():
    cfg = Config.fromfile(osp.join(PROJECT, 'eps-preact-resnet101_8xb32_in1k_eps2.1.py'))
    backbone = cfg.model.backbone
    assert (backbone.type, backbone.depth, backbone.preact, backbone.epsilon) == (
        'resvariants.EpsilonResNet', 101, True, 2.1)
    assert cfg.optim_wrapper.optimizer.nesterov and cfg.train_cfg.max_epochs == 110


def _cifar_wd_scheduler(cfg, model, **override):
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    (scheduler_cfg, ) = cfg.param_scheduler
    return wrapper, PARAM_SCHEDULERS.build(dict(scheduler_cfg, optimizer=wrapper, **override))


def test_cifar_weight_decay_follows_the_sources_staircase():
    """2e-4 x 0.2^floor(step / 480000) on conv / fc weights, per iteration; BN and biases stay
    undecayed. The step is shortened to 3 iterations to walk several stairs."""
    cfg = Config.fromfile(CIFAR)
    (scheduler_cfg, ) = cfg.param_scheduler
    assert scheduler_cfg == dict(type='StepParamScheduler', param_name='weight_decay',
                                 step_size=480000, gamma=0.2, by_epoch=False)
    from resvariants.models import PreActResNetCIFAR
    model = torch.nn.Sequential(PreActResNetCIFAR(depth=8, base_channels=4),
                                torch.nn.Linear(16, 10))
    wrapper, scheduler = _cifar_wd_scheduler(cfg, model, step_size=3)
    group_of = {id(p): g for g in wrapper.optimizer.param_groups for p in g['params']}
    decayed = [p for p in model.parameters() if p.dim() > 1]
    undecayed = [p for p in model.parameters() if p.dim() == 1]
    for step in range(10):  # the value the optimizer uses in iteration `step`
        expected = 2e-4 * 0.2**(step // 3)
        assert all(group_of[id(p)]['weight_decay'] == pytest.approx(expected, rel=1e-12)
                   for p in decayed)
        assert all(group_of[id(p)]['weight_decay'] == 0. for p in undecayed)
        scheduler.step()
    # at the source's step size: unchanged until iteration 480000, then x 0.2
    wrapper, scheduler = _cifar_wd_scheduler(cfg, model)
    scheduler.last_step = 479999
    scheduler.step()
    assert group_of_first_decayed(wrapper, decayed) == pytest.approx(2e-4 * 0.2)


def group_of_first_decayed(wrapper, decayed):
    ids = {id(p) for p in decayed}
    return next(g['weight_decay'] for g in wrapper.optimizer.param_groups
                if any(id(p) in ids for p in g['params']))
