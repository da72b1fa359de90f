"""The PytorchInsight key mapping for every architecture (R50 and R101), fast: the source layout
converts to exactly the keys and shapes of our config's model, every source tensor lands under
one key unchanged (SE's Linear weights as 1x1-conv views), and each refusal says exactly why.
That the pairing is right (e.g. BAM's two dilated convs not swapped) is proved by the logits
equality of test_pytorchinsight_logits.py."""
import pytest
import torch
from fabricate import fast_builds
from test_pytorchinsight_logits import ARCHS, source_layout

from resvariants.converters import (PI_ARCHS, convert_pytorchinsight_state_dict,
                                    infer_pytorchinsight_arch, pytorchinsight_arch_candidates)
from resvariants.converters.pytorchinsight import PI_OTHER_ARCHS
from tools.model_converters.pytorchinsight_to_mmpretrain import build_imagenet_model

NO_COUNTERPART = 'have no counterpart in resvariants.ResNet (a different architecture?):'


def _source_state(arch):
    """Distinct uninitialised tensors in the source's key layout (no values are compared)."""
    return {k: torch.zeros((), dtype=torch.int64) if k.endswith('num_batches_tracked')
            else torch.empty(shape) for k, shape in source_layout(arch).items()}


def _storage(t):
    return t.untyped_storage().data_ptr()


def test_the_table_is_every_variant_at_both_depths():
    assert set(ARCHS) | {'ws_resnet50', 'ws_resnet101'} == set(PI_ARCHS)
    assert len(PI_ARCHS) == 18


def test_se_linear_weights_become_1x1_convs_and_biases_stay():
    state = {k: v for k, v in _source_state('se_resnet50').items()}
    state['layer2.3.se.fc.0.weight'].normal_()  # compared by value below (empty may hold NaN)
    converted = convert_pytorchinsight_state_dict(state)
    fc0, fc2 = state['layer2.3.se.fc.0.weight'], state['layer2.3.se.fc.2.weight']
    conv1 = converted['backbone.layer2.3.se_layer.conv1.conv.weight']
    assert conv1.shape == (*fc0.shape, 1, 1) and conv1.shape == (32, 512, 1, 1)
    assert torch.equal(conv1[:, :, 0, 0], fc0) and _storage(conv1) == _storage(fc0)
    conv2 = converted['backbone.layer2.3.se_layer.conv2.conv.weight']
    assert conv2.shape == (512, 32, 1, 1) and _storage(conv2) == _storage(fc2)
    assert converted['backbone.layer2.3.se_layer.conv2.conv.bias'] is state[
        'layer2.3.se.fc.2.bias']


def test_the_module_prefix_is_optional_and_only_stripped_at_the_start():
    state = _source_state('resnet50')
    plain = convert_pytorchinsight_state_dict(state)
    prefixed = convert_pytorchinsight_state_dict({f'module.{k}': v for k, v in state.items()})
    assert plain.keys() == prefixed.keys()
    with pytest.raises(KeyError) as info:
        convert_pytorchinsight_state_dict({'conv1.weight': state['conv1.weight'],
                                           'net.module.fc.weight': state['fc.weight']})
    assert info.value.args[0] == f'1 PytorchInsight keys {NO_COUNTERPART} net.module.fc.weight'


def test_unknown_keys_are_all_counted_and_the_first_20_named():
    unknown = {f'extra.{i}.weight': torch.zeros(1) for i in range(23)}
    with pytest.raises(KeyError) as info:
        convert_pytorchinsight_state_dict({'conv1.weight': torch.zeros(1), **unknown})
    assert info.value.args[0] == (f'23 PytorchInsight keys {NO_COUNTERPART} '
                                  + ', '.join(list(unknown)[:20]) + ' ...')
    with pytest.raises(KeyError) as info:  # 21: one more than named
        convert_pytorchinsight_state_dict(dict(list(unknown.items())[:21]))
    assert info.value.args[0].endswith(', extra.19.weight ...')
    few = dict(list(unknown.items())[:20])
    with pytest.raises(KeyError) as info:
        convert_pytorchinsight_state_dict(few)
    assert info.value.args[0] == (f'20 PytorchInsight keys {NO_COUNTERPART} '
                                  + ', '.join(few))


def _layout(counts=(3, 4, 6, 3), **overrides):
    state = {f'layer{s}.{i}.bn1.weight': torch.zeros(1)
             for s, n in enumerate(counts, start=1) for i in range(n)}
    state['layer1.0.conv2.weight'] = torch.zeros(64, 64, 3, 3)
    state['layer1.0.conv3.weight'] = torch.zeros(256, 64, 1, 1)
    state.update(overrides)
    return state


