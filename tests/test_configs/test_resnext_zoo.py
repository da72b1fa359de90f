"""ResNeXt 32x4d with every attention, on the one trunk: the ImageNet configs
(configs/imagenet/{,se_,sk_,cbam_,bam_,gc_,sge_,srm_}resnext{50,101}_32x4d_in1k.py) and the
Faster / Mask / Cascade R-CNN ResNeXt-101 configs (configs/*_x101_32x4d_fpn.py).

Parameter counts are pinned against independent computations: torchvision's ResNeXt class for
the plain nets, timm's SE-ResNeXt, the source's measured attention ResNets (an attention module
sits on the block output, whose channels ResNeXt shares with ResNet, so it adds what it adds to
ResNet) and, for SK, the module's parameters counted by hand. The detector configs are checked
to be their ResNet-101 config plus the ResNeXt arguments, and their backbone to take the
matching ImageNet classifier's weights key for key (what StrictPretrained loads).
"""
import functools
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from resvariants.engine.config_loading import register_scope
from resvariants.engine.strict_pretrained import mismatch_report

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO, 'configs')
VARIANTS = ['', 'se_', 'sk_', 'cbam_', 'bam_', 'gc_', 'sge_', 'srm_']
DETECTORS = ['faster_rcnn', 'mask_rcnn', 'cascade_rcnn']
BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
# where reference_figures.json keeps the source's attention ResNets (as tests/test_models)
REFERENCE = {'gc_': ('pytorchinsight_constructed', 'gc_resnet{d}'),
             'srm_': ('third_party_reference_impls', 'srm_resnet{d}_official')}
RESNEXT = {'groups': 32, 'base_width': 4}


@pytest.fixture(scope='module', autouse=True)
def memoised_package_bases():
    """mmengine looks every ``mmdet::`` / ``mmpretrain::`` base up in all ~400 metafiles of the
    package (about 0.5 s each, 4 per config) and the lookup fails (raises) for ``_base_`` files
    before the fallback finds them; remember both outcomes for this module's ~80 loads."""
    import mmengine.config.utils as config_utils
    lookup, outcomes = config_utils._get_cfg_metainfo, {}

    def memoised(package_path, cfg_path):
        key = (package_path, cfg_path)
        if key not in outcomes:
            try:
                outcomes[key] = (lookup(package_path, cfg_path), None)
            except ValueError as error:
                outcomes[key] = (None, error)
        value, error = outcomes[key]
        if error is not None:
            raise error
        return value

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(config_utils, '_get_cfg_metainfo', memoised)
        yield


@functools.lru_cache(maxsize=None)
def _imagenet(name):  # callers copy (to_dict / dict(...)) before changing anything
    return Config.fromfile(osp.join(CONFIGS, 'imagenet', f'{name}_in1k.py'))


def _build(registry_scope, cfg, device='meta'):
    """The model of ``cfg``; on the meta device (shapes only, no memory, no init: about three
    times faster) unless a forward is needed."""
    register_scope(registry_scope)
    if registry_scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope(registry_scope), torch.device(device):
        return MODELS.build(cfg)


def _params(module):
    return sum(p.numel() for p in module.parameters())


@functools.lru_cache(maxsize=None)
def _classifier(variant, depth):
    """(parameters, backbone key -> shape) of a ResNeXt ImageNet classifier, built once."""
    model = _build('mmpretrain', _imagenet(f'{variant}resnext{depth}_32x4d').model)
    shapes = {k[len('backbone.'):]: v for k, v in model.state_dict().items()
              if k.startswith('backbone.')}
    return _params(model), shapes


def classifier_params(variant, depth):
    return _classifier(variant, depth)[0]


@functools.lru_cache(maxsize=None)
def _torchvision_resnext(depth):
    from torchvision.models.resnet import Bottleneck, ResNet
    with torch.device('meta'):
        return _params(ResNet(Bottleneck, list(BLOCKS[depth]), groups=32, width_per_group=4))


