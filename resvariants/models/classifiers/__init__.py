"""Classifiers built on mmpretrain's ImageClassifier."""
from .epsilon_classifier import EpsilonImageClassifier

__all__ = ['EpsilonImageClassifier']
