"""The PytorchInsight detection fork's detectors (mmdet v0.6 / v1 layout), for tests only.

``v1_layout`` lists the keys and shapes of a v1 Faster / Mask / Cascade R-CNN + FPN state dict
(backbone from pytorchinsight_reference.ReferenceResNet without its ``fc``; FPN, RPN and RoI
heads as mmdet v1 named them: ``neck.lateral_convs.i.conv``, ``rpn_head.rpn_cls``,
``bbox_head[.N].shared_fcs.i`` / ``fc_cls`` (C + 1 rows, background first) / ``fc_reg`` (4 (C + 1)
rows, or 4 when class-agnostic as in Cascade), ``mask_head.convs.i.conv`` / ``upsample`` /
``conv_logits`` (C + 1)). The functions below compute what those v1 modules compute, written with
torch.nn.functional from the v1 tensors alone (no mmdet module is used):

* FPN (``add_extra_convs=False``): 1x1 laterals, top-down sum with x2 nearest upsampling, 3x3
  outputs, P6 = max-pool(P5, kernel 1, stride 2);
* RPN head: 3x3 conv + ReLU, then 1x1 ``rpn_cls`` (one sigmoid logit per anchor) and ``rpn_reg``;
* box head: flatten, two FC + ReLU, ``fc_cls`` and ``fc_reg``;
* mask head: four 3x3 conv + ReLU, 2x2 stride-2 deconv + ReLU, 1x1 ``conv_logits``;
* anchors: per level of stride s, base anchors of side s * 8 * (1 / sqrt(r), sqrt(r)) for the
  ratios r = h / w, centred at ((s - 1) / 2, (s - 1) / 2) with v1's "+1" pixel convention
  (x2 - x1 = w - 1) and rounded; shifted to every position (positions major, anchors minor);
* box decoding: v1's deltas with the "+1" width (w = x2 - x1 + 1), log-scale deltas clamped to
  |log(16 / 1000)|, the corners placed at centre -/+ (w / 2 - 0.5) (no clipping here).
"""
import math

import torch
import torch.nn.functional as F

from pytorchinsight_reference import ReferenceResNet

STAGE_CHANNELS = (256, 512, 1024, 2048)
DETECTORS = ('faster_rcnn', 'mask_rcnn', 'cascade_rcnn')
#: backbone name -> (ReferenceResNet variant, depth)
BACKBONES = {'r50': ('', 50), 'se_r50': ('se', 50), 'sge_r50': ('sge', 50), 'r101': ('', 101),
             'se_r101': ('se', 101), 'sge_r101': ('sge', 101)}


def reference_backbone(backbone):
    variant, depth = BACKBONES[backbone]
    return ReferenceResNet(depth, variant)


def head_layout(detector, classes=80):
    """{key: shape} of the neck and heads of a v1 detector with ``classes`` object classes."""
    shapes = {}
    for i, c in enumerate(STAGE_CHANNELS):
        shapes.update({f'neck.lateral_convs.{i}.conv.weight': (256, c, 1, 1),
                       f'neck.lateral_convs.{i}.conv.bias': (256, ),
                       f'neck.fpn_convs.{i}.conv.weight': (256, 256, 3, 3),
                       f'neck.fpn_convs.{i}.conv.bias': (256, )})
    shapes.update({'rpn_head.rpn_conv.weight': (256, 256, 3, 3), 'rpn_head.rpn_conv.bias': (256, ),
                   'rpn_head.rpn_cls.weight': (3, 256, 1, 1), 'rpn_head.rpn_cls.bias': (3, ),
                   'rpn_head.rpn_reg.weight': (12, 256, 1, 1), 'rpn_head.rpn_reg.bias': (12, )})
    stages = [f'bbox_head.{i}.' for i in range(3)] if detector == 'cascade_rcnn' else ['bbox_head.']
    reg_rows = 4 if detector == 'cascade_rcnn' else 4 * (classes + 1)
    for head in stages:
        shapes.update({f'{head}shared_fcs.0.weight': (1024, 256 * 7 * 7),
                       f'{head}shared_fcs.0.bias': (1024, ),
                       f'{head}shared_fcs.1.weight': (1024, 1024),
                       f'{head}shared_fcs.1.bias': (1024, ),
                       f'{head}fc_cls.weight': (classes + 1, 1024),
                       f'{head}fc_cls.bias': (classes + 1, ),
                       f'{head}fc_reg.weight': (reg_rows, 1024),
                       f'{head}fc_reg.bias': (reg_rows, )})
    if detector == 'mask_rcnn':
        for i in range(4):
            shapes.update({f'mask_head.convs.{i}.conv.weight': (256, 256, 3, 3),
                           f'mask_head.convs.{i}.conv.bias': (256, )})
        shapes.update({'mask_head.upsample.weight': (256, 256, 2, 2),
                       'mask_head.upsample.bias': (256, ),
                       'mask_head.conv_logits.weight': (classes + 1, 256, 1, 1),
                       'mask_head.conv_logits.bias': (classes + 1, )})
    return shapes


