"""Contracts of the shared trunk: mmdet semantics, parameter counts, plugins, transfer."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from torch.nn.modules.batchnorm import _BatchNorm

from resvariants.models import ResNet
from resvariants.models.attention import attention_aliases

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
VARIANTS = ['resnet', 'se_resnet', 'sk_resnet', 'cbam_resnet', 'bam_resnet', 'gc_resnet',
            'sge_resnet', 'srm_resnet']
REFERENCE_KEY = {  # where reference_figures.json keeps each variant's figures
    'gc_resnet': 'pytorchinsight_constructed',
    'srm_resnet': ('third_party_reference_impls', 'srm_resnet{depth}_official'),
}


def reference_params(figures, variant, depth):
    where = REFERENCE_KEY.get(variant, 'pytorchinsight')
    if isinstance(where, tuple):
        return figures[where[0]][where[1].format(depth=depth)]['params']
    return figures[where][f'{variant}{depth}']['params']


def build_classifier(variant, depth):
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'imagenet', f'{variant}{depth}_in1k.py'))
    return MODELS.build(cfg.model)


@pytest.mark.parametrize('depth', [50, 101])
@pytest.mark.parametrize('variant', VARIANTS)
def test_imagenet_config_params_equal_reference(variant, depth, reference_figures):
    model = build_classifier(variant, depth)
    n = sum(p.numel() for p in model.parameters())
    assert n == reference_params(reference_figures, variant, depth)


@pytest.mark.parametrize('attention', [None, 'se', 'sge'])
def test_basic_block_depths_take_attention(attention, reference_figures):
    model = ResNet(depth=18, attention=attention, out_indices=(3, ))
    n = sum(p.numel() for p in model.parameters()) + 512 * 1000 + 1000  # + fc head
    key = f'{attention}_resnet18' if attention else 'resnet18'
    assert n == reference_figures['pytorchinsight'][key]['params']


@pytest.mark.parametrize('out_indices', [(0, ), (3, ), (0, 1, 2, 3), (1, 2)])
@pytest.mark.parametrize('attention', [None] + sorted(attention_aliases()))
def test_output_shapes(attention, out_indices):
    model = ResNet(depth=50, base_channels=16, attention=attention, out_indices=out_indices)
    model.eval()
    outs = model(torch.randn(1, 3, 64, 96))
    expected = {0: (64, 16, 24), 1: (128, 8, 12), 2: (256, 4, 6), 3: (512, 2, 3)}
    assert [tuple(o.shape[1:]) for o in outs] == [expected[i] for i in out_indices]


def test_sk_and_resnext_shapes():
    for kwargs in (dict(sk=dict(groups=32)), dict(groups=32, base_width=4),
                   dict(groups=32, base_width=4, attention='sge')):
        model = ResNet(depth=50, out_indices=(0, 3), **kwargs).eval()
        outs = model(torch.randn(1, 3, 64, 64))
        assert [o.shape[1] for o in outs] == [256, 2048]


def test_resnext50_32x4d_param_count():
    # torchvision resnext50_32x4d has 25,028,904 parameters including its 2049x1000 head
    model = ResNet(depth=50, groups=32, base_width=4)
    assert sum(p.numel() for p in model.parameters()) + 2048 * 1000 + 1000 == 25_028_904


def _norm_states(module):
    return [m.training for m in module.modules() if isinstance(m, _BatchNorm)]


@pytest.mark.parametrize('attention', ['srm', 'bam', 'cbam'])
def test_norm_eval_covers_attention_norms(attention):
    model = ResNet(depth=50, base_channels=16, attention=attention, norm_eval=True)
    model.train()
    assert not any(_norm_states(model))
    model = ResNet(depth=50, base_channels=16, attention=attention, norm_eval=False)
    model.train()
    assert all(_norm_states(model))


@pytest.mark.parametrize('attention', [None, 'sge', 'bam'])
def test_frozen_stages(attention):
    model = ResNet(depth=50, base_channels=16, attention=attention, frozen_stages=1,
                   norm_eval=False)
    model.train()
    for param in list(model.conv1.parameters()) + list(model.layer1.parameters()):
        assert not param.requires_grad
    assert all(p.requires_grad for p in model.layer2.parameters())
    if attention == 'bam':
        assert not any(p.requires_grad for p in model.bam1.parameters())
        assert not model.bam1.training and model.bam2.training


@pytest.mark.parametrize('depth,norm', [(50, 'norm3'), (18, 'norm2')])
def test_zero_init_residual(depth, norm):
    model = ResNet(depth=depth, base_channels=16, zero_init_residual=True)
    model.init_weights()
    for layer in (model.layer1, model.layer4):
        for block in layer:
            assert torch.all(getattr(block, norm).weight == 0)
    model = ResNet(depth=depth, base_channels=16, zero_init_residual=False)
    model.init_weights()
    assert torch.all(getattr(model.layer1[0], norm).weight == 1)


def test_with_cp_same_output():
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    ref = ResNet(depth=50, base_channels=16, attention='srm', norm_eval=True).train()
    cp = ResNet(depth=50, base_channels=16, attention='srm', norm_eval=True, with_cp=True).train()
    cp.load_state_dict(ref.state_dict())
    for a, b in zip(ref(x), cp(x)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize('name,plugin_type', [('sge', 'SGE'), ('se', 'SEModule'),
                                              ('cbam', 'CBAM'), ('srm', 'SRM'),
                                              ('gc', 'ContextBlock')])
@pytest.mark.parametrize('scope', ['mmdet', 'mmpretrain'])
def test_stock_mmdet_resnet_plugin_equals_backbone(name, plugin_type, scope):
    """A stock mmdet ResNet with our module as plugin == our backbone with the same weights."""
    from mmengine.registry import DefaultScope

    import mmdet.models  # noqa: F401
    import mmpretrain.models  # noqa: F401
    from mmdet.registry import MODELS as MMDET_MODELS
    kw = dict(ratio=1. / 16) if plugin_type == 'ContextBlock' else {}
    ours = ResNet(depth=50, base_channels=16, attention=name).eval()
    with DefaultScope.overwrite_default_scope(scope):
        stock = MMDET_MODELS.build(
            dict(type='mmdet.ResNet', depth=50, base_channels=16,
                 plugins=[dict(cfg=dict(type=plugin_type, **kw), stages=(True, ) * 4,
                               position='after_conv3')]))
    stock.eval()
    missing, unexpected = stock.load_state_dict(ours.state_dict(), strict=True)
    assert not missing and not unexpected
    x = torch.randn(2, 3, 64, 64)
    for a, b in zip(ours(x), stock(x)):
        torch.testing.assert_close(a, b)


def test_sk_keeps_resnet_conv2_names():
    model = ResNet(depth=50, sk=dict(groups=32))
    keys = set(model.state_dict())
    assert {'layer1.0.conv2.weight', 'layer1.0.bn2.weight', 'layer1.0.conv2g.weight',
            'layer1.0.bn2g.weight', 'layer1.0.sk.conv_fc1.weight'} <= keys
    assert model.layer1[0].conv2g.groups == 32


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(depth=42), KeyError, 'valid depths'),
    (dict(depth=50, attention='nope'), KeyError, 'valid names'),
    (dict(depth=18, sk=dict(groups=32)), ValueError, 'Bottleneck|depth 50'),
    (dict(depth=18, groups=32), ValueError, 'Bottleneck'),
    (dict(depth=50, attention='sge', attention_stages=(True, True)), ValueError, '4 entries'),
    (dict(depth=50, plugins=[dict(cfg=dict(type='SGE'), position='after_conv4')]), ValueError,
     'position'),
    (dict(depth=18, plugins=[dict(cfg=dict(type='SGE'), position='after_conv3')]), ValueError,
     'BasicBlock'),
])
def test_bad_arguments_have_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        ResNet(**kwargs)
