"""Checkpoint converters from other code bases into resvariants / mmpretrain layouts."""
from .pytorchinsight import PI_ARCHS, convert_pytorchinsight_state_dict, infer_pytorchinsight_arch

__all__ = ['PI_ARCHS', 'convert_pytorchinsight_state_dict', 'infer_pytorchinsight_arch']
