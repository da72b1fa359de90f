"""PytorchInsight's ShuffleNetV2 1x release converts exactly into configs/imagenet/
shufflenetv2_1x_in1k.py: a fabricated checkpoint in the source layout (an independent
re-implementation of the source network, pytorchinsight_shufflenet_reference.py, with every
tensor random) converts with the tool, loads strictly and gives the source logits."""
import os.path as osp

import pytest
import torch
from fabricate import fast_builds, randomize_all_
from pytorchinsight_shufflenet_reference import ReferenceShuffleNetV2

from resvariants.converters import convert_pytorchinsight_state_dict
from resvariants.converters.pytorchinsight import pytorchinsight_arch_candidates
from resvariants.converters.pytorchinsight_shufflenet import (convert_shufflenet_state_dict,
                                                              infer_shufflenet_arch)
from resvariants.engine.strict_pretrained import load_state_dict_strictly
from resvariants.utils import load_checkpoint_safely
from test_integration.utils import REPO
from tools.model_converters import pytorchinsight_to_mmpretrain
from tools.model_converters.pytorchinsight_to_mmpretrain import build_imagenet_model

SIDE = 64  # the last map is 2x2, the source's AvgPool2d(64 / 32) is its global mean


LISTING = osp.join(REPO, 'tests', 'data', 'reference', 'keys', 'keys_shufflenetv2_1x.txt')


def listing():
    shapes = {}
    with open(LISTING) as f:
        for line in f:
            if line.startswith('#') or not line.strip():
                continue
            key, shape, _ = line.rstrip('\n').split('\t')
            shapes[key] = tuple(int(s) for s in shape.strip('()').split(',') if s.strip())
    return shapes


@pytest.fixture(scope='module')
def source():
    """The source network with every tensor random (BN statistics from a random batch)."""
    torch.manual_seed(0)
    with fast_builds():
        reference = ReferenceShuffleNetV2()
    return randomize_all_(reference, SIDE, seed=2)


@pytest.fixture(scope='module')
def converted_file(source, tmp_path_factory):
    """The source saved as a PytorchInsight release and converted by the tool."""
    folder = tmp_path_factory.mktemp('shufflenet')
    src, dst = folder / 'shufflenetv2_1x.pth.tar', folder / 'shufflenetv2_1x.pth'
    torch.save({'epoch': 300, 'best_acc': torch.tensor(69.642),
                'state_dict': {f'module.{k}': v for k, v in source.state_dict().items()},
                'optimizer': {'state': {}, 'param_groups': []}}, src)
    with fast_builds():
        pytorchinsight_to_mmpretrain.main([str(src), str(dst)])
    return dst


def test_reference_is_the_source_model(source):
    state = source.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == listing()
    params = sum(p.numel() for p in source.parameters())
    assert params == 2_278_604  # the source's measured count (docs/architectures.md 1.14)


def test_release_converts_into_the_config_and_gives_the_source_logits(source, converted_file):
    checkpoint = load_checkpoint_safely(str(converted_file))
    assert checkpoint['meta']['arch'] == 'shufflenetv2_1x'
    assert checkpoint['meta']['config'] == 'configs/imagenet/shufflenetv2_1x_in1k.py'
    assert checkpoint['meta']['epoch'] == 300
    assert 'arch_evidence' not in checkpoint['meta']  # the keys decide it alone
    with fast_builds():
        model = build_imagenet_model('shufflenetv2_1x').eval()
    load_state_dict_strictly(model, checkpoint['state_dict'])
    x = torch.randn(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected, got = source(x), model(x, mode='tensor')
    assert expected.shape == got.shape == (2, 1000)
    assert expected.std() > 0.1  # informative logits
    diff = (got - expected).abs().max().item()
    assert diff < 1e-5, diff


def test_every_source_tensor_lands_once_unchanged(source):
    state = source.state_dict()
    converted = convert_pytorchinsight_state_dict({f'module.{k}': v for k, v in state.items()})
    assert len(converted) == len(state)
    assert sorted(v.data_ptr() for v in converted.values()) == \
        sorted(v.data_ptr() for v in state.values())
    # unit 4 is stage 2's first (stride-2) unit, unit 15 stage 3's last; the ReLUs hold nothing
    pairs = {'conv1.0.weight': 'backbone.conv1.conv.weight',
             'conv1.1.running_var': 'backbone.conv1.bn.running_var',
             'features.4.banch1.0.weight': 'backbone.layers.1.0.branch1.0.conv.weight',
             'features.4.banch1.3.bias': 'backbone.layers.1.0.branch1.1.bn.bias',
             'features.5.banch2.3.weight': 'backbone.layers.1.1.branch2.1.conv.weight',
             'features.15.banch2.6.running_mean': 'backbone.layers.2.3.branch2.2.bn.running_mean',
             'conv_last.0.weight': 'backbone.layers.3.conv.weight',
             'conv_last.1.weight': 'backbone.layers.3.bn.weight',
             'classifier.0.bias': 'head.fc.bias'}
    for theirs, ours in pairs.items():
        assert converted[ours] is state[theirs], theirs


def test_the_layout_is_identified_and_other_widths_refused(source):
    state = source.state_dict()
    assert pytorchinsight_arch_candidates(state) == ('shufflenetv2_1x', )
    half = {k: v for k, v in ReferenceShuffleNetV2(0.5).state_dict().items()}
    with pytest.raises(ValueError) as info:
        infer_shufflenet_arch(half)
    assert info.value.args[0] == ('ShuffleNetV2 0.5x (stage-1 width 48): only the 1x (width 116, '
                                  'configs/imagenet/shufflenetv2_1x_in1k.py) is convertible')
    truncated = {k: v for k, v in state.items() if not k.startswith('features.15.')}
    with pytest.raises(ValueError, match=r'the network has 16 \(stages of \(4, 8, 4\)\)'):
        infer_shufflenet_arch(truncated)


def test_unknown_keys_are_named():
    state = {'conv1.0.weight': torch.zeros(1), 'features.0.banch2.2.weight': torch.zeros(1)}
    with pytest.raises(KeyError) as info:
        convert_shufflenet_state_dict(state)
    assert info.value.args[0] == ('1 PytorchInsight ShuffleNetV2 keys have no counterpart in '
                                  'mmpretrain ShuffleNetV2 (a different architecture?): '
                                  'features.0.banch2.2.weight')
    with pytest.raises(KeyError, match=r'features\.16: ShuffleNetV2 has 16 units'):
        convert_shufflenet_state_dict({'features.16.banch2.0.weight': torch.zeros(1)})
