"""Checkpoint converters from other code bases into resvariants / mmpretrain layouts."""
from .ednet import ED_ARCHS, convert_ednet_state_dict, infer_ednet_arch
from .pytorchinsight import (PI_ARCHS, convert_pytorchinsight_state_dict,
                             infer_pytorchinsight_arch, pytorchinsight_arch_candidates)
from .pytorchinsight_det import convert_pytorchinsight_det_state_dict
from .pytorchinsight_shufflenet import convert_shufflenet_state_dict
from .torchvision import convert_torchvision_state_dict
from .ws_evidence import weight_standardisation_evidence
from .timm import convert_timm_state_dict
from .mmpretrain import convert_mmpretrain_state_dict

__all__ = ['ED_ARCHS', 'convert_ednet_state_dict', 'infer_ednet_arch',
           'PI_ARCHS', 'convert_pytorchinsight_state_dict', 'infer_pytorchinsight_arch',
           'pytorchinsight_arch_candidates', 'convert_pytorchinsight_det_state_dict',
           'convert_shufflenet_state_dict', 'weight_standardisation_evidence',
           'convert_torchvision_state_dict', 'convert_timm_state_dict',
           'convert_mmpretrain_state_dict']
