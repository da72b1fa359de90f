"""The PytorchInsight detection fork's mmdet-v1 checkpoints convert into our mmdet 3.x detectors.

Fabricated v1 checkpoints (mmdet_v1_reference.py: the backbone of pytorchinsight_reference.py and
the v1 neck / heads, every tensor random) are converted and loaded strictly into the model of
each run config (projects/public_weights/configs/pytorchinsight_det/). Checked: every target key
is filled and no source key is left, for each detector and backbone; the class reorder by value
(v1 background-first fc_cls -> background-last, background slot out of fc_reg / conv_logits); the
backbone + FPN (+ RPN) outputs of the converted model equal a direct computation of the v1 network
from the v1 tensors; for given RoIs the converted box / mask heads' class scores and deltas are the
v1 ones, reordered exactly as the class mapping says. R50 forwards at 64x64.
"""
import pytest
import torch
from fabricate import fast_builds, randomize_all_
from mmdet_v1_reference import (BACKBONES, DETECTORS, random_heads, reference_backbone,
                                stage_outputs, v1_anchors, v1_bbox_head, v1_decode, v1_fpn,
                                v1_mask_head, v1_rpn)

from resvariants.converters.pytorchinsight_det import (config_name,
                                                       convert_pytorchinsight_det_state_dict)
from resvariants.engine.config_loading import build_model, read_config
from resvariants.engine.strict_pretrained import load_state_dict_strictly
from resvariants.utils import load_checkpoint_safely
from tools.model_converters import pytorchinsight_det_to_mmdet
from tools.model_converters.pytorchinsight_det_to_mmdet import run_config

SIDE = 64
_MODELS = {}
_REFERENCES = {}


def detector_model(detector, backbone):
    """Our mmdet 3.x detector of the run config (built once per module, eval mode)."""
    key = (detector, backbone)
    if key not in _MODELS:
        with fast_builds():
            _MODELS[key] = build_model(read_config(run_config(detector, backbone))).eval()
    return _MODELS[key]


def source_backbone(backbone):
    """The fork's backbone (independent re-implementation) with every tensor random."""
    if backbone not in _REFERENCES:
        torch.manual_seed(0)
        with fast_builds():
            reference = reference_backbone(backbone)
        _REFERENCES[backbone] = randomize_all_(reference, SIDE, seed=7)
    return _REFERENCES[backbone]


def v1_state(detector, backbone, seed=0):
    """A v1 checkpoint's state dict: ``backbone.*`` (no fc) + neck and heads."""
    trunk = {f'backbone.{k}': v for k, v in source_backbone(backbone).state_dict().items()
             if not k.startswith('fc.')}
    return {**trunk, **random_heads(detector, seed)}


@pytest.fixture(scope='module', autouse=True)
def _release_models():
    yield
    _MODELS.clear()
    _REFERENCES.clear()


#: every detector (R50) and every backbone (Faster R-CNN): the backbone rules do not depend on
#: the detector nor the head rules on the backbone, so the rest of the 3 x 6 grid adds nothing
CASES = [(d, 'r50') for d in DETECTORS] + [('faster_rcnn', b) for b in BACKBONES if b != 'r50']


