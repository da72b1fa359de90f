"""Evaluation metrics (registered in ``resvariants.registry.METRICS``)."""
from .side_accuracy import SideAccuracy

__all__ = ['SideAccuracy']
