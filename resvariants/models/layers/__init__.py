"""Building blocks shared by several backbones (octave convolution)."""
from .octave_conv import (OctaveConv, OctaveNorm, OctaveReLU, merge_octave, split_octave)

__all__ = ['OctaveConv', 'OctaveNorm', 'OctaveReLU', 'merge_octave', 'split_octave']