def _sk_params_by_hand(depth):
    """SK* on ResNeXt: per block a second 32-group 3x3 conv (w x w/32 x 9) + its BN (2w) and
    the fusion (w -> w/16 conv, BN of w/16, w/16 -> 2w conv, no biases), w = 128 * 2^stage."""
    total = 0
    for stage, blocks in enumerate(BLOCKS[depth]):
        w = 128 * 2**stage
        hidden = w // 16
        total += blocks * (w * (w // 32) * 9 + 2 * w + w * hidden + 2 * hidden + hidden * 2 * w)
    return total


def _stated(path):
    """What a config file itself states: its top-level names, run as plain Python (the files
    are literals; mmengine's ``{{$VAR:default}}`` sits inside strings), without its bases.
    Loading a config through mmengine takes about 0.5 s, so the per-file structure checks
    read the files this way; the merged configs are checked where they are loaded anyway."""
    names = {}
    with open(path) as f:
        exec(compile(f.read(), path, 'exec'), {}, names)
    return names


@pytest.mark.parametrize('depth', [50, 101])
@pytest.mark.parametrize('variant', VARIANTS)
def test_imagenet_config_states_only_the_32x4d_groups(variant, depth):
    """The ResNeXt config is its ResNet config plus ``groups=32, base_width=4``: head, data,
    schedule and runtime (SRM's no-decay rule and best-epoch checkpoint included) inherited."""
    stated = _stated(osp.join(CONFIGS, 'imagenet', f'{variant}resnext{depth}_32x4d_in1k.py'))
    assert stated == dict(_base_=f'./{variant}resnet{depth}_in1k.py',
                          model=dict(backbone=RESNEXT))


@pytest.mark.parametrize('depth', [50, 101])
def test_merged_imagenet_config_differs_from_resnet_only_in_the_groups(depth):
    resnext = _imagenet(f'srm_resnext{depth}_32x4d').to_dict()
    expected = _imagenet(f'srm_resnet{depth}').to_dict()
    expected['model']['backbone'].update(RESNEXT)
    for cfg in (expected, resnext):  # the config files' own names
        cfg.pop('filename', None)
    assert resnext == expected
    assert resnext['optim_wrapper']['paramwise_cfg'] == dict(
        custom_keys={'.srm.': dict(decay_mult=0.)})


@pytest.mark.parametrize('depth,expected', [(50, 25_028_904), (101, 44_177_704)])
def test_plain_resnext_params_equal_torchvision(depth, expected):
    assert _torchvision_resnext(depth) == expected  # torchvision's published resnext50_32x4d
    assert classifier_params('', depth) == expected


@pytest.mark.parametrize('depth', [50, 101])
@pytest.mark.parametrize('variant', ['se_', 'cbam_', 'bam_', 'gc_', 'sge_', 'srm_'])
def test_attention_adds_what_it_adds_to_the_source_resnet(variant, depth, reference_figures):
    group, name = REFERENCE.get(variant, ('pytorchinsight', '{v}resnet{d}'))
    source = reference_figures[group][name.format(v=variant, d=depth)]['params']
    source_resnet = reference_figures['pytorchinsight'][f'resnet{depth}']['params']
    expected = _torchvision_resnext(depth) + source - source_resnet
    assert classifier_params(variant, depth) == expected


@pytest.mark.parametrize('depth,timm_name', [(50, 'seresnext50_32x4d'),
                                             (101, 'seresnext101_32x4d')])
def test_se_resnext_params_equal_timm(depth, timm_name):
    timm = pytest.importorskip('timm')
    with torch.device('meta'):
        independent = _params(timm.create_model(timm_name))
    assert classifier_params('se_', depth) == independent


@pytest.mark.parametrize('depth,expected', [(50, 25_028_904 + 2_373_808),
                                            (101, 44_177_704 + 4_481_264)])
def test_sk_resnext_params_by_hand(depth, expected):
    assert _sk_params_by_hand(depth) == expected - _torchvision_resnext(depth)
    assert classifier_params('sk_', depth) == expected


def test_resnext_gflops_against_the_ednet_readme():
    """The ED-Net README's plain ResNeXt-50 / -101 GFLOPs column (4.2 / 8.0, one decimal) is
    conv + linear MACs, as for its ResNets (projects/ed_path/README.md)."""
    from resvariants.analysis import count_complexity
    for depth, source in ((50, 4.2), (101, 8.0)):
        model = _build('mmpretrain', _imagenet(f'resnext{depth}_32x4d').model, device='cpu')
        result = count_complexity(model, (224, 224))
        assert round(result.gmacs, 1) == source


# ---------------------------------------------------------------------------------- detection

@functools.lru_cache(maxsize=None)
def _detector_cfg(det, variant, trunk):
    return Config.fromfile(osp.join(CONFIGS, f'{det}_{variant}{trunk}_fpn.py'))


def test_detection_zoo_has_every_resnext101_row():
    for det in DETECTORS:
        for variant in VARIANTS:
            assert osp.isfile(osp.join(CONFIGS, f'{det}_{variant}x101_32x4d_fpn.py'))


@pytest.mark.parametrize('det', DETECTORS)
@pytest.mark.parametrize('variant', VARIANTS)
def test_detector_config_states_only_the_32x4d_groups_and_checkpoint(det, variant):
    stated = _stated(osp.join(CONFIGS, f'{det}_{variant}x101_32x4d_fpn.py'))
    checkpoint = ('{{$RESVARIANTS_PRETRAINED:checkpoints/imagenet}}'
                  f'/{variant}resnext101_32x4d_in1k.pth')
    assert stated == dict(_base_=f'./{det}_{variant}r101_fpn.py',
                          model=dict(backbone=dict(RESNEXT, init_cfg=dict(checkpoint=checkpoint))))
    assert osp.isfile(osp.join(CONFIGS, 'imagenet', f'{variant}resnext101_32x4d_in1k.py'))


@pytest.mark.parametrize('variant', VARIANTS)
def test_detector_backbone_takes_the_classifier_weights_key_for_key(variant):
    """The merged config is the R101 one with the ResNeXt backbone and checkpoint, and the
    detector's backbone and the ImageNet classifier's ``backbone.*`` have the same keys and
    shapes (StrictPretrained loads them with nothing missing or unexpected). The three detectors
    state the same backbone (previous test), so Faster R-CNN's stands for all."""
    resnext = _detector_cfg('faster_rcnn', variant, 'x101_32x4d')
    expected = _detector_cfg('faster_rcnn', variant, 'r101').to_dict()
    checkpoint = resnext.model.backbone.init_cfg.checkpoint
    assert checkpoint.endswith(f'/{variant}resnext101_32x4d_in1k.pth')
    expected['model']['backbone'].update(RESNEXT)
    expected['model']['backbone']['init_cfg']['checkpoint'] = checkpoint
    actual = resnext.to_dict()
    for cfg in (expected, actual):  # the config files' own names
        cfg.pop('filename', None)
    assert actual == expected

    source = _classifier(variant, 101)[1]
    backbone_cfg = resnext.model.backbone
    backbone = _build('mmdet', dict(backbone_cfg.to_dict(), init_cfg=None))
    assert backbone.groups == 32 and backbone.base_width == 4
    assert backbone.layer1[0].conv2.groups == 32 and backbone.layer1[0].conv2.out_channels == 128
    assert mismatch_report(backbone, source) is None
