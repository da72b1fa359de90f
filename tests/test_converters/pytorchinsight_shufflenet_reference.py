"""PytorchInsight's ShuffleNetV2 (docs/architectures.md 1.11), for tests only.

Written from that description with plain torch layers, not from mmpretrain's modules, and named so
that ``state_dict()`` has the source's key layout (``conv1.N``, ``features.N.banch1/banch2.M``
(sic), ``conv_last.N``, ``classifier.0``; checked against
tests/data/reference/keys/keys_shufflenetv2_1x.txt). The channel split, concatenation order and
shuffle are written out here: a stride-1 unit keeps the first half of its input and runs the
second half through ``banch2``; a stride-2 unit concatenates ``banch1(x)`` and ``banch2(x)``; the
result is shuffled by viewing the channels as (2, C/2), transposing and flattening. The source's
final ``AvgPool2d(input / 32)`` is the global mean over the last map for inputs of side 32k.
"""
import torch
import torch.nn as nn

#: PytorchInsight's stage widths (stem 24, three stages, conv_last)
WIDTHS = {1.0: (24, 116, 232, 464, 1024), 0.5: (24, 48, 96, 192, 1024)}
STAGE_UNITS = (4, 8, 4)


def _conv_bn(cin, cout, kernel, stride=1, groups=1, relu=True):
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    return layers + [nn.ReLU()] if relu else layers


class Unit(nn.Module):
    """One ShuffleNetV2 unit; ``banch2`` = pw -> dw (stride, no ReLU) -> pw, ``banch1`` (stride 2
    only) = dw (stride, no ReLU) -> pw."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        half = cout // 2
        self.stride = stride
        if stride == 2:
            self.banch1 = nn.Sequential(*_conv_bn(cin, cin, 3, 2, groups=cin, relu=False),
                                        *_conv_bn(cin, half, 1))
        first = cin if stride == 2 else half
        self.banch2 = nn.Sequential(*_conv_bn(first, half, 1),
                                    *_conv_bn(half, half, 3, stride, groups=half, relu=False),
                                    *_conv_bn(half, half, 1))

    def forward(self, x):
        if self.stride == 2:
            out = torch.cat([self.banch1(x), self.banch2(x)], dim=1)
        else:
            half = x.shape[1] // 2
            out = torch.cat([x[:, :half], self.banch2(x[:, half:])], dim=1)
        b, c, h, w = out.shape
        return out.reshape(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)


class ReferenceShuffleNetV2(nn.Module):

    def __init__(self, width_mult=1.0, num_classes=1000):
        super().__init__()
        stem, *stages, last = WIDTHS[width_mult]
        self.conv1 = nn.Sequential(*_conv_bn(3, stem, 3, 2))
        units, cin = [], stem
        for cout, count in zip(stages, STAGE_UNITS):
            for i in range(count):
                units.append(Unit(cin, cout, 2 if i == 0 else 1))
                cin = cout
        self.features = nn.Sequential(*units)
        self.conv_last = nn.Sequential(*_conv_bn(cin, last, 1))
        self.classifier = nn.Sequential(nn.Linear(last, num_classes))

    def forward(self, x):
        x = nn.functional.max_pool2d(self.conv1(x), 3, stride=2, padding=1)
        x = self.conv_last(self.features(x))
        return self.classifier(x.mean(dim=(2, 3)))
