"""Every PytorchInsight architecture converts exactly: the source network (an independent
re-implementation, pytorchinsight_reference.py) with every tensor random, saved in the source's
key layout, converted, and loaded into our config's model gives the same logits in float64.

A mapping that swaps, transposes or misroutes any tensor (e.g. BAM's two dilated convs) changes
the logits far beyond the tolerance; key-count checks would not notice.
"""
import json
import os.path as osp
import re

import pytest
import torch
from fabricate import fast_builds, randomize_all_
from pytorchinsight_reference import VARIANTS, ReferenceResNet

from resvariants.converters import (convert_pytorchinsight_state_dict, infer_pytorchinsight_arch,
                                    pytorchinsight_arch_candidates)
from resvariants.engine.strict_pretrained import load_state_dict_strictly
from test_integration.utils import REPO
from tools.model_converters import pytorchinsight_to_mmpretrain
from tools.model_converters.pytorchinsight_to_mmpretrain import build_imagenet_model

KEYS_DIR = osp.join(REPO, 'tests', 'data', 'reference', 'keys')
ARCHS = [f'{v}_resnet{d}' if v else f'resnet{d}' for d in (50, 101) for v in VARIANTS]
SIDE = 64  # 1x3x64x64: every stage keeps at least 2x2 positions


def split_arch(arch):
    variant, _, depth = arch.rpartition('resnet')
    return variant.rstrip('_'), int(depth)


def listing(arch):
    """{key: shape} of the original model, where the repository has its key listing."""
    path = osp.join(KEYS_DIR, f'keys_{arch}.txt')
    if not osp.isfile(path):
        return None
    shapes = {}
    with open(path) as f:
        for line in f:
            if line.startswith('#') or not line.strip():
                continue
            key, shape, _ = line.rstrip('\n').split('\t')
            shapes[key] = tuple(int(s) for s in shape.strip('()').split(',') if s.strip())
    return shapes


def source_layout(arch):
    """{key: shape} of the source model: its listing, or one derived from the listings.

    R101 without a listing: the variant's R50 listing with layer3 blocks 6..22 shaped like
    block 1. SRM (no PytorchInsight model; the official SRM code): the ResNet listing plus
    ``rclb.cfc`` [C, 2] and ``rclb.bn`` (C) in every block.
    """
    shapes = listing(arch)
    if shapes is not None:
        return shapes
    variant, depth = split_arch(arch)
    if variant == 'srm':
        shapes = source_layout(f'resnet{depth}')
        for key, shape in list(shapes.items()):
            match = re.match(r'(layer\d\.\d+)\.bn3\.weight$', key)
            if match:
                block = match.group(1)
                shapes[f'{block}.rclb.cfc'] = (shape[0], 2)
                for name in ('weight', 'bias', 'running_mean', 'running_var'):
                    shapes[f'{block}.rclb.bn.{name}'] = shape
                shapes[f'{block}.rclb.bn.num_batches_tracked'] = ()
        return shapes
    assert depth == 101, arch
    shapes = dict(listing(f'{variant}_resnet50' if variant else 'resnet50'))
    for key, shape in list(shapes.items()):
        match = re.match(r'layer3\.1\.(.+)$', key)
        if match:
            shapes.update({f'layer3.{i}.{match.group(1)}': shape for i in range(6, 23)})
    return shapes


def test_r101_layouts_derive_like_the_listed_ones():
    """The derivation of source_layout reproduces the two R101 listings the repository has."""
    for variant in ('', 'sge_'):
        shapes = dict(listing(f'{variant}resnet50'))
        for key, shape in list(shapes.items()):
            match = re.match(r'layer3\.1\.(.+)$', key)
            if match:
                shapes.update({f'layer3.{i}.{match.group(1)}': shape for i in range(6, 23)})
        assert shapes == listing(f'{variant}resnet101')


@pytest.fixture(scope='module', params=ARCHS)
def case(request):
    """(arch, source state dict, source logits, our converted model) for one architecture."""
    arch = request.param
    variant, depth = split_arch(arch)
    with fast_builds():
        reference = ReferenceResNet(depth, variant)
        model = build_imagenet_model(arch).double().eval()
    reference = randomize_all_(reference.double(), SIDE, seed=depth)
    x = torch.randn(1, 3, SIDE, SIDE, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(1))
    state = reference.state_dict()
    with torch.no_grad():
        expected = reference(x)
    load_state_dict_strictly(model, convert_pytorchinsight_state_dict(state))
    yield arch, state, x, expected, model
    del model, reference, state


