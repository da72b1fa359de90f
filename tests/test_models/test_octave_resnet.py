"""Oct-ResNet: octave-conv semantics, figures of the reference model, shapes, detection use."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from torch.nn.modules.batchnorm import _BatchNorm

from resvariants.models import OctResNet, ResNet
from resvariants.models.layers import OctaveConv, OctaveNorm, merge_octave

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
REFERENCE = 'third_party_reference_impls'


def _config(*parts):
    return Config.fromfile(osp.join(REPO, 'configs', *parts))


def _build_classifier(name):
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    from resvariants.engine.config_loading import register_scope
    register_scope('mmpretrain')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(_config('imagenet', name).model)


def test_octave_conv_partitions_the_weights_of_one_conv():
    # On spatially constant maps up/down-sampling is the identity, so an octave 1x1 conv must
    # equal one ordinary conv whose weight is the block matrix [[h2h, l2h], [h2l, l2l]].
    conv = OctaveConv(12, 20, 1, alpha_in=0.5, alpha_out=0.25)
    values = torch.randn(1, 12, 1, 1)
    high, low = values[:, :6].expand(1, 6, 6, 6), values[:, 6:].expand(1, 6, 3, 3)
    out_high, out_low = conv((high, low))
    weight = torch.cat([torch.cat([conv.conv_h2h.weight, conv.conv_l2h.weight], 1),
                        torch.cat([conv.conv_h2l.weight, conv.conv_l2l.weight], 1)], 0)
    expected = F.conv2d(values, weight)
    assert out_high.shape == (1, 15, 6, 6) and out_low.shape == (1, 5, 3, 3)
    torch.testing.assert_close(out_high[:, :, 2, 4], expected[:, :15, 0, 0])
    torch.testing.assert_close(out_low[:, :, 1, 1], expected[:, 15:, 0, 0])
    n_params = sum(p.numel() for p in conv.parameters())
    assert n_params == 12 * 20


def test_octave_conv_stride_two_matches_reference_operations():
    torch.manual_seed(0)
    conv = OctaveConv(8, 8, 3, alpha_in=0.5, alpha_out=0.5, stride=2, padding=1)
    high, low = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4)
    out_high, out_low = conv((high, low))
    pooled_high = F.avg_pool2d(high, 2)
    expected_high = conv.conv_h2h(pooled_high) + conv.conv_l2h(low)
    expected_low = conv.conv_h2l(F.avg_pool2d(pooled_high, 2)) + conv.conv_l2l(
        F.avg_pool2d(low, 2))
    torch.testing.assert_close(out_high, expected_high)
    torch.testing.assert_close(out_low, expected_low)


def test_octave_conv_stride_one_upsamples_low_to_high():
    conv = OctaveConv(8, 8, 3, alpha_in=0.5, alpha_out=0.5, padding=1)
    high, low = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 4, 4)
    out_high, _ = conv((high, low))
    expected = conv.conv_h2h(high) + F.interpolate(conv.conv_l2h(low), scale_factor=2,
                                                   mode='nearest')
    torch.testing.assert_close(out_high, expected)


@pytest.mark.parametrize('size', [(7, 7), (9, 13)])
def test_octave_conv_and_merge_take_odd_sizes(size):
    conv = OctaveConv(8, 16, 3, alpha_in=0., alpha_out=0.5, stride=2, padding=1)
    high, low = conv(torch.randn(1, 8, *size))
    expected = tuple((s + 1) // 2 for s in size)  # as a stride-2 3x3 conv
    assert high.shape[-2:] == expected
    assert low.shape[-2:] == tuple((s + 1) // 2 for s in expected)
    merged = merge_octave((high, low))
    assert merged.shape == (1, 16, *expected)
    torch.testing.assert_close(merged[:, :8], high)


def test_octave_modules_reject_the_wrong_number_of_streams():
    with pytest.raises(ValueError, match='expects a \\(high, low\\) pair'):
        OctaveConv(8, 8, 1, alpha_in=0.5)(torch.randn(1, 8, 4, 4))
    with pytest.raises(ValueError, match='expects a single tensor'):
        OctaveNorm(dict(type='BN'), 8, 0.)((torch.randn(1, 4, 4, 4), torch.randn(1, 4, 2, 2)))
    with pytest.raises(ValueError, match='stride 1 or 2'):
        OctaveConv(8, 8, 1, stride=3)
    with pytest.raises(ValueError, match='alpha_out must be a number in'):
        OctaveConv(8, 8, 1, alpha_out=1.0)
    with pytest.raises(ValueError, match='without a high- or low-frequency channel'):
        OctaveConv(1, 8, 1, alpha_in=0.5)


def _conv_linear_gmacs(model, size):
    """Multiply-accumulates of every Conv2d / Linear call (the reference's forward-hook count)."""
    macs = []

    def count(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * \
                module.kernel_size[1]
        else:
            per_output = module.in_features
        macs.append(output.numel() * per_output)

    handles = [m.register_forward_hook(count) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, *size))
        model.head.fc(model.head.pre_logits(feats))
    for handle in handles:
        handle.remove()
    return sum(macs) / 1e9


def test_oct_resnet50_has_resnet50_parameters_and_reference_macs(reference_figures):
    figures = reference_figures[REFERENCE]['oct_resnet50_dli14_alpha0.5']
    model = _build_classifier('oct_resnet50_in1k.py').eval()
    assert sum(p.numel() for p in model.parameters()) == figures['params'] == 25_557_032
    gmacs = _conv_linear_gmacs(model, (224, 224))
    # the reference figure has 4 decimals: the count must agree to that rounding (it is exact)
    assert gmacs == pytest.approx(figures['conv_linear_GMACs'], abs=6e-5)
    assert gmacs == pytest.approx(2.367, abs=5e-4)  # the reference README's 2.367 GFLOPs
    # and far below ResNet-50's 4.089 GMACs: the low-frequency half runs at 1/4 of the cost
    assert gmacs < 0.6 * reference_figures['pytorchinsight']['resnet50']['conv_linear_GMACs']


def test_oct_resnet101_has_reference_parameters_and_macs(reference_figures):
    figures = reference_figures[REFERENCE]['oct_resnet101_dli14_alpha0.5']
    model = _build_classifier('oct_resnet101_in1k.py').eval()
    assert sum(p.numel() for p in model.parameters()) == figures['params'] == 44_549_160
    gmacs = _conv_linear_gmacs(model, (224, 224))
    assert gmacs == pytest.approx(figures['conv_linear_GMACs'], abs=6e-5)
    assert gmacs == pytest.approx(3.991, abs=5e-4)


def test_stream_layout_follows_the_reference():
    model = OctResNet(depth=50, base_channels=16)
    first, last = model.layer1[0], model.layer4[0]
    assert (first.conv1.alpha_in, first.conv1.alpha_out) == (0., 0.5)
    assert (first.downsample[0].alpha_in, first.downsample[0].alpha_out) == (0., 0.5)
    assert (model.layer2[1].conv2.alpha_in, model.layer3[2].conv3.alpha_out) == (0.5, 0.5)
    assert (last.conv1.alpha_in, last.conv1.alpha_out) == (0.5, 0.)
    assert (last.downsample[0].alpha_in, last.downsample[0].alpha_out) == (0.5, 0.)
    assert all(conv.alpha_in == conv.alpha_out == 0.
               for block in model.layer4[1:] for conv in (block.conv1, block.conv2, block.conv3))
    assert model.layer4[2].conv2.conv_l2l is None and model.layer4[2].bn2.norm_l is None


@pytest.mark.parametrize('size', [(64, 64), (65, 97), (33, 31), (40, 57)])
def test_outputs_are_single_tensors_with_plain_resnet_shapes(size):
    kwargs = dict(depth=50, base_channels=16, out_indices=(0, 1, 2, 3))
    octave = OctResNet(**kwargs).eval()
    plain = ResNet(**kwargs).eval()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        outs, expected = octave(x), plain(x)
    assert all(isinstance(o, torch.Tensor) for o in outs)
    assert [o.shape for o in outs] == [e.shape for e in expected]


def test_alpha_sets_the_low_frequency_share():
    model = OctResNet(depth=50, base_channels=16, alpha=0.25)
    conv = model.layer2[1].conv2  # 32 -> 32 channels
    assert (conv.conv_h2h.in_channels, conv.conv_l2l.in_channels) == (24, 8)
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in ResNet(depth=50, base_channels=16).parameters())


