"""Plain (shortcut-free) backbones: layout, no shortcut at run time, shapes, detector step."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from resvariants.models import CifarResNet, PlainResNet, ResNet, RMPlainResNet
from resvariants.models.backbones import BasicBlock, Bottleneck


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_cifar_resnet20_matches_the_source_teacher(reference_figures):
    figures = reference_figures['resnet_no_res']['rnr_resnet20_teacher_cifar100']
    model = CifarResNet(depth=20).eval()
    assert n_params(model) + 64 * 100 + 100 == figures['params']
    outs = model(torch.randn(1, 3, 28, 28))
    assert [list(o.shape) for o in outs] == figures['output_shapes'][1:4]


@pytest.mark.parametrize('plain_cls,residual_cls,kwargs', [
    (PlainResNet, ResNet, dict(depth=18, base_channels=8)),
    (PlainResNet, ResNet, dict(depth=50, base_channels=8)),
    (PlainResNet, CifarResNet, dict(depth=20)),
])
def test_plain_is_the_residual_network_minus_its_shortcuts(plain_cls, residual_cls, kwargs):
    plain, residual = plain_cls(**kwargs), residual_cls(**kwargs)
    plain_keys, residual_keys = set(plain.state_dict()), set(residual.state_dict())
    shortcut_keys = {k for k in residual_keys if '.downsample.' in k}
    assert shortcut_keys and plain_keys == residual_keys - shortcut_keys
    shortcut_params = sum(p.numel() for n, p in residual.named_parameters() if '.downsample.' in n)
    assert n_params(plain) == n_params(residual) - shortcut_params
    assert not any(getattr(m, 'downsample', None) is not None for m in plain.modules())


def test_plain_blocks_never_run_a_shortcut(monkeypatch):
    def fail(self, x):
        raise AssertionError('shortcut executed in a plain block')

    monkeypatch.setattr(Bottleneck, 'shortcut', fail)
    model = PlainResNet(depth=50, base_channels=8, out_indices=(3, )).eval()
    x = torch.randn(2, 3, 32, 32)
    expected = model.maxpool(model.relu(model.norm1(model.conv1(x))))
    for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in layer:
            expected = torch.relu(block.residual(expected))
    torch.testing.assert_close(model(x)[0], expected)


def test_plain_basic_block_output_is_its_residual_branch():
    block = BasicBlock(8, 16, stride=2, merge='NoShortcut').eval()
    x = torch.rand(2, 8, 10, 10)
    assert torch.equal(block(x), torch.relu(block.residual(x)))


@pytest.mark.parametrize('model,size,expected', [
    (PlainResNet(depth=18, base_channels=8), 64,
     [(8, 16, 16), (16, 8, 8), (32, 4, 4), (64, 2, 2)]),
    (PlainResNet(depth=50, base_channels=8, out_indices=(0, 3)), 64,
     [(32, 16, 16), (256, 2, 2)]),
    (PlainResNet(depth=20), 28, [(16, 28, 28), (32, 14, 14), (64, 7, 7)]),
    (PlainResNet(depth=18, stem='cifar', base_channels=8, out_indices=(3, )), 32,
     [(64, 4, 4)]),
    (RMPlainResNet(depth=50, base_channels=8, out_indices=(1, 2)), 64,
     [(64, 8, 8), (128, 4, 4)]),
    (RMPlainResNet(depth=20), 30, [(16, 30, 30), (32, 15, 15), (64, 8, 8)]),
])
def test_output_shapes(model, size, expected):
    outs = model.eval()(torch.randn(2, 3, size, size))
    assert [tuple(o.shape[1:]) for o in outs] == expected


def test_bottleneck_attention_sits_after_conv3():
    model = PlainResNet(depth=50, base_channels=16, attention='se').eval()
    block = model.layer3[1]
    assert block.after_conv3_plugin_names and not block.after_conv2_plugin_names
    assert model(torch.randn(1, 3, 32, 32))[-1].shape[1] == 512


@pytest.mark.parametrize('cls,kwargs,error', [
    (PlainResNet, dict(depth=50, zero_init_residual=True), 'zero_init_residual'),
    (PlainResNet, dict(depth=50, sk=dict(groups=32)), 'plain ResNet blocks only'),
    (PlainResNet, dict(depth=50, groups=32), 'plain ResNet blocks only'),
    (PlainResNet, dict(depth=20, stem='imagenet'), 'needs stem="cifar"'),
    (PlainResNet, dict(depth=18, stem='vgg'), 'stem must be one of'),
    (PlainResNet, dict(depth=20, num_stages=4), '3 stages'),
    (CifarResNet, dict(depth=50, deep_stem=True), 'deep_stem'),
    (RMPlainResNet, dict(depth=50, attention='se'), 'no attention'),
    (RMPlainResNet, dict(depth=50, avg_down=True), 'avg_down'),
])
def test_bad_arguments_are_named(cls, kwargs, error):
    with pytest.raises(ValueError, match=error):
        cls(**kwargs)


def test_unknown_depth():
    with pytest.raises(KeyError, match='valid depths'):
        PlainResNet(depth=19)


@pytest.mark.parametrize('scope', ['mmdet', 'mmpretrain'])
@pytest.mark.parametrize('type_name', ['PlainResNet', 'RMPlainResNet', 'CifarResNet'])
def test_build_from_config_in_framework_scopes(scope, type_name):
    import mmdet.models  # noqa: F401
    import mmpretrain.models  # noqa: F401
    registry = {'mmdet': 'mmdet.registry', 'mmpretrain': 'mmpretrain.registry'}[scope]
    models = __import__(registry, fromlist=['MODELS']).MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = models.build(dict(type=f'resvariants.{type_name}', depth=20))
    assert type(model).__name__ == type_name


def tiny_faster_rcnn(backbone):
    """Faster R-CNN + FPN (mmdet's base model) around a width-8 backbone."""
    import mmdet
    from mmdet.registry import MODELS
    cfg = Config.fromfile(osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', '_base_',
                                   'models', 'faster-rcnn_r50_fpn.py')).model
    cfg.backbone = backbone
    cfg.neck.in_channels = [8, 16, 32, 64]
    cfg.neck.out_channels = 16
    cfg.rpn_head.in_channels = cfg.rpn_head.feat_channels = 16
    cfg.roi_head.bbox_roi_extractor.out_channels = 16
    cfg.roi_head.bbox_head.in_channels = 16
    cfg.roi_head.bbox_head.fc_out_channels = 32
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(cfg)


