"""Weight-standardised releases (WS-ResNet, WS-ResNeXt of PytorchInsight's resnet_ws.py) are not
converted as plain ResNets: their keys are the plain layout's, but their BatchNorm statistics were
produced by the standardised weights (resvariants/converters/ws_evidence.py). A fabricated WS
release (independent re-implementation, pytorchinsight_reference.py, every tensor random, BN
statistics measured on a random batch) converts into the WS config with the source logits; a
plain one into the plain config; a checkpoint whose statistics cannot decide is refused with a
message naming the ambiguity and the --arch choices, and an --arch the statistics contradict is
refused too."""
import pytest
import torch
from fabricate import fast_builds, randomize_all_
from pytorchinsight_reference import ReferenceResNet

from resvariants.converters.pytorchinsight import (infer_pytorchinsight_arch,
                                                   pytorchinsight_arch_candidates)
from resvariants.converters.ws_evidence import standardise, weight_standardisation_evidence
from resvariants.engine.strict_pretrained import load_state_dict_strictly
from resvariants.utils import load_checkpoint_safely
from tools.model_converters import pytorchinsight_to_mmpretrain
from tools.model_converters.pytorchinsight_to_mmpretrain import build_imagenet_model

SIDE = 64


def _fabricate(variant, seed, **resnext):
    torch.manual_seed(seed)
    with fast_builds():
        reference = ReferenceResNet(50, variant, **resnext)
    return randomize_all_(reference, SIDE, seed=seed)


@pytest.fixture(scope='module')
def ws_r50():
    return _fabricate('ws', 3)


@pytest.fixture(scope='module')
def plain_r50():
    return _fabricate('', 4)


def _save(state, path):
    torch.save({'epoch': 90, 'best_acc': torch.tensor(76.74),
                'state_dict': {f'module.{k}': v for k, v in state.items()},
                'optimizer': {'state': {}, 'param_groups': [{'lr': 0.1}]}}, path)
    return path


def _convert(src, dst, *options):
    """The tool (its model builds skip the random init: every tensor is loaded)."""
    with fast_builds():
        pytorchinsight_to_mmpretrain.main([str(src), str(dst), *options])