def test_training_step_backpropagates_through_both_streams():
    model = OctResNet(depth=50, base_channels=8, out_indices=(3, )).train()
    out = model(torch.randn(2, 3, 37, 41))[0]
    out.mean().backward()
    low_path = model.layer2[0].conv2.conv_l2l.weight.grad
    assert low_path is not None and low_path.abs().sum() > 0


def test_frozen_stages_and_norm_eval_cover_octave_norms():
    model = OctResNet(depth=50, base_channels=8, frozen_stages=2, norm_eval=True).train()
    assert not any(p.requires_grad for p in model.layer2.parameters())
    assert all(p.requires_grad for p in model.layer3.parameters())
    assert not any(m.training for m in model.modules() if isinstance(m, _BatchNorm))
    assert model.layer3[0].bn1.norm_l in list(model.modules())


def test_zero_init_residual_zeroes_both_frequencies_of_the_last_norm():
    model = OctResNet(depth=50, base_channels=8, zero_init_residual=True)
    model.init_weights()
    for block in (model.layer1[0], model.layer2[1], model.layer4[2]):
        for norm in (block.bn3.norm_h, block.bn3.norm_l):
            if norm is not None:
                assert torch.count_nonzero(norm.weight) == 0
    assert torch.count_nonzero(model.layer1[0].bn2.norm_h.weight) > 0