@pytest.mark.parametrize('backbone_type', ['PlainResNet', 'RMPlainResNet'])
def test_detector_train_step(backbone_type):
    import mmdet.models  # noqa: F401
    from mmdet.testing import demo_mm_inputs
    from mmengine.optim import OptimWrapper
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    backbone = dict(type=f'resvariants.{backbone_type}', depth=18, base_channels=8,
                    frozen_stages=1, norm_eval=True, out_indices=(0, 1, 2, 3))
    detector = tiny_faster_rcnn(backbone)
    detector.init_weights()
    detector.train()
    frozen = [p.clone() for p in detector.backbone.layer1.parameters()]
    trained = [p.clone() for p in detector.backbone.layer2.parameters()]
    optim = OptimWrapper(torch.optim.SGD(detector.parameters(), lr=0.01, momentum=0.9))
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 96, 128)] * 2, num_items=[3, 2])
    losses = detector.train_step(data, optim)
    assert all(torch.isfinite(v).all() for k, v in losses.items() if 'loss' in k)
    assert {'loss_rpn_cls', 'loss_cls', 'loss_bbox'} <= set(losses)
    assert all(torch.equal(a, b) for a, b in zip(frozen, detector.backbone.layer1.parameters()))
    assert not all(torch.equal(a, b)
                   for a, b in zip(trained, detector.backbone.layer2.parameters()))
