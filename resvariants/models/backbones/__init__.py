"""Backbones: the shared ResNet / ResNeXt trunk."""
from .resnet import BasicBlock, Bottleneck, ResNet

__all__ = ['BasicBlock', 'Bottleneck', 'ResNet']
