"""ED-Net checkpoint conversion: the converted classifier reproduces the original network's
logits at 224 (ED50 through the CLI, EDSE50 / EDX50 through the function), and runs at sizes
where the original fails."""
import json
import os.path as osp
import sys

import pytest
import torch
from ednet_reference import ReferenceEDNet
from fabricate import fast_builds, randomize_all_
from mmengine.config import Config

from resvariants.converters import convert_ednet_state_dict, infer_ednet_arch
from resvariants.engine.strict_pretrained import load_state_dict_strictly
from resvariants.utils import load_checkpoint_safely

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tools', 'model_converters'))
import ednet_to_mmpretrain  # noqa: E402

NO_COUNTERPART = 'have no counterpart in resvariants.ResNet (a different architecture?):'


def build_classifier(name):
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'imagenet', f'{name}_in1k.py'))
    return MODELS.build(cfg.model).eval()


def reference(randomize, **kwargs):
    """The original network with random weights, norms and running statistics (eval mode)."""
    torch.manual_seed(0)
    return randomize(ReferenceEDNet(**kwargs))


def assert_same_logits(ours, original, x):
    with torch.no_grad():
        expected = original(x)
        got = ours(x, mode='tensor')
    assert got.shape == expected.shape == (x.shape[0], 1000)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_cli_round_trip_gives_the_original_logits_at_224(tmp_path, randomize):
    original = reference(randomize, depth=50)
    src, dst = tmp_path / 'ed50.pth.tar', tmp_path / 'ed_resnet50.pth'
    state = {f'module.{k}': v for k, v in original.state_dict().items()}  # DataParallel keys
    torch.save(dict(state_dict=state, epoch=100, best_prec1=77.0), src)
    ednet_to_mmpretrain.main([str(src), str(dst)])
    checkpoint = load_checkpoint_safely(str(dst))
    assert checkpoint['meta']['arch'] == 'ed_resnet50'
    assert checkpoint['meta']['epoch'] == 100
    ours = build_classifier('ed_resnet50')
    load_state_dict_strictly(ours, checkpoint['state_dict'])
    assert_same_logits(ours, original, torch.randn(2, 3, 224, 224))
    # the original only runs at 224; the converted model runs at any size
    x = torch.randn(1, 3, 256, 256)
    with pytest.raises(RuntimeError):
        original(x)
    with torch.no_grad():
        assert ours(x, mode='tensor').shape == (1, 1000)


@pytest.mark.parametrize('name,kwargs', [('ed_se_resnet50', dict(se=True)),
                                         ('ed_resnext50', dict(resnext=True))])
def test_se_and_resnext_keep_their_logits(name, kwargs, randomize):
    original = reference(randomize, depth=50, **kwargs)
    state = original.state_dict()
    assert infer_ednet_arch(state) == (name, 1.0)
    ours = build_classifier(name)
    load_state_dict_strictly(ours, convert_ednet_state_dict(state))
    assert_same_logits(ours, original, torch.randn(1, 3, 224, 224))


