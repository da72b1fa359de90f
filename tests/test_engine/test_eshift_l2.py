"""The e-shifted L2 regulariser: its gradient, how the optimizer applies it, its configs."""
import math
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmcv.cnn.bricks.conv_ws import ConvWS2d
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from resvariants.engine.eshift_l2 import (EShiftL2OptimWrapperConstructor, eshift_l2_gradient,
                                          eshift_l2_penalty)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONSTRUCTOR = 'resvariants.EShiftL2OptimWrapperConstructor'


@pytest.mark.parametrize('shape', [(8, 4, 3, 3), (16, 2, 1, 1), (6, 4, 3, 3)])
@pytest.mark.parametrize('lam,eps', [(1e-4, 1e-3), (0.5, 0.3), (2.0, 0.0)])
def test_added_gradient_is_the_gradient_of_the_penalty(shape, lam, eps):
    # R = lam/2 * sum_f [(||w_f - mu_f|| - eps sqrt(n_f - 1))^2 + n_f mu_f^2]
    weight = (torch.randn(shape, dtype=torch.float64) * 0.3 + 0.05).requires_grad_()
    penalty = eshift_l2_penalty(weight, lam, eps)
    n = math.prod(shape[1:])
    # the objective written out filter by filter, independently of the helper
    expected = sum(((weight[f].detach().flatten() - weight[f].detach().mean()).norm()
                    - eps * math.sqrt(n - 1))**2 + n * weight[f].detach().mean()**2
                   for f in range(shape[0])) * lam / 2
    torch.testing.assert_close(penalty.detach(), expected)
    (autograd, ) = torch.autograd.grad(penalty, weight)
    torch.testing.assert_close(eshift_l2_gradient(weight.detach(), lam, eps), autograd,
                               rtol=1e-10, atol=1e-14)


def test_gradient_pulls_the_filter_std_toward_eps():
    weight = torch.randn(4, 8, 3, 3, dtype=torch.float64)
    for eps in (0.5 * weight.flatten(1).std(1).min().item(), 3.0):
        moved = weight - 0.1 * eshift_l2_gradient(weight, 1.0, eps)
        before = (weight.flatten(1).std(1) - eps).abs()
        after = (moved.flatten(1).std(1) - eps).abs()
        assert torch.all(after < before)
        assert torch.all(moved.flatten(1).mean(1).abs() <= weight.flatten(1).mean(1).abs())


class _Net(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = ConvWS2d(4, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.dwconv = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.grouped = nn.Conv2d(8, 8, 1, groups=2, bias=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = self.grouped(self.dwconv(torch.relu(self.bn(self.conv(x)))))
        return self.fc(x.mean((2, 3)))


def _build(model, lam=0.01, eps=0.05, **optimizer):
    cfg = dict(type='OptimWrapper', constructor=CONSTRUCTOR, eshift_l2=dict(lam=lam, eps=eps),
               optimizer=dict(type='SGD', lr=1.0, momentum=0., weight_decay=0.1, **optimizer),
               paramwise_cfg=dict(bias_decay_mult=0.))
    return build_optim_wrapper(model, cfg)


def test_optimizer_step_adds_the_term_and_keeps_ordinary_decay_elsewhere():
    torch.manual_seed(0)
    model = _Net()
    with torch.no_grad():
        model.bn.weight.uniform_(0.5, 1.5)
    wrapper = _build(model)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    wrapper.step()  # lr 1, no momentum, zero loss gradient: the update is -(regulariser terms)
    after = dict(model.named_parameters())
    for name in ('conv.weight', 'grouped.weight'):  # e-shifted, no ordinary decay
        expected = before[name] - eshift_l2_gradient(before[name], 0.01, 0.05)
        torch.testing.assert_close(after[name].detach(), expected)
    torch.testing.assert_close(after['dwconv.weight'].detach(), before['dwconv.weight'])
    for name in ('fc.weight', 'bn.weight'):  # ordinary weight decay 0.1
        torch.testing.assert_close(after[name].detach(), before[name] * 0.9)
    for name in ('fc.bias', 'bn.bias', 'grouped.bias'):  # bias_decay_mult=0
        torch.testing.assert_close(after[name].detach(), before[name])


def test_term_is_added_before_momentum_like_a_gradient():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False))
    wrapper = build_optim_wrapper(model, dict(
        constructor=CONSTRUCTOR, eshift_l2=dict(lam=0.2, eps=0.1),
        optimizer=dict(type='SGD', lr=0.5, momentum=0.9)))
    weight = model[0].weight
    reference = weight.detach().clone().requires_grad_()
    buffer = None
    for _ in range(3):
        model.zero_grad()
        loss = (model(torch.ones(1, 3, 3, 3))**2).sum()
        loss.backward()
        wrapper.step()
        # plain momentum SGD on loss + R(w)
        objective = (torch.nn.functional.conv2d(torch.ones(1, 3, 3, 3), reference)**2).sum() \
            + eshift_l2_penalty(reference, 0.2, 0.1)
        (grad, ) = torch.autograd.grad(objective, reference)
        buffer = grad if buffer is None else 0.9 * buffer + grad
        reference = (reference - 0.5 * buffer).detach().requires_grad_()
    torch.testing.assert_close(weight.detach(), reference.detach(), rtol=1e-5, atol=1e-6)


def test_tags_survive_an_optimizer_state_round_trip():
    model = _Net()
    state = _build(model, lam=0.3, eps=0.02).optimizer.state_dict()
    fresh = _build(model, lam=0.3, eps=0.02).optimizer
    fresh.load_state_dict(state)
    tagged = [g for g in fresh.param_groups if g.get('eshift_lambda')]
    assert len(tagged) == 2 and all(g['eshift_eps'] == 0.02 for g in tagged)


@pytest.mark.parametrize('settings,message', [
    (dict(lam=-1.), 'eshift_l2.lam must be a finite number > 0, got -1.0'),
    (dict(lam=0.), 'eshift_l2.lam must be a finite number > 0, got 0.0'),
    (dict(lam=float('inf')), 'eshift_l2.lam must be a finite number > 0, got inf'),
    (dict(eps=float('nan')), 'eshift_l2.eps must be a finite number >= 0, got nan'),
    (dict(eps=-1e-3), 'eshift_l2.eps must be a finite number >= 0, got -0.001'),
    (dict(eps='1e-3'), "eshift_l2.eps must be a finite number >= 0, got '1e-3'"),
])
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValueError) as error:
        EShiftL2OptimWrapperConstructor(
            dict(optimizer=dict(type='SGD', lr=0.1), eshift_l2=settings))
    assert str(error.value) == message