@pytest.mark.parametrize('detector,backbone', CASES)
def test_every_target_key_is_filled_and_no_source_key_left(detector, backbone):
    state = v1_state(detector, backbone)
    converted, found_detector, found_backbone = convert_pytorchinsight_det_state_dict(state)
    assert (found_detector, found_backbone) == (detector, backbone)
    model = detector_model(detector, backbone)
    assert {k: tuple(v.shape) for k, v in converted.items()} == \
        {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert len(converted) == len(state)  # one target per source tensor
    # unchanged tensors keep their storage; fc_cls is rebuilt (rows moved), fc_reg /
    # conv_logits are views of a slice of the source rows
    moved = {k for k in converted if '.fc_cls.' in k}
    pointers = sorted(v.untyped_storage().data_ptr() for k, v in converted.items()
                      if k not in moved)
    assert pointers == sorted(v.untyped_storage().data_ptr() for k, v in state.items()
                              if '.fc_cls.' not in k)
    load_state_dict_strictly(model, converted)
    assert config_name(detector, backbone) == f'{detector}_{backbone}_fpn_v1'


@pytest.mark.parametrize('detector', DETECTORS)
def test_class_channels_reorder_by_value(detector):
    """Row i of every v1 class-indexed tensor holds the value i: the converted rows show where
    each v1 row went (classes 1..80 -> 0..79, background 0 -> 80 in fc_cls, dropped elsewhere)."""
    state = random_heads(detector)
    heads = ['bbox_head.'] if detector != 'cascade_rcnn' else [f'bbox_head.{i}.' for i in range(3)]
    for key, value in state.items():
        if '.fc_' in key or 'conv_logits' in key:
            rows = torch.arange(value.shape[0], dtype=value.dtype)
            state[key] = rows.reshape(-1, *[1] * (value.dim() - 1)).expand_as(value).clone()
    state.update({f'backbone.{k}': v for k, v in source_backbone('r50').state_dict().items()
                  if not k.startswith('fc.')})
    converted = convert_pytorchinsight_det_state_dict(state)[0]
    background_last = torch.tensor([*range(1, 81), 0], dtype=torch.float32)
    for head in heads:
        for name in ('weight', 'bias'):
            cls = converted[f'roi_head.{head}fc_cls.{name}']
            assert torch.equal(cls.reshape(81, -1)[:, 0], background_last)
            reg = converted[f'roi_head.{head}fc_reg.{name}'].reshape(-1, 1024 if
                                                                     name == 'weight' else 1)
            if detector == 'cascade_rcnn':  # class-agnostic: the 4 rows as they were
                assert torch.equal(reg[:, 0], torch.arange(4.))
            else:  # the background's deltas (rows 0-3) are gone
                assert torch.equal(reg[:, 0], torch.arange(4., 324.))
    if detector == 'mask_rcnn':
        for name in ('weight', 'bias'):
            logits = converted[f'roi_head.mask_head.conv_logits.{name}']
            assert torch.equal(logits.reshape(80, -1)[:, 0], torch.arange(1., 81.))


@pytest.fixture(params=['r50', 'se_r50', 'sge_r50'])
def loaded(request):
    """(backbone, v1 state, the v1 backbone, our Faster R-CNN holding the converted state), all
    in float64 so that only a real difference of computation can exceed the tolerance."""
    backbone = request.param
    state = {k: v.double() if v.is_floating_point() else v
             for k, v in v1_state('faster_rcnn', backbone, seed=1).items()}
    model = detector_model('faster_rcnn', backbone).double()
    load_state_dict_strictly(model, convert_pytorchinsight_det_state_dict(state)[0])
    yield backbone, state, source_backbone(backbone).double().eval(), model
    model.float()
    source_backbone(backbone).float()


def _max_rel_diff(got, expected):
    return ((got - expected).abs().max() / expected.abs().max()).item()


def test_backbone_neck_and_rpn_outputs_equal_the_v1_computation(loaded):
    backbone, state, source, model = loaded
    x = torch.randn(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(3),
                    dtype=torch.float64)
    with torch.no_grad():
        ours = model.extract_feat(x)
        expected = v1_fpn(stage_outputs(source, x), state)
        rpn_cls, rpn_reg = model.rpn_head(ours)
    assert [tuple(p.shape[2:]) for p in ours] == [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    for level, (got, want) in enumerate(zip(ours, expected)):
        assert want.std() > 0.1, level  # informative maps
        assert _max_rel_diff(got, want) < 1e-12, level
        v1_cls, v1_reg = v1_rpn(want, state)
        assert _max_rel_diff(rpn_cls[level], v1_cls) < 1e-12
        assert _max_rel_diff(rpn_reg[level], v1_reg) < 1e-12


#: RoIs (batch index, x1, y1, x2, y2) on the 64x64 image: small ones pool from P2, the large
#: one from P3
ROIS = torch.tensor([[0., 2., 3., 30., 25.], [0., 10., 8., 40., 50.], [1., 0., 0., 63., 63.],
                     [1., 20., 30., 28., 36.]])


@pytest.mark.parametrize('detector', DETECTORS)
def test_roi_heads_give_the_v1_scores_and_deltas_reordered(detector):
    state = v1_state(detector, 'r50', seed=2)
    model = detector_model(detector, 'r50')
    load_state_dict_strictly(model, convert_pytorchinsight_det_state_dict(state)[0])
    roi_head = model.roi_head
    x = torch.randn(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(4))
    stages = range(3) if detector == 'cascade_rcnn' else [None]
    with torch.no_grad():
        feats = model.extract_feat(x)
        for stage in stages:
            extractor = roi_head.bbox_roi_extractor if stage is None else \
                roi_head.bbox_roi_extractor[stage]
            head = roi_head.bbox_head if stage is None else roi_head.bbox_head[stage]
            pooled = extractor(feats[:extractor.num_inputs], ROIS)
            cls_score, bbox_pred = head(pooled)
            v1_cls, v1_reg = v1_bbox_head(pooled, state, 'bbox_head.' if stage is None
                                          else f'bbox_head.{stage}.')
            assert v1_cls.std() > 0.1
            # class c (0..79) is v1's class c + 1; the background moves from 0 to 80
            torch.testing.assert_close(cls_score[:, :80], v1_cls[:, 1:], rtol=0, atol=1e-5)
            torch.testing.assert_close(cls_score[:, 80], v1_cls[:, 0], rtol=0, atol=1e-5)
            torch.testing.assert_close(cls_score.softmax(-1)[:, :80], v1_cls.softmax(-1)[:, 1:],
                                       rtol=0, atol=1e-6)
            if detector == 'cascade_rcnn':
                assert bbox_pred.shape == (4, 4)
                torch.testing.assert_close(bbox_pred, v1_reg, rtol=0, atol=1e-5)
            else:  # class c's deltas are v1's of class c + 1 (the background's are dropped)
                assert bbox_pred.shape == (4, 320)
                torch.testing.assert_close(bbox_pred.reshape(4, 80, 4),
                                           v1_reg.reshape(4, 81, 4)[:, 1:], rtol=0, atol=1e-5)
        if detector == 'mask_rcnn':
            pooled = roi_head.mask_roi_extractor(feats[:4], ROIS)
            assert pooled.shape == (4, 256, 14, 14)
            masks = roi_head.mask_head(pooled)
            v1_masks = v1_mask_head(pooled, state)
            assert masks.shape == (4, 80, 28, 28) and v1_masks.shape == (4, 81, 28, 28)
            torch.testing.assert_close(masks, v1_masks[:, 1:], rtol=0, atol=1e-5)


@pytest.mark.parametrize('detector', ['faster_rcnn', 'cascade_rcnn'])
def test_run_configs_place_and_decode_boxes_as_v1(detector):
    """The run configs' anchors are v1's exactly (direct computation of the v1 formulas). Their
    box coder (mmdet's LegacyDeltaXYWHBBoxCoder) is v1's "+1" decoding except for one choice
    of mmdet's: the corners are not moved 0.5 px inwards (boxes 1 px wider; mmdet measured
    ~+0.5 box AP on converted v1 models), so decoded boxes are v1's widened by 0.5 px a side,
    then clipped to the image."""
    model = detector_model(detector, 'r50')
    sizes = [(16, 12), (8, 6), (4, 3), (2, 2), (1, 1)]
    priors = model.rpn_head.prior_generator.grid_priors(sizes, device='cpu')
    for (h, w), stride, got in zip(sizes, (4, 8, 16, 32, 64), priors):
        torch.testing.assert_close(got, v1_anchors(stride, h, w), rtol=0, atol=0)
    g = torch.Generator().manual_seed(6)
    rois = torch.tensor([[3., 5., 40., 30.], [0., 0., 63., 63.], [20., 10., 22., 50.]])
    deltas = torch.randn(3, 4, generator=g) * 2  # some past the log-scale clamp
    coders = [model.rpn_head.bbox_coder]
    heads = model.roi_head.bbox_head
    coders += [h.bbox_coder for h in heads] if detector == 'cascade_rcnn' else [heads.bbox_coder]
    for coder in coders:
        expected = v1_decode(rois, deltas, coder.stds) + torch.tensor([-.5, -.5, .5, .5])
        expected[:, 0::2] = expected[:, 0::2].clamp(0, 70 - 1)
        expected[:, 1::2] = expected[:, 1::2].clamp(0, 60 - 1)
        torch.testing.assert_close(coder.decode(rois, deltas, max_shape=(60, 70)), expected)
    assert [list(c.stds) for c in coders] == (
        [[1.0, 1.0, 1.0, 1.0], [0.1, 0.1, 0.2, 0.2]] if detector == 'faster_rcnn' else
        [[1.0, 1.0, 1.0, 1.0], [0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
         [0.033, 0.033, 0.067, 0.067]])


def _save_v1(state, path):
    torch.save({'meta': {'mmdet_version': '0.6.0+bdfd787', 'epoch': 24, 'iter': 175872},
                'state_dict': state, 'optimizer': {'state': {}, 'param_groups': []}}, path)
    return path


def test_the_tool_writes_a_checkpoint_for_the_run_config(tmp_path):
    state = v1_state('faster_rcnn', 'sge_r50', seed=3)
    src, dst = _save_v1(state, tmp_path / 'faster_sge.pth'), tmp_path / 'faster_sge_mmdet3.pth'
    with fast_builds():
        pytorchinsight_det_to_mmdet.main([str(src), str(dst)])
    checkpoint = load_checkpoint_safely(str(dst))
    meta = checkpoint['meta']
    assert meta['arch'] == 'faster_rcnn_sge_r50_fpn'
    assert meta['config'] == ('projects/public_weights/configs/pytorchinsight_det/'
                              'faster_rcnn_sge_r50_fpn_v1.py')
    assert meta['source_layout'] == 'mmdet v1 (PytorchInsight detection fork)'
    assert (meta['epoch'], meta['mmdet_version']) == (24, '0.6.0+bdfd787')
    model = detector_model('faster_rcnn', 'sge_r50')
    load_state_dict_strictly(model, checkpoint['state_dict'])
    torch.testing.assert_close(model.roi_head.bbox_head.fc_cls.bias[80],
                               state['bbox_head.fc_cls.bias'][0])


def test_what_is_not_a_fork_detector_is_refused(tmp_path):
    state = v1_state('faster_rcnn', 'r50')
    cases = [
        ({('roi_head.' + k if k.startswith('bbox_head') else k): v for k, v in state.items()},
         ValueError, 'the checkpoint has roi_head.* keys: it is an mmdet 2.x / 3.x detector '
                     'already, not an mmdet v1 (PytorchInsight fork) one'),
        ({k: v for k, v in state.items() if not k.startswith('rpn_head.')}, ValueError,
         'not a two-stage mmdet v1 detector: no rpn_head. keys (the fork\'s Faster / Mask / '
         'Cascade R-CNN have backbone, neck, rpn_head and bbox_head)'),
        ({**state, 'backbone.layer1.0.cbam.ChannelGate.mlp.1.weight': torch.zeros(1)},
         ValueError, 'backbone cbam_resnet50: the fork trains two-stage detectors only on r50, '
                     'se_r50, sge_r50, r101, se_r101, sge_r101 (its CBAM / BAM / GC / SK '
                     'backbones are RetinaNet-only); not converted'),
        ({**state, 'bbox_head.reg_fcs.0.weight': torch.zeros(1)}, KeyError,
         '1 PytorchInsight detection (mmdet v1) keys have no counterpart in our mmdet 3.x '
         'faster_rcnn (a different architecture?): bbox_head.reg_fcs.0.weight'),
    ]
    for bad, error, message in cases:
        with pytest.raises(error) as info:
            convert_pytorchinsight_det_state_dict(bad)
        assert info.value.args[0] == message
    wrong_rows = dict(state, **{'bbox_head.fc_reg.weight': torch.zeros(8, 1024)})
    with pytest.raises(ValueError, match=r'8 rows where \(C \+ 1\) x 4 = 324 were expected'):
        convert_pytorchinsight_det_state_dict(wrong_rows)
    voc = {**state, 'bbox_head.fc_cls.weight': torch.zeros(21, 1024)}
    src = _save_v1(voc, tmp_path / 'voc.pth')
    with pytest.raises(ValueError, match='20 object classes'):
        pytorchinsight_det_to_mmdet.main([str(src), str(tmp_path / 'out.pth')])
    assert not (tmp_path / 'out.pth').exists()