def fake_ednet_keys(blocks=(3, 4, 6, 3), width=64, hidden=64, out=256, groups=1):
    """The keys infer_ednet_arch reads, with tensors of the right shapes only where it looks."""
    state = {f'layer{s}.layer{s}_block_{i}.bn_bn1.weight': torch.zeros(1)
             for s, n in enumerate(blocks, start=1) for i in range(n)}
    block = 'layer1.layer1_block_0.'
    state[block + 'conv_conv2.weight'] = torch.zeros(width, width // groups, 3, 3)
    state[block + 'encoder.encoder_conv.weight'] = torch.zeros(hidden, out // 32, 3, 3)
    state[block + 'conv_conv3.weight'] = torch.zeros(out, width, 1, 1)
    return state


@pytest.mark.parametrize('blocks,depth', [((3, 4, 6, 3), 50), ((3, 4, 23, 3), 101),
                                          ((3, 8, 36, 3), 152)])
def test_infer_depth(blocks, depth):
    assert infer_ednet_arch(fake_ednet_keys(blocks)) == (f'ed_resnet{depth}', 1.0)
    resnext = fake_ednet_keys(blocks, width=128, hidden=128, out=256, groups=32)
    assert infer_ednet_arch(resnext) == (f'ed_resnext{depth}', 1.0)


def test_not_an_ednet_state_dict_is_named():
    with pytest.raises(ValueError, match='blocks per stage'):
        infer_ednet_arch(fake_ednet_keys((3, 4, 5, 3)))
    with pytest.raises(ValueError, match='blocks per stage'):
        infer_ednet_arch({'layer1.0.conv1.weight': torch.zeros(1)})  # torchvision layout


def test_unknown_keys_are_listed_and_old_bn_counters_added():
    state = {'conv1.weight': torch.zeros(1), 'bn1.running_mean': torch.zeros(1),
             'layer1.layer1_block_0.encoder.encoder_bn.running_mean': torch.zeros(1)}
    converted = convert_ednet_state_dict(state)
    assert converted['backbone.bn1.num_batches_tracked'] == 0
    assert 'backbone.layer1.0.ed_path.encoder_norm.num_batches_tracked' in converted
    state['layer1.layer1_block_0.mystery.weight'] = torch.zeros(1)
    with pytest.raises(KeyError, match='mystery'):
        convert_ednet_state_dict(state)


def test_cli_asks_for_a_config_for_reduced_width(tmp_path):
    src = tmp_path / 'narrow.pth'
    torch.save(fake_ednet_keys(width=32), src)
    with pytest.raises(ValueError, match='reduced-width .*--config'):
        ednet_to_mmpretrain.main([str(src), str(tmp_path / 'out.pth')])


ED_SIDE = 96  # 32 x 3: the stage parities of a 224 input (the source's hard-coded decoder)
ED_KWARGS = {'ed_resnet50': dict(depth=50), 'ed_resnet101': dict(depth=101),
             'ed_resnet152': dict(depth=152), 'ed_resnext50': dict(depth=50, resnext=True),
             'ed_resnext101': dict(depth=101, resnext=True),
             'ed_se_resnet50': dict(depth=50, se=True)}


@pytest.fixture(scope='module', params=sorted(ED_KWARGS))
def ed_case(request):
    """(arch, source state dict, input, source logits, our converted model), float64."""
    arch = request.param
    with fast_builds():
        original = ReferenceEDNet(input_size=ED_SIDE, **ED_KWARGS[arch])
        ours = build_classifier(arch).double()
    original = randomize_all_(original.double(), ED_SIDE, seed=len(arch))
    state = original.state_dict()
    x = torch.randn(1, 3, ED_SIDE, ED_SIDE, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = original(x)
    load_state_dict_strictly(ours, convert_ednet_state_dict(state))
    yield arch, state, x, expected, ours.eval()
    del original, ours, state


def test_every_ed_architecture_gives_the_source_logits(ed_case):
    """Every ED-Net architecture, every tensor random: the converted model computes the
    original network's logits (float64, to rounding)."""
    arch, state, x, expected, ours = ed_case
    params = {'ed_resnet50': 'ED50', 'ed_resnet101': 'ED101', 'ed_se_resnet50': 'EDSE50',
              'ed_resnext50': 'EDX50'}.get(arch)
    if params is not None:  # the count measured on the original code
        with open(osp.join(REPO, 'tests', 'data', 'reference', 'reference_figures.json')) as f:
            assert sum(v.numel() for k, v in state.items() if not k.endswith(
                ('running_mean', 'running_var', 'num_batches_tracked'))) == \
                json.load(f)['ed_net'][params]['params']
    assert infer_ednet_arch({f'module.{k}': v for k, v in state.items()}) == (arch, 1.0)
    with torch.no_grad():
        got = ours(x, mode='tensor')
    assert got.shape == expected.shape == (1, 1000)
    assert expected.std() > 0.1  # informative logits
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9 * expected.abs().max().item())


# --- inference and mapping details (found by mutation testing, docs/testing.md) --------------

def test_infer_reads_width_ratio_se_and_module_prefix():
    narrow = fake_ednet_keys(width=32)
    assert infer_ednet_arch(narrow) == ('ed_resnet50', 0.5)
    se = dict(fake_ednet_keys(), **{'layer2.layer2_block_0.fc_reduction.weight': torch.zeros(1)})
    assert infer_ednet_arch(se) == ('ed_se_resnet50', 1.0)
    wrapped = {f'module.{k}': v for k, v in fake_ednet_keys((3, 4, 23, 3)).items()}
    assert infer_ednet_arch(wrapped) == ('ed_resnet101', 1.0)
    # a ResNeXt is told by its grouped 3x3 or by an encoder of half the block output
    grouped_only = fake_ednet_keys(width=128, hidden=64, out=256, groups=32)
    assert infer_ednet_arch(grouped_only)[0] == 'ed_resnext50'
    half_hidden = fake_ednet_keys(width=128, hidden=128, out=256, groups=1)
    assert infer_ednet_arch(half_hidden) == ('ed_resnext50', 1.0)


@pytest.mark.parametrize('blocks', [(2, 4, 6, 3), (3, 4, 6, 2), (3, 4, 6), (3, 5, 6, 3)])
def test_block_counts_outside_the_table_are_refused(blocks):
    state = fake_ednet_keys(blocks)
    listed = dict(enumerate(blocks, start=1))
    with pytest.raises(ValueError) as info:
        infer_ednet_arch(state)
    assert info.value.args[0] == (
        f'not an ED-Net ResNet/ResNeXt-50/101/152 state dict: blocks per stage {listed} '
        '(expected 3-4-6-3, 3-4-23-3 or 3-8-36-3 in layerK.layerK_block_i keys)')


@pytest.mark.parametrize('missing', ['layer1.layer1_block_0.conv_conv2.weight',
                                     'layer1.layer1_block_0.encoder.encoder_conv.weight',
                                     'layer1.layer1_block_0.conv_conv3.weight'])
def test_missing_first_block_tensors_are_named(missing):
    state = fake_ednet_keys()
    del state[missing]
    with pytest.raises(ValueError, match=rf"^not an ED-Net state dict: {missing} is missing$"):
        infer_ednet_arch(state)


def test_every_key_maps_to_its_place():
    block = 'layer2.layer2_block_3.'
    state = {
        'module.conv1.weight': torch.zeros(2), 'bn1.running_var': torch.zeros(2),
        'fc.weight': torch.zeros(3, 2), 'fc.bias': torch.zeros(3),
        block + 'conv_conv2.weight': torch.zeros(4), block + 'bn_bn3.bias': torch.zeros(4),
        block + 'shortcut.shortcut_conv.weight': torch.zeros(5),
        block + 'shortcut.shortcut_bn.running_mean': torch.zeros(5),
        block + 'encoder.encoder_conv.weight': torch.zeros(6),
        block + 'encoder.encoder_bn.weight': torch.zeros(6),
        block + 'decoder.decoder_conv.weight': torch.zeros(7),
        block + 'decoder.decoder_bn.num_batches_tracked': torch.tensor(3),
        block + 'fc_reduction.weight': torch.zeros(8, 16), block + 'fc_reduction.bias':
        torch.zeros(8), block + 'fc_extention.weight': torch.zeros(16, 8),
    }
    converted = convert_ednet_state_dict(state)
    ours = 'backbone.layer2.3.'
    assert set(converted) == {
        'backbone.conv1.weight', 'backbone.bn1.running_var', 'head.fc.weight', 'head.fc.bias',
        ours + 'conv2.weight', ours + 'bn3.bias', ours + 'downsample.0.weight',
        ours + 'downsample.1.running_mean', ours + 'downsample.1.num_batches_tracked',
        ours + 'ed_path.encoder_conv.weight', ours + 'ed_path.encoder_norm.weight',
        ours + 'ed_path.decoder_conv.weight', ours + 'ed_path.decoder_norm.num_batches_tracked',
        ours + 'se_layer.conv1.conv.weight', ours + 'se_layer.conv1.conv.bias',
        ours + 'se_layer.conv2.conv.weight'}
    assert converted[ours + 'se_layer.conv1.conv.weight'].shape == (8, 16, 1, 1)
    assert converted[ours + 'se_layer.conv2.conv.weight'].shape == (16, 8, 1, 1)
    assert converted[ours + 'se_layer.conv1.conv.bias'].shape == (8, )
    assert converted[ours + 'ed_path.decoder_norm.num_batches_tracked'] == 3  # kept
    counter = converted[ours + 'downsample.1.num_batches_tracked']
    assert counter.dtype == torch.long and counter == 0  # added for the old checkpoint
    assert 'backbone.bn1.num_batches_tracked' not in converted  # only next to running_mean
    assert converted['head.fc.weight'].shape == (3, 2)


def test_unknown_keys_message_lists_twenty():
    state = {f'mystery.{i:02d}': torch.zeros(1) for i in range(25)}
    with pytest.raises(KeyError) as info:
        convert_ednet_state_dict(state)
    assert info.value.args[0] == (f'25 ED-Net keys {NO_COUNTERPART} '
                                  + ', '.join(f'mystery.{i:02d}' for i in range(20)) + ' ...')
    with pytest.raises(KeyError) as info:
        convert_ednet_state_dict({'a.b': torch.zeros(1)})
    assert info.value.args[0] == f'1 ED-Net keys {NO_COUNTERPART} a.b'


def test_ed_archs():
    from resvariants.converters import ED_ARCHS
    assert ED_ARCHS == ('ed_resnet50', 'ed_resnet101', 'ed_resnet152', 'ed_resnext50',
                        'ed_resnext101', 'ed_se_resnet50')
    for arch in ED_ARCHS:
        assert osp.isfile(osp.join(REPO, 'configs', 'imagenet', f'{arch}_in1k.py')), arch