def test_unknown_setting_is_refused():
    with pytest.raises(KeyError) as error:
        EShiftL2OptimWrapperConstructor(
            dict(optimizer=dict(type='SGD', lr=0.1), eshift_l2=dict(lam=1e-4, mineps=1e-3)))
    assert error.value.args[0] == 'eshift_l2 takes "lam" and "eps", got unknown keys [\'mineps\']'


@pytest.mark.parametrize('settings,lam,eps', [
    (None, 1e-4, 1e-3), (dict(), 1e-4, 1e-3),  # the source's ImageNet defaults (--lam, --mineps)
    (dict(eps=0.), 1e-4, 0.),                  # eps 0 is valid (the term then shrinks to L2)
    (dict(lam=3e-5, eps=0.5), 3e-5, 0.5),
])
def test_settings_and_defaults_reach_the_optimizer(settings, lam, eps):
    cfg = dict(constructor=CONSTRUCTOR, optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4))
    if settings is not None:
        cfg['eshift_l2'] = settings
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 1, groups=4))
    groups = build_optim_wrapper(model, cfg).optimizer.param_groups
    tagged = [g for g in groups if g.get('eshift_lambda')]
    assert len(tagged) == 1 and tagged[0]['params'] == [model[0].weight]
    assert (tagged[0]['eshift_lambda'], tagged[0]['eshift_eps']) == (lam, eps)
    assert all('eshift_l2' not in g for g in groups)
    # without paramwise_cfg the one group is split in three: each parameter is in exactly one
    assert [[id(p) for p in g['params']] for g in groups] == [
        [id(model[0].bias), id(model[1].bias)], [id(model[0].weight)], [id(model[1].weight)]]
    assert [(g['lr'], g['weight_decay']) for g in groups] == [(0.1, 1e-4), (0.1, 0.), (0.1, 0.)]


def test_eps_zero_term_is_plain_l2_on_the_filter():
    # eps = 0: dR/dw = lam * [(w - mu) + mu] = lam * w, the gradient of lam/2 * ||w||^2
    weight = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(eshift_l2_gradient(weight, 0.3, 0.), 0.3 * weight)


class _Wrapper(nn.Module):
    """Stands for a model wrapper (DDP-like): the model is its ``module``."""

    def __init__(self, module):
        super().__init__()
        self.module = module


def test_wrapped_model_and_unused_weights():
    torch.manual_seed(0)
    model = _Net()
    wrapper = _build(_Wrapper(model))
    groups = wrapper.optimizer.param_groups
    tagged = [p for g in groups if g.get('eshift_lambda') for p in g['params']]
    assert {id(p) for p in tagged} == {id(model.conv.weight), id(model.grouped.weight)}
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for name, p in model.named_parameters():
        p.grad = None if name == 'conv.weight' else torch.zeros_like(p)
    wrapper.step()  # a weight without a gradient (unused this step) is left alone
    torch.testing.assert_close(model.conv.weight.detach(), before['conv.weight'])
    expected = before['grouped.weight'] - eshift_l2_gradient(before['grouped.weight'], 0.01, 0.05)
    torch.testing.assert_close(model.grouped.weight.detach(), expected)


@pytest.mark.parametrize('name,eps,groups', [
    ('ws_resnet50_eshift_in1k.py', 1e-3, 1), ('ws_resnet101_eshift_in1k.py', 1e-6, 1),
    ('ws_resnext50_32x4d_eshift_in1k.py', 1e-3, 32), ('ws_resnext101_32x4d_eshift_in1k.py', 1e-3, 32)
])
def test_ws_eshift_configs(name, eps, groups):
    from resvariants.models import ResNet
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'imagenet', name))
    backbone_cfg = {k: v for k, v in cfg.model.backbone.items() if k != 'type'}
    backbone = ResNet(**dict(backbone_cfg, base_channels=8))  # narrow copy, same structure
    convs = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(isinstance(m, ConvWS2d) for m in convs)  # stem, blocks, shortcuts
    assert backbone.layer1[0].conv2.groups == groups
    wrapper = build_optim_wrapper(backbone, cfg.optim_wrapper)
    groups_by_param = {id(p): g for g in wrapper.optimizer.param_groups for p in g['params']}
    for conv in convs:
        group = groups_by_param[id(conv.weight)]
        assert (group['weight_decay'], group['eshift_lambda'], group['eshift_eps']) == (
            0., 1e-4, eps)
    assert groups_by_param[id(backbone.bn1.weight)]['weight_decay'] == 1e-4
    assert groups_by_param[id(backbone.bn1.bias)]['weight_decay'] == 0.
