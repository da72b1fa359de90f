"""ED path (ED-ResNet / ED-ResNeXt): any input size, released parameter counts, the shortcut
run once per forward, -A/-B FLOPs of the source's table, init and scope contracts."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch.nn.modules.batchnorm import _BatchNorm

from resvariants.analysis import count_complexity
from resvariants.models import EDResNet, ResNet

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
IMAGENET = osp.join(REPO, 'configs', 'imagenet')
HEAD_PARAMS = 2048 * 1000 + 1000


def build_classifier(name, **backbone_overrides):
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(osp.join(IMAGENET, f'{name}_in1k.py'))
    cfg.model.backbone.update(backbone_overrides)
    return MODELS.build(cfg.model)


def tiny(**kwargs):
    """ED-ResNet-50 at base width 32 (the narrowest width 32 ED groups divide)."""
    kwargs.setdefault('depth', 50)
    return EDResNet(base_channels=32, out_indices=(0, 1, 2, 3), **kwargs)


def trunk_sizes(h, w):
    """Feature sizes of a pytorch-style ResNet (stride-2 stem conv, max-pool, stride-2 3x3s)."""
    sizes = []
    for _ in range(5):
        h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        sizes.append((h, w))
    return sizes[1:]


@pytest.mark.parametrize('shape', [(224, 224), (256, 256), (65, 97), (33, 31), (7, 5),
                                   (800, 1333)])
def test_any_input_size_gives_the_trunk_shapes(shape):
    ed = tiny().eval()
    with torch.no_grad():
        outs = ed(torch.randn(1, 3, *shape))
    assert [tuple(o.shape[2:]) for o in outs] == trunk_sizes(*shape)
    assert [o.shape[1] for o in outs] == [128, 256, 512, 1024]
    assert all(torch.isfinite(o).all() for o in outs)


def test_trunk_sizes_match_the_plain_trunk():
    plain = ResNet(depth=50, base_channels=16, out_indices=(0, 1, 2, 3)).eval()
    with torch.no_grad():
        outs = plain(torch.randn(1, 3, 65, 98))
    assert [tuple(o.shape[2:]) for o in outs] == trunk_sizes(65, 98)


def test_resnext_and_se_and_reduced_width_run_at_odd_size():
    x = torch.randn(2, 3, 45, 67)
    for kwargs in (dict(groups=32, base_width=4), dict(attention='se'),
                   dict(branch_ratio=0.5), dict(groups=32, base_width=4, branch_ratio=0.6)):
        model = tiny(**kwargs).eval()
        with torch.no_grad():
            outs = model(x)
        assert [o.shape[1] for o in outs] == [128, 256, 512, 1024], kwargs
        assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize('name,released', [('ed_resnet50', 'ED50'), ('ed_resnet101', 'ED101'),
                                           ('ed_se_resnet50', 'EDSE50'),
                                           ('ed_resnext50', 'EDX50')])
def test_params_equal_released_models(name, released, reference_figures):
    model = build_classifier(name)
    assert sum(p.numel() for p in model.parameters()) == \
        reference_figures['ed_net'][released]['params']


def test_ed50_params_are_the_stated_figure():
    # the released ED50 (issue 5): ResNet-50 + 2,867,072 ED-path parameters
    assert sum(p.numel() for p in EDResNet(depth=50).parameters()) + HEAD_PARAMS == 28_424_104


def test_shortcut_runs_once_and_its_bn_updates_once_per_step():
    model = tiny(norm_eval=False).train()
    calls = []
    for name, module in model.named_modules():
        if name.endswith('downsample'):
            module.register_forward_hook(lambda *_: calls.append(1))
    out = model(torch.randn(2, 3, 32, 32))
    sum(o.mean() for o in out).backward()
    assert len(calls) == 4  # one projection shortcut per stage, each run once
    counters = {name: int(m.num_batches_tracked) for name, m in model.named_modules()
                if isinstance(m, _BatchNorm)}
    assert set(counters.values()) == {1}, counters
    assert counters['layer2.0.downsample.1'] == 1
    ed = model.layer3[1].ed_path
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ed.parameters())


def test_merge_adds_the_ed_path_of_the_shortcut():
    block = tiny().layer2[0].eval()
    x = torch.randn(1, 128, 8, 8)
    with torch.no_grad():
        out, shortcut = block.residual(x), block.shortcut(x)
        expected = torch.relu(out + shortcut + block.ed_path(shortcut))
        assert torch.allclose(block(x), expected)
        block.ed_path.decoder_norm.weight.zero_()
        block.ed_path.decoder_norm.bias.zero_()
        plain = torch.relu(out + shortcut)
        assert torch.allclose(block(x), plain)  # a zeroed decoder norm leaves a plain block


def test_branch_ratio_sets_the_residual_width_in_whole_groups():
    model = EDResNet(depth=50, branch_ratio=0.5)
    assert [getattr(model, f'layer{i}')[0].conv2.out_channels
            for i in range(1, 5)] == [32, 64, 128, 256]
    assert model.layer1[0].ed_path.encoder_conv.out_channels == 64  # ED keeps full width p
    resnext = EDResNet(depth=50, groups=32, base_width=4, branch_ratio=0.59)
    widths = [getattr(resnext, f'layer{i}')[0].conv2.out_channels for i in range(1, 5)]
    assert widths == [32 * round(4 * 2**i * 0.59) for i in range(4)]
    assert all(getattr(resnext, f'layer{i}')[0].conv2.groups == 32 for i in range(1, 5))


@pytest.mark.parametrize('kwargs,message', [
    (dict(depth=34), 'bottleneck depth'),
    (dict(depth=50, branch_ratio=0), 'branch_ratio'),
    (dict(depth=50, branch_ratio=1.5), 'branch_ratio'),
    (dict(depth=50, ed_groups=0), 'ed_groups'),
    (dict(depth=50, base_channels=16), 'not divisible by ed_groups'),
    (dict(depth=50, sk=dict(groups=32), branch_ratio=0.5), 'sk'),
])
def test_bad_arguments_name_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EDResNet(**kwargs)


VARIANT_FLOPS = [  # config, row of the source's table (reference_figures.json ed_net.readme)
    ('ed_resnet50-a', 'ED-ResNet-50-A'), ('ed_resnet50-b', 'ED-ResNet-50-B'),
    ('ed_resnet101-a', 'ED-ResNet-101-A'), ('ed_resnet101-b', 'ED-ResNet-101-B'),
    ('ed_resnet152-a', 'ED-ResNet-152-A'), ('ed_resnet152-b', 'ED-ResNet-152-B'),
    ('ed_resnext50-a', 'ED-ResNeXt-50-A'), ('ed_resnext50-b', 'ED-ResNeXt-50-B'),
    ('ed_resnext101-a', 'ED-ResNeXt-101-A'), ('ed_resnext101-b', 'ED-ResNeXt-101-B'),
]
STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def ed_gmacs_by_hand(depth, branch_ratio=1.0, groups=1, base_width=4, ed_groups=32, size=224,
                     classes=1000):
    """Conv + linear multiply-accumulates of an ED-ResNet(-Xt) classifier, counted by hand.

    Stage i has planes p = 64 * 2**i, output 4p, full width f (p; ResNeXt
    floor(p * base_width / 64) * groups) and residual width w = groups * round(f / groups * r)
    (whole groups). A block at input size h, output h' (stride 2 on the 3x3 of a stage's first
    block) costs 1x1: h^2 c_in w, 3x3: h'^2 w (w / groups) 9, 1x1: h'^2 w 4p, projection (first
    block): h'^2 c_in 4p, and the ED path on the shortcut (encoder conv and transposed decoder,
    both 3x3 with ed_groups groups at ceil(h'/2)): 2 ceil(h'/2)^2 4p (f / ed_groups) 9. Stem:
    7x7/2 conv 3 -> 64 at size/2; head: 2048 x classes.
    """
    macs = (size // 2)**2 * 64 * 3 * 49
    h, c_in = size // 4, 64
    for i, blocks in enumerate(STAGE_BLOCKS[depth]):
        planes = 64 * 2**i
        full = planes if groups == 1 else planes * base_width // 64 * groups
        width = groups * max(1, round(full // groups * branch_ratio))
        out = 4 * planes
        for j in range(blocks):
            h_out = (h - 1) // 2 + 1 if i > 0 and j == 0 else h
            macs += h * h * c_in * width + h_out**2 * width * (width // groups) * 9
            macs += h_out**2 * width * out + (h_out**2 * c_in * out if j == 0 else 0)
            code = (h_out - 1) // 2 + 1
            macs += 2 * code * code * out * (full // ed_groups) * 9
            h, c_in = h_out, out
    return (macs + 2048 * classes) / 1e9


def _ratio_and_groups(name):
    cfg = Config.fromfile(osp.join(IMAGENET, f'{name}_in1k.py')).model.backbone
    return dict(branch_ratio=cfg.get('branch_ratio', 1.0), groups=cfg.get('groups', 1),
                base_width=cfg.get('base_width', 4), ed_groups=cfg.get('ed_groups', 32))


@pytest.mark.parametrize('ratio,key', [(1.0, 'ED50_full'), (0.875, 'r0.875'), (0.75, 'r0.75'),
                                       (0.5, 'B_guess_width_half')])
def test_narrowed_ed50_equals_the_measured_source_model(ratio, key, reference_figures):
    """The released ED50 with its residual branch narrowed to r (measured on the source code,
    shortcut counted once): the same parameters and MACs, and the hand count agrees."""
    figures = reference_figures['ed_net']['forward_wrapped_GMACs'][key]
    model = build_classifier('ed_resnet50', branch_ratio=ratio)
    result = count_complexity(model, (224, 224))
    assert result.params == figures['params']
    assert result.gmacs == pytest.approx(figures['GMACs_shortcut_once'], abs=1e-4)
    assert ed_gmacs_by_hand(50, ratio) == pytest.approx(figures['GMACs_shortcut_once'],
                                                        abs=1e-4)


def test_hand_count_reproduces_the_released_ed101(reference_figures):
    figures = reference_figures['ed_net']['forward_wrapped_GMACs']['ED101_full']
    assert ed_gmacs_by_hand(101) == pytest.approx(figures['GMACs_shortcut_once'], abs=1e-4)


@pytest.mark.parametrize('name,row', VARIANT_FLOPS)
def test_variant_macs_equal_the_hand_count(name, row, reference_figures):
    """Each -A / -B config's cost is pinned by the hand count of its widths; its ratio is the
    one chosen to reproduce the source's GFLOPs column (checked last, 5 %)."""
    depth = int(name.split('-')[0].replace('ed_resnext', '').replace('ed_resnet', ''))
    arch = _ratio_and_groups(name)
    assert arch['branch_ratio'] < 1.0
    result = count_complexity(build_classifier(name), (224, 224))
    assert result.gmacs == pytest.approx(ed_gmacs_by_hand(depth, **arch), rel=1e-6)
    # the PytorchInsight-convention GFLOPs add only BN / ReLU / pooling elements to the MACs
    assert 0 < result.gflops - result.gmacs < 0.02 * result.gmacs
    source_gflops = reference_figures['ed_net']['readme'][row][2]
    assert abs(result.gflops - source_gflops) <= 0.05 * source_gflops, (name, result.gflops)


