"""Insertable attention modules, one per file, and the factory that builds them by name.

Every module file of this package is imported and its registered classes exported here
(``from resvariants.models.attention import SGE``): a new module is one new file.
"""
from .factory import (attention_aliases, attention_names, attention_placement, attention_types,
                      build_attention, check_plugin_cfgs, normalize_attention_cfg,
                      register_attention)

globals().update(attention_types())

__all__ = [
    *attention_types(), 'attention_aliases', 'attention_names', 'attention_placement',
    'attention_types', 'build_attention', 'check_plugin_cfgs', 'normalize_attention_cfg',
    'register_attention'
]
