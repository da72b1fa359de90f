"""WarmStart: attention variants from a plain ResNet checkpoint; trunk loaded, new modules
exactly as a scratch build initialises them, every new key reported."""
import importlib.util
import json
import os.path as osp

import pytest
import torch

from resvariants.converters.resnet_layout import TRUNK_KEY
from resvariants.engine.warm_start import WarmStartInit, warm_start
from resvariants.models import EDResNet, ResNet

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = dict(depth=50, base_channels=16)
VARIANTS = {  # variant -> (backbone class, kwargs, owner of the new keys in layer1.0 / stage 1)
    'se': (ResNet, dict(attention='se'), 'layer1.0.se_layer'),
    'sk': (ResNet, dict(sk=dict(groups=4)), 'layer1.0.sk'),
    'cbam': (ResNet, dict(attention='cbam'), 'layer1.0.cbam'),
    'bam': (ResNet, dict(attention='bam'), 'bam1'),
    'gc': (ResNet, dict(attention='gc'), 'layer1.0.context_block'),
    'sge': (ResNet, dict(attention=dict(type='SGE', groups=4)), 'layer1.0.sge'),
    'srm': (ResNet, dict(attention='srm'), 'layer1.0.srm'),
    'ed': (EDResNet, dict(ed_groups=4), 'layer1.0.ed_path'),
}


@pytest.fixture(scope='module')
def plain_checkpoint(tmp_path_factory):
    """A trained-looking plain ResNet-50 (tiny width) saved as a classifier checkpoint."""
    torch.manual_seed(123)
    plain = ResNet(**TINY)
    with torch.no_grad():
        for value in plain.state_dict().values():
            if value.is_floating_point():
                value.copy_(torch.rand_like(value) + 0.5)
    path = tmp_path_factory.mktemp('plain') / 'resnet50_tiny.pth'
    state = {f'backbone.{k}': v for k, v in plain.state_dict().items()}
    state['head.fc.weight'] = torch.zeros(10, 512)
    torch.save({'meta': {}, 'state_dict': state}, path)
    return str(path), plain.state_dict()


def _build(variant, init_cfg, seed=7):
    cls, kwargs, _ = VARIANTS[variant]
    torch.manual_seed(seed)
    model = cls(**TINY, **kwargs, init_cfg=init_cfg)
    model.init_weights()
    return model


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_warm_start_loads_trunk_and_keeps_scratch_init_of_new_modules(variant,
                                                                     plain_checkpoint):
    path, plain = plain_checkpoint
    scratch = _build(variant, init_cfg=None).state_dict()
    warm_model = _build(variant, init_cfg=dict(type='WarmStart', checkpoint=path))
    warm = warm_model.state_dict()
    for key, value in plain.items():
        assert torch.equal(warm[key], value), key
    new_keys = sorted(set(warm) - set(plain))
    assert new_keys and not any(TRUNK_KEY.match(k) for k in new_keys)
    for key in new_keys:
        assert torch.equal(warm[key], scratch[key]), key
    report = warm_model.warm_start_report
    assert report.new == new_keys
    assert report.loaded == sorted(plain)
    assert VARIANTS[variant][2] in report.new_modules()
    assert all(f'  {module}: ' in report.summary() for module in report.new_modules())


def test_plain_model_has_no_new_keys(plain_checkpoint):
    path, plain = plain_checkpoint
    model = ResNet(**TINY, init_cfg=dict(type='WarmStart', checkpoint=path))
    model.init_weights()
    assert model.warm_start_report.new == []
    assert 'the model is the plain trunk' in model.warm_start_report.summary()


def test_checkpoint_of_another_trunk_is_refused(plain_checkpoint):
    _, plain = plain_checkpoint
    with pytest.raises(KeyError, match='trunk keys missing from the checkpoint: layer3.10'):
        warm_start(ResNet(depth=101, base_channels=16, attention='se'), plain)
    with pytest.raises(KeyError, match=r'keys with other shapes: .*conv1\.weight: checkpoint '
                                       r'\(16, 3, 7, 7\) vs model \(32, 3, 7, 7\)'):
        warm_start(ResNet(depth=50, base_channels=32, attention='se'), plain)
    se_state = ResNet(**TINY, attention='se').state_dict()
    with pytest.raises(KeyError, match='checkpoint keys the model does not have: '
                                       'layer1.0.se_layer'):
        warm_start(ResNet(**TINY), se_state)


def test_missing_prefix_is_an_error(plain_checkpoint):
    path, _ = plain_checkpoint
    with pytest.raises(KeyError, match="no keys with prefix 'model.'"):
        WarmStartInit(checkpoint=path, prefix='model.')(ResNet(**TINY, attention='se'))


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(REPO, 'tools', 'model_converters', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tool_warm_starts_an_imagenet_config_and_reports_new_keys(tmp_path):
    """configs/imagenet/sge_resnet50_in1k.py from a plain ResNet-50 classifier checkpoint."""
    from resvariants.converters.resnet_layout import build_classifier
    plain = build_classifier(dict(type='resvariants.ResNet', depth=50), 1000)
    src = tmp_path / 'resnet50.pth'
    torch.save({'state_dict': plain.state_dict()}, src)
    dst, report_path = tmp_path / 'sge_resnet50_warm.pth', tmp_path / 'new_keys.json'
    tool = _load_tool('warm_start')
    report = tool.main([osp.join(REPO, 'configs', 'imagenet', 'sge_resnet50_in1k.py'), str(src),
                        str(dst), '--with-head', '--report', str(report_path)])
    blocks = [f'layer{s}.{b}' for s, n in enumerate((3, 4, 6, 3), 1) for b in range(n)]
    assert report.new == sorted(f'{b}.sge.{p}' for b in blocks for p in ('bias', 'weight'))
    assert json.loads(report_path.read_text())['new'] == report.new
    saved = torch.load(dst, map_location='cpu', weights_only=True)['state_dict']
    for key, value in plain.state_dict().items():
        assert torch.equal(saved[key], value), key
    # SGE's own init: gamma 0, beta 1 (the gate starts at sigmoid(1) everywhere)
    assert all(saved[f'backbone.{b}.sge.weight'].eq(0).all() for b in blocks)
    assert all(saved[f'backbone.{b}.sge.bias'].eq(1).all() for b in blocks)
