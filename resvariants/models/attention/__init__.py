"""Insertable attention modules, one per file, and the factory that builds them by name."""
from .bam import BAM
from .cbam import CBAM
from .factory import (ATTENTION_ALIASES, STAGE_ATTENTIONS, attention_names, attention_types,
                      build_attention, check_plugin_cfgs, normalize_attention_cfg,
                      register_attention)
from .gc import GCBlock
from .se import SEModule
from .sge import SGE
from .sk import SKFusion
from .srm import SRM

__all__ = [
    'BAM', 'CBAM', 'GCBlock', 'SEModule', 'SGE', 'SKFusion', 'SRM', 'ATTENTION_ALIASES',
    'STAGE_ATTENTIONS', 'attention_names', 'attention_types', 'build_attention',
    'check_plugin_cfgs', 'normalize_attention_cfg', 'register_attention'
]
