"""The PytorchInsight classification ResNets, as described in docs/architectures.md 1.1-1.10,
for tests only.

Written from that description, not from resvariants' modules: plain torch layers named so that
``state_dict()`` has the source's key layout (``layerX.Y.se.fc.0``, ``cbam.ChannelGate.mlp.1``,
``bamN.spatial_att.gate_s.gate_s_conv_di_0``, ``conv2g`` / ``conv_fc1`` ...; checked against the
key listings in tests/data/reference/keys). SRM follows the official SRM code, whose blocks hold
the module as ``rclb`` and whose style pooling is sqrt(unbiased variance + 1e-5).

Two things of the source that only work at 224 are written for any square input of side
``32 * k`` here: BAM's channel pooling with a kernel equal to the map side (square inputs) and the
BAM classifier's fixed ``AvgPool2d(7)`` (the final map side): both are the global average pool
on the maps they were written for.
"""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
VARIANTS = ('', 'ws', 'se', 'sk', 'cbam', 'bam', 'gc', 'sge', 'srm')


class WSConv2d(nn.Conv2d):
    """resnet_ws.py's conv (1.10): each output filter standardised over (C_in, kh, kw) with the
    unbiased std, epsilon added to the std."""

    def forward(self, x):
        w = self.weight
        flat = w.reshape(w.shape[0], -1)
        mean = flat.mean(dim=1).reshape(-1, 1, 1, 1)
        std = flat.std(dim=1, unbiased=True).reshape(-1, 1, 1, 1)
        return F.conv2d(x, (w - mean) / (std + 1e-5), self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


class SELayer(nn.Module):
    """1.2: GAP -> Linear(C, C/16) -> ReLU -> Linear(C/16, C) -> sigmoid -> channel scale."""

    def __init__(self, c):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(c, c // 16), nn.ReLU(), nn.Linear(c // 16, c),
                                nn.Sigmoid())

    def forward(self, x):
        return x * self.fc(x.mean(dim=(2, 3))).unsqueeze(-1).unsqueeze(-1)


class ChannelGate(nn.Module):
    """1.4: shared MLP (with biases) on the avg- and max-pooled vectors, logits summed."""

    def __init__(self, c):
        super().__init__()
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(c, c // 16), nn.ReLU(),
                                 nn.Linear(c // 16, c))

    def forward(self, x):
        h, w = x.shape[2:]
        logits = (self.mlp(F.avg_pool2d(x, (h, w), stride=(h, w)))
                  + self.mlp(F.max_pool2d(x, (h, w), stride=(h, w))))
        return x * torch.sigmoid(logits)[:, :, None, None]


class SpatialConv(nn.Module):
    """7x7 conv 2 -> 1 (padding 3, no bias) then BatchNorm2d(1, momentum 0.01), no ReLU."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, stride=1, padding=3, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)

    def forward(self, x):
        return self.bn(self.conv(x))


class SpatialGate(nn.Module):
    """1.4: [channel max, channel mean] (max first) -> conv + BN -> sigmoid -> scale."""

    def __init__(self):
        super().__init__()
        self.spatial = SpatialConv()

    def forward(self, x):
        pooled = torch.cat([torch.max(x, dim=1, keepdim=True)[0],
                            torch.mean(x, dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class CBAM(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.ChannelGate = ChannelGate(c)
        self.SpatialGate = SpatialGate()

    def forward(self, x):
        return self.SpatialGate(self.ChannelGate(x))


class SGE(nn.Module):
    """1.6, steps 1-5, per sample and group of C/64 channels."""

    def __init__(self, groups=64):
        super().__init__()
        self.groups = groups
        self.weight = nn.Parameter(torch.zeros(1, groups, 1, 1))
        self.bias = nn.Parameter(torch.ones(1, groups, 1, 1))

    def forward(self, x):
        b, c, h, w = x.shape
        g = self.groups
        xg = x.reshape(b, g, c // g, h, w)
        mean_c = xg.mean(dim=(3, 4), keepdim=True)  # 1. per-channel spatial mean
        a = (xg * mean_c).sum(dim=2)  # 2. (b, g, h, w) similarity map
        a = a.reshape(b, g, h * w)
        a = (a - a.mean(dim=2, keepdim=True)) / (a.std(dim=2, unbiased=True, keepdim=True)
                                                 + 1e-5)  # 3.
        t = a.reshape(b, g, h, w) * self.weight + self.bias  # 4.
        return (xg * torch.sigmoid(t).unsqueeze(2)).reshape(b, c, h, w)  # 5.


class ContextBlock(nn.Module):
    """1.7 (GCNet): attention pooling, then conv -> LayerNorm -> ReLU -> conv, added to x."""

    def __init__(self, c):
        super().__init__()
        self.conv_mask = nn.Conv2d(c, 1, 1)
        self.channel_add_conv = nn.Sequential(nn.Conv2d(c, c // 16, 1),
                                              nn.LayerNorm([c // 16, 1, 1]), nn.ReLU(),
                                              nn.Conv2d(c // 16, c, 1))

    def forward(self, x):
        b, c, h, w = x.shape
        attention = torch.softmax(self.conv_mask(x).reshape(b, h * w), dim=1)
        context = torch.einsum('bcn,bn->bc', x.reshape(b, c, h * w), attention)
        return x + self.channel_add_conv(context[:, :, None, None])


class SRMLayer(nn.Module):
    """1.8 (official SRM code): [mean, sqrt(unbiased var + 1e-5)] per channel -> channel-wise
    FC ``cfc`` [C, 2] -> BatchNorm2d(C) -> sigmoid -> channel scale."""

    def __init__(self, c):
        super().__init__()
        self.cfc = nn.Parameter(torch.zeros(c, 2))
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        b, c = x.shape[:2]
        flat = x.reshape(b, c, -1)
        style = torch.stack([flat.mean(dim=2), (flat.var(dim=2, unbiased=True) + 1e-5).sqrt()],
                            dim=2)  # (b, c, 2)
        z = (style * self.cfc).sum(dim=2)
        return x * torch.sigmoid(self.bn(z[:, :, None, None]))


class BAM(nn.Module):
    """1.5: x * (1 + sigmoid(Mc(x) * Ms(x))), Jongchan Park's module names."""

    def __init__(self, c):
        super().__init__()
        r = c // 16
        self.channel_att = nn.Module()
        self.channel_att.gate_c = nn.Sequential(OrderedDict([
            ('flatten', nn.Flatten()),
            ('gate_c_fc_0', nn.Linear(c, r)),
            ('gate_c_bn_1', nn.BatchNorm1d(r)),
            ('gate_c_relu_1', nn.ReLU()),
            ('gate_c_fc_final', nn.Linear(r, c)),
        ]))
        layers = [('gate_s_conv_reduce0', nn.Conv2d(c, r, 1)),
                  ('gate_s_bn_reduce0', nn.BatchNorm2d(r)),
                  ('gate_s_relu_reduce0', nn.ReLU())]
        for i in range(2):
            layers += [(f'gate_s_conv_di_{i}', nn.Conv2d(r, r, 3, padding=4, dilation=4)),
                       (f'gate_s_bn_di_{i}', nn.BatchNorm2d(r)),
                       (f'gate_s_relu_di_{i}', nn.ReLU())]
        layers.append(('gate_s_conv_final', nn.Conv2d(r, 1, 1)))
        self.spatial_att = nn.Module()
        self.spatial_att.gate_s = nn.Sequential(OrderedDict(layers))

    def forward(self, x):
        side = x.shape[2]  # the source pools with a kernel equal to the (square) map side
        channel = self.channel_att.gate_c(F.avg_pool2d(x, side, stride=side))[:, :, None, None]
        spatial = self.spatial_att.gate_s(x)
        return x * (1 + torch.sigmoid(channel * spatial))


def _attention(variant, c):
    return {'se': lambda: SELayer(c), 'cbam': lambda: CBAM(c), 'gc': lambda: ContextBlock(c),
            'sge': lambda: SGE(64), 'srm': lambda: SRMLayer(c)}[variant]()


#: attribute that holds the block attention in the source (SRM: the official code's name)
ATTRIBUTE = {'se': 'se', 'cbam': 'cbam', 'gc': 'gc', 'sge': 'sge', 'srm': 'rclb'}


class Bottleneck(nn.Module):
    """1.1: 1x1 -> 3x3 (stride here) -> 1x1, BN after each; the attention after bn3, before the
    addition; SK* (1.3) replaces the single 3x3 by two selected branches. ``groups`` /
    ``base_width``: torchvision's ResNeXt bottleneck (width = planes * base_width / 64 * groups,
    grouped 3x3), the layout of the WS-ResNeXt releases."""

    def __init__(self, inplanes, planes, stride, variant, conv, groups=1, base_width=64):
        super().__init__()
        out = planes * 4
        width = planes * base_width // 64 * groups
        self.variant = variant
        self.conv1 = conv(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv(width, width, 3, stride=stride, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        if variant == 'sk':
            self.conv2g = conv(planes, planes, 3, stride=stride, padding=1, groups=32,
                               bias=False)
            self.bn2g = nn.BatchNorm2d(planes)
            self.conv_fc1 = conv(planes, planes // 16, 1, bias=False)
            self.bn_fc1 = nn.BatchNorm2d(planes // 16)
            self.conv_fc2 = conv(planes // 16, 2 * planes, 1, bias=False)
        self.conv3 = conv(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.attribute = ATTRIBUTE.get(variant)
        if self.attribute is not None:
            setattr(self, self.attribute, _attention(variant, out))
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(conv(inplanes, out, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        a = F.relu(self.bn2(self.conv2(y)))
        if self.variant == 'sk':
            b = F.relu(self.bn2g(self.conv2g(y)))
            s = a.mean(dim=(2, 3), keepdim=True) + b.mean(dim=(2, 3), keepdim=True)
            logits = self.conv_fc2(F.relu(self.bn_fc1(self.conv_fc1(s))))
            p = a.shape[1]
            weights = torch.softmax(logits.reshape(-1, 2, p, 1, 1), dim=1)  # A's logits first
            a = weights[:, 0] * a + weights[:, 1] * b
        out = self.bn3(self.conv3(a))
        if self.attribute is not None:
            out = getattr(self, self.attribute)(out)
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class ReferenceResNet(nn.Module):
    """``variant`` in VARIANTS ('' = plain ResNet, 'ws' = resnet_ws.py); depth 50 or 101;
    ``groups=32, base_width=4``: ResNeXt-32x4d (plain or WS)."""

    def __init__(self, depth=50, variant='', num_classes=1000, groups=1, base_width=64):
        super().__init__()
        conv = WSConv2d if variant == 'ws' else nn.Conv2d
        self.variant = variant
        self.conv1 = conv(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        inplanes = 64
        for stage, blocks in enumerate(STAGE_BLOCKS[depth], start=1):
            planes = 64 * 2**(stage - 1)
            layer = []
            for i in range(blocks):
                layer.append(Bottleneck(inplanes, planes, 2 if stage > 1 and i == 0 else 1,
                                        variant, conv, groups, base_width))
                inplanes = planes * 4
            setattr(self, f'layer{stage}', nn.Sequential(*layer))
            if variant == 'bam' and stage < 4:
                setattr(self, f'bam{stage}', BAM(inplanes))
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, stride=2, padding=1)
        for stage in range(1, 5):
            x = getattr(self, f'layer{stage}')(x)
            if self.variant == 'bam' and stage < 4:
                x = getattr(self, f'bam{stage}')(x)
        if self.variant == 'bam':  # the source's fixed AvgPool2d(7): the final map side
            x = F.avg_pool2d(x, x.shape[2])
        else:
            x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))