def source_params(arch):
    """The source model's parameter count as measured on the original code."""
    with open(osp.join(REPO, 'tests', 'data', 'reference', 'reference_figures.json')) as f:
        figures = json.load(f)
    if arch.startswith('srm_'):
        entry = figures['third_party_reference_impls'][f'{arch}_official']
    elif arch.startswith('gc_'):
        entry = figures['pytorchinsight_constructed'][arch]
    else:
        entry = figures['pytorchinsight'][arch]
    return entry['params']


def test_reference_has_the_source_key_layout(case):
    """The re-implementation is the source model: its keys and shapes, its parameter count."""
    arch, state, *_ = case
    assert {k: tuple(v.shape) for k, v in state.items()} == source_layout(arch)
    params = sum(v.numel() for k, v in state.items()
                 if not k.endswith(('running_mean', 'running_var', 'num_batches_tracked')))
    assert params == source_params(arch)


def test_architecture_is_identified(case):
    arch, state, *_ = case
    module_state = {f'module.{k}': v for k, v in state.items()}
    if split_arch(arch)[0] in ('', 'ws'):
        depth = split_arch(arch)[1]
        assert pytorchinsight_arch_candidates(module_state) == (f'resnet{depth}',
                                                                f'ws_resnet{depth}')
    else:
        assert infer_pytorchinsight_arch(module_state) == arch


def test_converted_model_gives_the_source_logits(case):
    arch, state, x, expected, model = case
    with torch.no_grad():
        got = model(x, mode='tensor')
    assert got.shape == expected.shape == (1, 1000)
    assert expected.std() > 0.1  # informative logits, not a saturated constant
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9 * expected.abs().max().item())
    variant, depth = split_arch(arch)
    if variant in ('', 'ws'):
        # the plain and WS layouts coincide, yet loaded into the other one's model the same
        # tensors compute other logits: inferring resnet<d> for a WS release would be wrong
        with fast_builds():
            other = build_imagenet_model(f'resnet{depth}' if variant else f'ws_resnet{depth}')
        other = other.double().eval()
        load_state_dict_strictly(other, convert_pytorchinsight_state_dict(state))
        with torch.no_grad():
            wrong = other(x, mode='tensor')
        assert (wrong - expected).abs().max() > 0.1 * expected.abs().max()


def _save_pi(state, path):
    torch.save({'epoch': 90, 'best_acc': torch.tensor(76.74),
                'state_dict': {f'module.{k}': v.float() for k, v in state.items()},
                'optimizer': {'state': {}, 'param_groups': [{'lr': 0.1}]}}, path)


# WS releases (detected from their BatchNorm statistics, or refused): test_pytorchinsight_ws.py


def test_arch_that_the_keys_rule_out_is_refused(tmp_path):
    src = tmp_path / 'se.pth.tar'
    _save_pi(ReferenceResNet(50, 'se').state_dict(), src)
    with pytest.raises(ValueError, match='does not match the checkpoint, which is se_resnet50'):
        pytorchinsight_to_mmpretrain.main([str(src), str(tmp_path / 'o.pth'), '--arch',
                                           'ws_resnet50'])


def _layout(**overrides):
    """A minimal ResNet-50 key layout (only what the inference reads)."""
    state = {f'layer{s}.{i}.bn1.weight': torch.zeros(1)
             for s, n in enumerate((3, 4, 6, 3), start=1) for i in range(n)}
    state['layer1.0.conv2.weight'] = torch.zeros(64, 64, 3, 3)
    state['layer1.0.conv3.weight'] = torch.zeros(256, 64, 1, 1)
    state.update(overrides)
    return state


def test_layouts_outside_the_table_are_refused_with_the_reason():
    with pytest.raises(ValueError, match=r'--arch resnet50 or --arch ws_resnet50'):
        infer_pytorchinsight_arch(_layout())
    resnet34 = {k: v for k, v in _layout().items() if 'conv3' not in k}
    with pytest.raises(ValueError, match='BasicBlock ResNet'):
        pytorchinsight_arch_candidates(resnet34)
    with pytest.raises(ValueError, match='grouped'):
        pytorchinsight_arch_candidates(_layout(**{'layer1.0.conv2.weight':
                                                  torch.zeros(256, 4, 3, 3)}))
    resnet152 = {f'layer{s}.{i}.bn1.weight': torch.zeros(1)
                 for s, n in enumerate((3, 8, 36, 3), start=1) for i in range(n)}
    with pytest.raises(ValueError, match=r'blocks per stage \(3, 8, 36, 3\)'):
        pytorchinsight_arch_candidates(resnet152)
    assert infer_pytorchinsight_arch(_layout(**{'layer1.0.rclb.cfc': torch.zeros(256, 2)})) == \
        'srm_resnet50'
