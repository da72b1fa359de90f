"""Model complexity in the conventions the source papers report."""
from .complexity import Complexity, count_complexity

__all__ = ['Complexity', 'count_complexity']