def _logits_match(checkpoint, reference, arch):
    with fast_builds():
        model = build_imagenet_model(arch).eval()
    load_state_dict_strictly(model, checkpoint['state_dict'])
    x = torch.randn(1, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(x)
        got = model(x, mode='tensor')
    assert expected.std() > 0.1
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def _with_standardised_raw_weights(state):
    """The same WS network with every raw conv filter standardised already (mean 0, std 1): the
    WS forward pass is unchanged, and the raw and standardised weights now coincide."""
    return {k: standardise(v) if v.dim() == 4 else v for k, v in state.items()}


def test_the_statistics_tell_which_weights_produced_them(ws_r50, plain_r50):
    ws = weight_standardisation_evidence(ws_r50.state_dict())
    assert ws.verdict == 'ws' and ws.blocks == 16
    assert ws.ws_scale == pytest.approx(1, abs=0.02) and ws.ws_fit > 0.99
    assert ws.plain_fit < 0.5  # the raw filters' means are not subtracted: a poor fit
    plain = weight_standardisation_evidence(plain_r50.state_dict())
    assert plain.verdict == 'plain'
    assert plain.plain_scale == pytest.approx(1, abs=0.02) and plain.plain_fit > 0.99
    assert plain.ws_fit < 0.5
    # a WS net whose raw filters have a tiny spread (an e-shifted net drives it to 1e-3): the
    # raw weights under-predict the means a thousandfold
    tiny = {k: v * 1e-3 if v.dim() == 4 else v for k, v in ws_r50.state_dict().items()}
    evidence = weight_standardisation_evidence(tiny)
    assert evidence.verdict == 'ws' and evidence.plain_scale > 500
    undecided = weight_standardisation_evidence(_with_standardised_raw_weights(
        ws_r50.state_dict()))
    assert undecided.verdict is None
    assert undecided.reason == 'both fit: the raw filters are nearly standardised already'
    nothing = weight_standardisation_evidence({'conv1.weight': torch.zeros(64, 3, 7, 7)})
    assert nothing.verdict is None and nothing.summary() == (
        'no evidence (no bottleneck with conv3 weights and bn2 / bn3 statistics)')


def test_ws_release_is_detected_and_converts_into_the_ws_config(ws_r50, tmp_path):
    src = _save(ws_r50.state_dict(), tmp_path / 'ws_resnet50.pth.tar')
    dst = tmp_path / 'ws_resnet50.pth'
    _convert(src, dst)
    checkpoint = load_checkpoint_safely(str(dst))
    meta = checkpoint['meta']
    assert (meta['arch'], meta['config']) == ('ws_resnet50', 'configs/imagenet/ws_resnet50_in1k.py')
    assert meta['arch_named_by'] == 'evidence'
    assert meta['arch_evidence'].endswith(': weight-standardised')
    _logits_match(checkpoint, ws_r50, 'ws_resnet50')


def test_plain_release_is_detected_as_plain(plain_r50, tmp_path):
    state = {f'module.{k}': v for k, v in plain_r50.state_dict().items()}
    assert pytorchinsight_arch_candidates(state) == ('resnet50', 'ws_resnet50')
    assert infer_pytorchinsight_arch(state) == 'resnet50'


def test_an_undecided_checkpoint_is_refused_until_arch_names_it(ws_r50, tmp_path):
    state = _with_standardised_raw_weights(ws_r50.state_dict())
    with fast_builds():
        reference = ReferenceResNet(50, 'ws')
    reference.load_state_dict(state)
    src = _save(state, tmp_path / 'ws.pth.tar')
    dst = tmp_path / 'ws.pth'
    with pytest.raises(ValueError) as error:
        _convert(src, dst)
    message = str(error.value)
    assert message.startswith('cannot infer the architecture: the checkpoint fits resnet50 and '
                              'ws_resnet50 alike (weight standardisation leaves no trace in the '
                              'keys or shapes, and the BatchNorm statistics do not decide it: ')
    assert 'the raw filters are nearly standardised already' in message
    assert message.endswith('name it with --arch resnet50 or --arch ws_resnet50')
    assert not dst.exists()
    _convert(src, dst, '--arch', 'ws_resnet50_eshift')
    checkpoint = load_checkpoint_safely(str(dst))
    assert checkpoint['meta']['arch'] == 'ws_resnet50_eshift'
    assert checkpoint['meta']['config'] == 'configs/imagenet/ws_resnet50_eshift_in1k.py'
    assert checkpoint['meta']['arch_named_by'] == '--arch'
    _logits_match(checkpoint, reference.eval(), 'ws_resnet50')


def test_an_arch_the_statistics_contradict_is_refused(ws_r50, tmp_path):
    src = _save(ws_r50.state_dict(), tmp_path / 'ws.pth.tar')
    dst = tmp_path / 'as_plain.pth'
    with pytest.raises(ValueError) as error:
        _convert(src, dst, '--arch', 'resnet50')
    message = str(error.value)
    assert message.startswith('--arch resnet50 contradicts the BatchNorm statistics, which were '
                              'produced by the standardised conv weights (')
    assert message.endswith('): the checkpoint is ws_resnet50; pass --ignore-bn-evidence to '
                            'convert it as resnet50 anyway')
    assert not dst.exists()
    _convert(src, dst, '--arch', 'resnet50', '--ignore-bn-evidence')
    assert load_checkpoint_safely(str(dst))['meta']['arch'] == 'resnet50'


def test_ws_resnext_release_converts_into_its_config(tmp_path):
    reference = _fabricate('ws', 5, groups=32, base_width=4)
    state = reference.state_dict()
    assert tuple(state['layer1.0.conv2.weight'].shape) == (128, 4, 3, 3)
    assert sum(p.numel() for p in reference.parameters()) == 25_028_904  # ResNeXt-50 32x4d
    assert pytorchinsight_arch_candidates(state) == ('resnext50_32x4d',
                                                     'ws_resnext50_32x4d_eshift')
    src = _save(state, tmp_path / 'ws_resnext50.pth.tar')
    dst = tmp_path / 'ws_resnext50.pth'
    _convert(src, dst)
    checkpoint = load_checkpoint_safely(str(dst))
    assert checkpoint['meta']['arch'] == 'ws_resnext50_32x4d_eshift'
    assert checkpoint['meta']['config'] == 'configs/imagenet/ws_resnext50_32x4d_eshift_in1k.py'
    _logits_match(checkpoint, reference, 'ws_resnext50_32x4d_eshift')
