"""The released ED-Net classifier as described in docs/architectures.md section 3.1, for tests only.

Written from that description (not copied): ED-Net's key layout
(``layerK.layerK_block_i.conv_conv1`` ...), the shortcut evaluated twice per forward, the decoder
output padding hard-coded for a 224 input (1 in layers 1-3, 0 in layer 4), SE with the fixed
average pools of a 224 input, and a fixed ``AvgPool2d(7)`` head. It is what a converted
checkpoint must reproduce, logit for logit, at 224.

``input_size`` (default 224) sizes the fixed pools for another input: a side ``32 * k`` with k
odd keeps the parities the hard-coded decoder padding was written for (stage maps even, even,
even, odd), and the SE / head pools with kernels equal to the map sides are the global averages
they are at 224. Only for cheaper tests (e.g. 96).
"""
import torch.nn as nn
import torch.nn.functional as F

STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


class ReferenceEDBlock(nn.Module):

    def __init__(self, inplanes, planes, stride, stage, expansion, conv_groups, se,
                 input_size=224):
        super().__init__()
        out = planes * expansion
        self.conv_conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn_bn1 = nn.BatchNorm2d(planes)
        self.conv_conv2 = nn.Conv2d(planes, planes, 3, stride, 1, groups=conv_groups, bias=False)
        self.bn_bn2 = nn.BatchNorm2d(planes)
        self.conv_conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn_bn3 = nn.BatchNorm2d(out)
        self.se = se
        if se:
            self.pool = nn.AvgPool2d(input_size // 2**(stage + 1), stride=1)  # 56/28/14/7
            self.fc_reduction = nn.Linear(out, out // 16)
            self.fc_extention = nn.Linear(out // 16, out)
        self.shortcut = nn.Sequential()
        if stride != 1 or inplanes != out:
            self.shortcut.add_module('shortcut_conv', nn.Conv2d(inplanes, out, 1, stride,
                                                                bias=False))
            self.shortcut.add_module('shortcut_bn', nn.BatchNorm2d(out))
        self.encoder = nn.Sequential()
        self.encoder.add_module('encoder_conv', nn.Conv2d(out, planes, 3, 2, 1, groups=32,
                                                          bias=False))
        self.encoder.add_module('encoder_bn', nn.BatchNorm2d(planes))
        self.decoder = nn.Sequential()
        self.decoder.add_module('decoder_conv', nn.ConvTranspose2d(
            planes, out, 3, 2, 1, output_padding=0 if stage == 4 else 1, groups=32, bias=False))
        self.decoder.add_module('decoder_bn', nn.BatchNorm2d(out))

    def forward(self, x):
        decoded = self.decoder(F.relu(self.encoder(self.shortcut(x))))
        res = F.relu(self.bn_bn1(self.conv_conv1(x)))
        res = F.relu(self.bn_bn2(self.conv_conv2(res)))
        res = self.bn_bn3(self.conv_conv3(res))
        if self.se:
            scale = F.relu(self.fc_reduction(self.pool(res).flatten(1)))
            res = res * self.fc_extention(scale).sigmoid()[:, :, None, None]
        return F.relu(res + self.shortcut(x) + decoded)  # the shortcut runs a second time


class ReferenceEDNet(nn.Module):
    """ED50 / ED101 / ED152 (``resnext=False``), EDX50 / EDX101 (32x4d), EDSE (``se=True``)."""

    def __init__(self, depth=50, resnext=False, se=False, num_classes=1000, input_size=224):
        super().__init__()
        assert input_size % 32 == 0 and input_size // 32 % 2 == 1, input_size
        expansion, conv_groups = (2, 32) if resnext else (4, 1)
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for stage, num_blocks in enumerate(STAGE_BLOCKS[depth], start=1):
            planes = (128 if resnext else 64) * 2**(stage - 1)
            layer = nn.Sequential()
            for i in range(num_blocks):
                stride = 2 if stage > 1 and i == 0 else 1
                layer.add_module(f'layer{stage}_block_{i}', ReferenceEDBlock(
                    inplanes, planes, stride, stage, expansion, conv_groups, se, input_size))
                inplanes = planes * expansion
            self.add_module(f'layer{stage}', layer)
        self.avgpool = nn.AvgPool2d(input_size // 32, stride=1)
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))