@pytest.mark.parametrize('kwargs', [
    dict(alpha=0.), dict(alpha=1.0), dict(attention='se'), dict(sk=dict(groups=32)),
    dict(groups=32), dict(avg_down=True), dict(num_stages=1),
])
def test_unsupported_options_are_refused(kwargs):
    with pytest.raises(ValueError, match='OctResNet'):
        OctResNet(depth=50, base_channels=8, **kwargs)


def test_classifier_weights_load_into_the_detector_backbone():
    from resvariants.engine.strict_pretrained import compare_state_dicts
    classifier = _build_classifier('oct_resnet50_in1k.py')
    backbone_state = {k[len('backbone.'):]: v for k, v in classifier.state_dict().items()
                      if k.startswith('backbone.')}
    cfg = _config('faster_rcnn_oct_r50_fpn.py').model.backbone
    cfg.pop('init_cfg')
    detector_backbone = OctResNet(**{k: v for k, v in cfg.items() if k != 'type'})
    assert compare_state_dicts(detector_backbone.state_dict(), backbone_state) == ([], [], [])


def test_faster_rcnn_config_trains_on_an_odd_sized_image():
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.registry import DefaultScope
    from mmengine.structures import InstanceData

    from resvariants.engine.config_loading import register_scope
    register_scope('mmdet')
    cfg = _config('faster_rcnn_oct_r50_fpn.py').model
    cfg.backbone.update(init_cfg=None, base_channels=8)
    cfg.neck.update(in_channels=[32, 64, 128, 256], out_channels=32)
    cfg.rpn_head.update(in_channels=32, feat_channels=32)
    cfg.roi_head.bbox_roi_extractor.update(out_channels=32)
    cfg.roi_head.bbox_head.update(in_channels=32, fc_out_channels=64)
    with DefaultScope.overwrite_default_scope('mmdet'):
        detector = MODELS.build(cfg)
    detector.train()
    sample = DetDataSample(metainfo=dict(img_shape=(99, 131), ori_shape=(99, 131),
                                         batch_input_shape=(99, 131), scale_factor=(1., 1.),
                                         pad_shape=(99, 131)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[10., 12., 80., 70.]]),
                                       labels=torch.tensor([3]))
    feats = detector.extract_feat(torch.randn(1, 3, 99, 131))
    assert [tuple(f.shape[-2:]) for f in feats] == [(25, 33), (13, 17), (7, 9), (4, 5), (2, 3)]
    losses = detector.loss(torch.randn(1, 3, 99, 131), [sample])
    total, _ = detector.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    assert detector.backbone.layer3[0].conv2.conv_l2h.weight.grad.abs().sum() > 0