@pytest.mark.parametrize('counts,depth', [((3, 4, 6, 3), 50), ((3, 4, 23, 3), 101)])
def test_depth_and_variant_are_read_from_the_keys(counts, depth):
    assert pytorchinsight_arch_candidates(_layout(counts)) == (f'resnet{depth}',
                                                               f'ws_resnet{depth}')
    marks = {'se': 'layer1.0.se.fc.0.weight', 'sk': 'layer1.0.conv2g.weight',
             'cbam': 'layer1.0.cbam.ChannelGate.mlp.1.weight', 'bam': 'bam1.channel_att.x',
             'gc': 'layer1.0.gc.conv_mask.weight', 'sge': 'layer1.0.sge.weight',
             'srm': 'layer1.0.srm.cfc'}
    for variant, key in marks.items():
        state = _layout(counts, **{key: torch.zeros(1)})
        assert pytorchinsight_arch_candidates(state) == (f'{variant}_resnet{depth}', )
        assert infer_pytorchinsight_arch({f'module.{k}': v for k, v in state.items()}) == \
            f'{variant}_resnet{depth}'
    assert infer_pytorchinsight_arch(_layout(counts, **{'layer4.2.rclb.cfc': torch.zeros(1)})) \
        == f'srm_resnet{depth}'


def test_every_refusal_says_exactly_why():
    cases = [
        (_layout(), 'cannot infer the architecture: the checkpoint fits resnet50 and ws_resnet50 '
                    'alike (weight standardisation leaves no trace in the keys or shapes, and '
                    'the BatchNorm statistics do not decide it: no evidence (no bottleneck with '
                    'conv3 weights and bn2 / bn3 statistics)); name it with --arch resnet50 or '
                    '--arch ws_resnet50'),
        (_layout((3, 8, 36, 3)), 'not a PytorchInsight ResNet-50/101 state dict: blocks per '
                                 'stage (3, 8, 36, 3) (ResNet-50 has (3, 4, 6, 3), ResNet-101 '
                                 '(3, 4, 23, 3))'),
        ({k: v for k, v in _layout().items() if 'conv3' not in k},
         'layer1.0 has no conv3: a BasicBlock ResNet (18/34), not one of the convertible '
         'bottleneck architectures ' + ', '.join(PI_ARCHS + PI_OTHER_ARCHS)),
        (_layout(**{'layer1.0.conv2.weight': torch.zeros(256, 4, 3, 3)}),
         'layer1.0.conv2 has shape (256, 4, 3, 3): a grouped 3x3 other than the (128, 4, 3, 3) '
         'of ResNeXt-32x4d, not one of the convertible architectures '
         + ', '.join(PI_ARCHS + PI_OTHER_ARCHS)),
        (_layout(**{'layer1.0.conv2.weight': torch.zeros(128, 4, 3, 3),
                    'layer1.0.se.fc.0.weight': torch.zeros(1)}),
         'layer1.0.conv2 has shape (128, 4, 3, 3): a grouped 3x3 other than the (128, 4, 3, 3) '
         'of ResNeXt-32x4d with SE attention, not one of the convertible architectures '
         + ', '.join(PI_ARCHS + PI_OTHER_ARCHS)),
        (_layout(**{'layer1.0.se.fc.0.weight': torch.zeros(1), 'layer1.0.gc.x': torch.zeros(1)}),
         "ambiguous checkpoint: keys of several variants ['se_', 'gc_']"),
    ]
    for state, message in cases:
        with pytest.raises(ValueError) as info:
            infer_pytorchinsight_arch(state)
        assert info.value.args[0] == message
    # a 1-d or square conv2 is no grouped conv; (128, 4, 3, 3) is ResNeXt-32x4d, plain or WS
    assert pytorchinsight_arch_candidates(_layout(**{'layer1.0.conv2.weight': torch.zeros(3)}))
    assert pytorchinsight_arch_candidates(
        _layout((3, 4, 23, 3), **{'layer1.0.conv2.weight': torch.zeros(128, 4, 3, 3)})) == (
            'resnext101_32x4d', 'ws_resnext101_32x4d_eshift')


# last: the model builds take ~1 s each (the unit tests above fail first when they can)
@pytest.mark.parametrize('arch', ARCHS)
def test_source_layout_converts_to_exactly_our_model_keys(arch):
    state = _source_state(arch)
    converted = convert_pytorchinsight_state_dict({f'module.{k}': v for k, v in state.items()})
    with fast_builds():
        model = build_imagenet_model(arch)
    assert {k: tuple(v.shape) for k, v in converted.items()} == \
        {k: tuple(v.shape) for k, v in model.state_dict().items()}
    # every source tensor used once, as it is (a reshape is a view of the same storage)
    assert sorted(_storage(v) for v in converted.values()) == \
        sorted(_storage(v) for v in state.values())
    for key, value in state.items():  # trunk and classifier keep their names
        target = converted.get(f'backbone.{key}', converted.get(f'head.{key}'))
        if target is not None:
            assert target is value, key
    assert converted['head.fc.weight'] is state['fc.weight']