def test_full_width_counts_the_shortcut_once(reference_figures):
    # GMACs (conv + linear) of ED50 equal the released model's with the shortcut counted once
    figures = reference_figures['ed_net']['forward_wrapped_GMACs']['ED50_full']
    gmacs = count_complexity(build_classifier('ed_resnet50'), (224, 224)).gmacs
    assert gmacs == pytest.approx(figures['GMACs_shortcut_once'], abs=1e-3)
    assert gmacs < figures['GMACs_as_coded(shortcut run twice)'] - 0.3


def test_default_init_covers_the_transposed_decoder():
    torch.manual_seed(0)
    model = tiny(zero_init_residual=False)  # mmdet's default True zeroes the decoder norm
    decoder = model.layer4[2].ed_path.decoder_conv
    before = decoder.weight.detach().clone()
    model.init_weights()
    weight = decoder.weight.detach()
    assert not torch.equal(before, weight)
    # kaiming normal, fan_out of the transposed weight (in, out/groups, 3, 3) = in * 9
    expected_std = (2.0 / (weight.shape[0] * 9))**0.5
    assert weight.std().item() == pytest.approx(expected_std, rel=0.1)
    assert torch.all(model.layer4[2].ed_path.decoder_norm.weight == 1)


def test_zero_init_residual_starts_every_block_as_the_identity():
    model = tiny(zero_init_residual=True)
    model.init_weights()
    block = model.layer3[1]  # identity shortcut
    x = torch.rand(1, 512, 6, 5)
    with torch.no_grad():
        assert torch.allclose(block.eval()(x), x)
    assert all(torch.all(m.ed_path.decoder_norm.weight == 0) for m in model.layer4)
    pretrained = tiny(zero_init_residual=True, init_cfg=dict(type='Kaiming', layer='Conv2d'))
    pretrained.init_weights()  # a user's init_cfg: nothing is zeroed
    assert torch.all(pretrained.layer4[0].ed_path.decoder_norm.weight == 1)