def random_heads(detector, seed=0, classes=80, dtype=torch.float32):
    """Random v1 neck + head tensors, ~N(0, 1/fan_in) weights and N(0, 0.25) biases."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in head_layout(detector, classes).items():
        if key.endswith('bias'):
            state[key] = torch.randn(shape, generator=g, dtype=dtype) * 0.5
        else:
            fan_in = shape[0] if 'upsample' in key else torch.Size(shape[1:]).numel()
            state[key] = torch.randn(shape, generator=g, dtype=dtype) * fan_in**-0.5
    return state


def stage_outputs(reference, x):
    """C2..C5 of a ReferenceResNet (BAM excluded: the fork's two-stage backbones have none)."""
    x = F.max_pool2d(F.relu(reference.bn1(reference.conv1(x))), 3, stride=2, padding=1)
    outs = []
    for stage in range(1, 5):
        x = getattr(reference, f'layer{stage}')(x)
        outs.append(x)
    return outs


def v1_fpn(feats, state):
    laterals = [F.conv2d(f, state[f'neck.lateral_convs.{i}.conv.weight'],
                         state[f'neck.lateral_convs.{i}.conv.bias']) for i, f in enumerate(feats)]
    for i in range(len(laterals) - 1, 0, -1):
        laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], scale_factor=2,
                                                          mode='nearest')
    outs = [F.conv2d(lat, state[f'neck.fpn_convs.{i}.conv.weight'],
                     state[f'neck.fpn_convs.{i}.conv.bias'], padding=1)
            for i, lat in enumerate(laterals)]
    return outs + [F.max_pool2d(outs[-1], 1, stride=2)]


def v1_rpn(feat, state):
    hidden = F.relu(F.conv2d(feat, state['rpn_head.rpn_conv.weight'],
                             state['rpn_head.rpn_conv.bias'], padding=1))
    return (F.conv2d(hidden, state['rpn_head.rpn_cls.weight'], state['rpn_head.rpn_cls.bias']),
            F.conv2d(hidden, state['rpn_head.rpn_reg.weight'], state['rpn_head.rpn_reg.bias']))


def v1_bbox_head(roi_feats, state, head='bbox_head.'):
    x = roi_feats.flatten(1)
    for i in range(2):
        x = F.relu(F.linear(x, state[f'{head}shared_fcs.{i}.weight'],
                            state[f'{head}shared_fcs.{i}.bias']))
    return (F.linear(x, state[f'{head}fc_cls.weight'], state[f'{head}fc_cls.bias']),
            F.linear(x, state[f'{head}fc_reg.weight'], state[f'{head}fc_reg.bias']))


def v1_mask_head(roi_feats, state):
    x = roi_feats
    for i in range(4):
        x = F.relu(F.conv2d(x, state[f'mask_head.convs.{i}.conv.weight'],
                            state[f'mask_head.convs.{i}.conv.bias'], padding=1))
    x = F.relu(F.conv_transpose2d(x, state['mask_head.upsample.weight'],
                                  state['mask_head.upsample.bias'], stride=2))
    return F.conv2d(x, state['mask_head.conv_logits.weight'], state['mask_head.conv_logits.bias'])


def v1_anchors(stride, feat_h, feat_w, ratios=(0.5, 1.0, 2.0), scale=8):
    centre = 0.5 * (stride - 1)
    base = []
    for ratio in ratios:
        w = stride / math.sqrt(ratio) * scale
        h = stride * math.sqrt(ratio) * scale
        base.append([centre - 0.5 * (w - 1), centre - 0.5 * (h - 1), centre + 0.5 * (w - 1),
                     centre + 0.5 * (h - 1)])
    base = torch.tensor(base).round()
    ys, xs = torch.meshgrid(torch.arange(feat_h) * stride, torch.arange(feat_w) * stride,
                            indexing='ij')
    shifts = torch.stack([xs, ys, xs, ys], dim=-1).reshape(-1, 1, 4).float()
    return (shifts + base[None]).reshape(-1, 4)


def v1_decode(rois, deltas, stds):
    dx, dy, dw, dh = (deltas * torch.tensor(stds)).unbind(-1)
    limit = abs(math.log(16 / 1000))
    dw, dh = dw.clamp(-limit, limit), dh.clamp(-limit, limit)
    px, py = (rois[:, 0] + rois[:, 2]) * 0.5, (rois[:, 1] + rois[:, 3]) * 0.5
    pw, ph = rois[:, 2] - rois[:, 0] + 1.0, rois[:, 3] - rois[:, 1] + 1.0
    gx, gy = px + pw * dx, py + ph * dy
    gw, gh = pw * dw.exp(), ph * dh.exp()
    return torch.stack([gx - gw * 0.5 + 0.5, gy - gh * 0.5 + 0.5, gx + gw * 0.5 - 0.5,
                        gy + gh * 0.5 - 0.5], dim=-1)
