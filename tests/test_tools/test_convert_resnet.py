"""tools/model_converters/convert_resnet.py: files in, checked checkpoint out, for every source."""
import importlib.util
import json
import os.path as osp
import re
import sys

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file

from resvariants.converters.mmpretrain import build_mmpretrain_model
from resvariants.converters.resnet_layout import build_classifier
from resvariants.engine.strict_pretrained import StrictPretrainedInit
from resvariants.models import ResNet
from resvariants.utils import load_checkpoint_safely

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(REPO, 'tools', 'model_converters', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tool():
    return load_tool('convert_resnet')


def _write_config(tmp_path, base, **backbone):
    path = tmp_path / 'variant_cfg.py'
    path.write_text(f"_base_ = {osp.join(REPO, 'configs', 'imagenet', base)!r}\n"
                    f"model = dict(backbone=dict(**{backbone!r}), head=dict(in_channels=512))\n")
    return str(path)


def test_torchvision_file_converts_exactly_and_initialises_a_backbone(tool, tmp_path):
    source = torchvision.models.resnet18(weights=None)
    src, dst = tmp_path / 'resnet18-f37072fd.pth', tmp_path / 'tv_resnet18.pth'
    torch.save(source.state_dict(), src)
    summary = tool.main(['--from', 'torchvision', str(src), str(dst)])
    assert summary['max_abs_diff'] < 1e-4
    meta = load_checkpoint_safely(str(dst))['meta']
    assert meta['arch'] == 'resnet18' and meta['backbone'] == dict(type='resvariants.ResNet',
                                                                    depth=18)
    backbone = ResNet(depth=18, out_indices=(3, ))
    StrictPretrainedInit(checkpoint=str(dst), prefix='backbone.')(backbone)
    assert torch.equal(backbone.layer4[1].conv2.weight, source.layer4[1].conv2.weight)


def test_timm_hugging_face_download_reads_its_architecture(tool, tmp_path):
    source = timm.create_model('seresnet18', pretrained=False)
    src, dst = tmp_path / 'model.safetensors', tmp_path / 'timm_seresnet18.pth'
    save_file(source.state_dict(), str(src))
    (tmp_path / 'config.json').write_text(json.dumps({'architecture': 'seresnet18'}))
    summary = tool.main(['--from', 'timm', str(src), str(dst)])
    assert summary['max_abs_diff'] < 1e-4
    assert summary['backbone']['attention'] == dict(type='SEModule', ratio=16, divisor=8)


def test_timm_without_architecture_is_refused(tool, tmp_path):
    src = tmp_path / 'pytorch_model.bin'
    torch.save(timm.create_model('resnet18', pretrained=False).state_dict(), src)
    with pytest.raises(ValueError, match='--arch'):
        tool.main(['--from', 'timm', str(src), str(tmp_path / 'out.pth')])
    assert not (tmp_path / 'out.pth').exists()


def test_se_rounding_difference_with_a_config_is_reported(tool, tmp_path):
    src = tmp_path / 'seresnet18.pth'
    torch.save(timm.create_model('seresnet18', pretrained=False).state_dict(), src)
    config = _write_config(tmp_path, 'se_resnet50_in1k.py', depth=18)  # SE divisor=1
    with pytest.raises(KeyError, match=r'(?s)mis-shaped.*squeeze width C/16 up to a multiple '
                                       r'of 8.*divisor=8'):
        tool.main(['--from', 'timm', '--arch', 'seresnet18', '--config', config, str(src),
                   str(tmp_path / 'out.pth')])
    assert not (tmp_path / 'out.pth').exists()


def test_mmpretrain_checkpoint_with_config_check(tool, tmp_path):
    source = build_mmpretrain_model(dict(depth=18), num_classes=1000)
    src, dst = tmp_path / 'resnet18_8xb32_in1k.pth', tmp_path / 'mmpretrain_resnet18.pth'
    torch.save(dict(meta=dict(epoch=100), state_dict=source.state_dict()), src)
    config = _write_config(tmp_path, 'resnet50_in1k.py', depth=18)
    summary = tool.main(['--from', 'mmpretrain', '--config', config, str(src), str(dst)])
    assert summary['max_abs_diff'] < 1e-4
    assert summary['config_check'].endswith('backbone + head')
    assert summary['arch'] == 'ResNet'


def test_pytorchinsight_goes_through_the_existing_converter(tool, tmp_path):
    ours = build_classifier(dict(type='resvariants.ResNet', depth=50), 1000).state_dict()
    pi_state = {'module.' + (k[len('head.'):] if k.startswith('head.') else
                             k[len('backbone.'):]): v for k, v in ours.items()}
    src, dst = tmp_path / 'model_best.pth.tar', tmp_path / 'pi_resnet50.pth'
    torch.save(dict(epoch=100, best_acc=76.384, state_dict=pi_state), src)
    # a plain-ResNet layout is also WS-ResNet-50's (resnet_ws.py): the architecture is named
    with pytest.raises(ValueError, match='--arch resnet50 or --arch ws_resnet50'):
        tool.main(['--from', 'pytorchinsight', str(src), str(dst)])
    assert not dst.exists()
    tool.main(['--from', 'pytorchinsight', str(src), str(dst), '--arch', 'resnet50'])
    converted = load_checkpoint_safely(str(dst))
    assert converted['meta']['arch'] == 'resnet50'
    assert all(torch.equal(converted['state_dict'][k], v) for k, v in ours.items())


def test_a_ws_release_is_not_taken_for_a_torchvision_resnet(tool, tmp_path):
    """WS-ResNet-50 (resnet_ws.py) has torchvision's keys; its BN statistics, produced by the
    standardised weights, stop --from torchvision, and --from pytorchinsight detects it."""
    sys.path.insert(0, osp.join(REPO, 'tests', 'test_converters'))
    from fabricate import fast_builds, randomize_all_
    from pytorchinsight_reference import ReferenceResNet
    with fast_builds():
        reference = ReferenceResNet(50, 'ws')
    state = randomize_all_(reference, 64, seed=3).state_dict()
    src, dst = tmp_path / 'ws_resnet50.pth.tar', tmp_path / 'ws_resnet50.pth'
    torch.save(dict(epoch=90, state_dict={f'module.{k}': v for k, v in state.items()}), src)
    with pytest.raises(ValueError) as error:
        tool.main(['--from', 'torchvision', str(src), str(dst)])
    assert str(error.value).startswith('not a torchvision resnet50: its BatchNorm statistics '
                                       'were produced by weight-standardised convs (')
    assert str(error.value).endswith('a WS release (PytorchInsight resnet_ws.py) converts with '
                                     '--from pytorchinsight')
    assert not dst.exists()
    with fast_builds():
        tool.main(['--from', 'pytorchinsight', str(src), str(dst)])
    assert load_checkpoint_safely(str(dst))['meta']['arch'] == 'ws_resnet50'


def _to_ednet_names(state):
    """Our EDResNet classifier keys -> ED-Net's (megvii-research/ED-Net) names."""
    parts = [('downsample.0', 'shortcut.shortcut_conv'), ('downsample.1', 'shortcut.shortcut_bn'),
             ('ed_path.encoder_conv', 'encoder.encoder_conv'),
             ('ed_path.encoder_norm', 'encoder.encoder_bn'),
             ('ed_path.decoder_conv', 'decoder.decoder_conv'),
             ('ed_path.decoder_norm', 'decoder.decoder_bn')]
    renamed = {}
    for key, value in state.items():
        key = key.replace('backbone.', '').replace('head.fc', 'fc')
        m = re.match(r'layer(\d)\.(\d+)\.(.+)$', key)
        if m:
            rest = re.sub(r'^(conv|bn)([123])\.', r'\1_\1\2.', m[3])
            for ours, theirs in parts:
                rest = rest.replace(ours, theirs)
            key = f'layer{m[1]}.layer{m[1]}_block_{m[2]}.{rest}'
        renamed['module.' + key] = value
    return renamed


def test_ednet_checkpoint_converts_through_the_ednet_converter(tool, tmp_path):
    ed_cfg = dict(type='resvariants.EDResNet', depth=50, base_channels=16, ed_groups=4)
    ours = build_classifier(ed_cfg, 10).state_dict()
    src, dst = tmp_path / 'ed50.pth.tar', tmp_path / 'ed_resnet50_tiny.pth'
    torch.save({'state_dict': _to_ednet_names(ours)}, src)
    summary = tool.main(['--from', 'ednet', str(src), str(dst)])
    assert summary['backbone'] == ed_cfg
    converted = load_checkpoint_safely(str(dst))['state_dict']
    assert converted.keys() == ours.keys()
    assert all(torch.equal(converted[k], v) for k, v in ours.items())


def test_missing_ednet_converter_is_a_clear_error(tool, tmp_path, monkeypatch):
    src = tmp_path / 'ed50.pth.tar'
    torch.save({'state_dict': {'module.fc.weight': torch.zeros(1)}}, src)
    monkeypatch.setitem(sys.modules, 'resvariants.converters.ednet', None)
    with pytest.raises(ImportError, match='ednet.py'):
        tool.main(['--from', 'ednet', str(src), str(tmp_path / 'out.pth')])


def test_inexact_conversion_is_detected(tool):
    cfg = dict(type='resvariants.ResNet', depth=18)
    ours = build_classifier(cfg, 10)

    def perturbed_source():
        model = build_classifier(cfg, 10)
        model.load_state_dict(ours.state_dict())
        with torch.no_grad():
            model.backbone.layer3[0].conv1.weight.mul_(1.01)
        return model

    with pytest.raises(RuntimeError, match='not exact'):
        tool.verify_exactness(ours, perturbed_source, input_size=64, tolerance=1e-4)


@pytest.mark.parametrize('source', ['torchvision', 'timm'])
def test_backbone_only_output_is_verified_on_features(tool, tmp_path, source):
    model = (torchvision.models.resnet18(weights=None) if source == 'torchvision' else
             timm.create_model('resnet18', pretrained=False))
    src, dst = tmp_path / 'resnet18.pth', tmp_path / 'resnet18_backbone.pth'
    torch.save(model.state_dict(), src)
    summary = tool.main(['--from', source, '--arch', 'resnet18', '--backbone-only', str(src),
                         str(dst)])
    assert summary['max_abs_diff'] < 1e-4 and 'num_classes' not in summary
    state = load_checkpoint_safely(str(dst))['state_dict']
    assert state and all(k.startswith('backbone.') for k in state)