def test_norm_eval_and_frozen_stages_cover_the_ed_path():
    model = tiny(frozen_stages=1, norm_eval=True).train()
    ed_norms = [m for name, m in model.named_modules()
                if '.ed_path.' in name and isinstance(m, _BatchNorm)]
    assert ed_norms and not any(m.training for m in ed_norms)
    assert not any(p.requires_grad for p in model.layer1.parameters())
    assert all(p.requires_grad for p in model.layer2[0].ed_path.parameters())


@pytest.mark.parametrize('scope', ['mmdet', 'mmpretrain', 'resvariants'])
def test_builds_from_a_config_dict_in_every_scope(scope):
    from mmengine.registry import MODELS
    from resvariants.engine.config_loading import register_scope
    register_scope(scope)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(dict(type='resvariants.EDResNet', depth=50, base_channels=32))
    assert isinstance(model, EDResNet)


def test_with_cp_gives_the_same_output_and_gradients():
    torch.manual_seed(0)
    plain = tiny(norm_eval=False)
    checkpointed = tiny(norm_eval=False, with_cp=True)
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    outs = [m.train()(x)[-1] for m in (plain, checkpointed)]
    assert torch.allclose(outs[0], outs[1], atol=1e-6)
    outs[1].sum().backward()
    assert checkpointed.layer2[0].ed_path.encoder_conv.weight.grad is not None
