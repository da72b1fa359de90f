"""Backbones: the shared ResNet / ResNeXt trunk."""
from .resnet import BasicBlock, Bottleneck, ResNet
from .ed_resnet import EDBottleneck, EDPath, EDResNet
from .octave_resnet import OctaveBottleneck, OctResNet
from .epsilon_resnet import CompactResNet, EpsilonResNet, PreActResNetCIFAR
from .plain_resnet import CifarResNet, PlainResNet, RMPlainResNet
from .preact_resnet import PreActBlock, PreActBottleneck
from .mobilenet_v1 import MobileNetV1
from .densenet import DenseNet

__all__ = ['BasicBlock', 'Bottleneck', 'ResNet', 'EDBottleneck', 'EDPath', 'EDResNet',
           'OctaveBottleneck', 'OctResNet', 'CompactResNet', 'EpsilonResNet', 'PreActResNetCIFAR',
           'CifarResNet', 'PlainResNet', 'RMPlainResNet', 'PreActBlock', 'PreActBottleneck',
           'MobileNetV1', 'DenseNet']
