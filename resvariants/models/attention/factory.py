"""One factory for every insertable attention module (timm ``create_attn`` style).

``build_attention('sge', 256)`` or ``build_attention(dict(type='SGE', groups=32), 256)`` builds
a shape-preserving module; blocks take a config and never import concrete classes.
"""
import copy

from resvariants.registry import PLUGIN_MODELS as ROOT_MODELS

#: short names accepted in configs -> registered type names
ATTENTION_ALIASES = {
    'se': 'SEModule',
    'cbam': 'CBAM',
    'bam': 'BAM',
    'gc': 'GCBlock',  # mmcv's GCNet ContextBlock with a fused attention pooling (gc.py)
    'contextblock': 'GCBlock',  # type='ContextBlock' in configs: same keys and maths
    'sge': 'SGE',
    'srm': 'SRM',
}
#: names that mean selective kernel, which is ``sk=dict(...)``, not ``attention=``
SK_NAMES = ('sk', 'sknet', 'skfusion', 'selective_kernel', 'selectivekernel')
#: modules that go after a whole stage rather than inside each block
STAGE_ATTENTIONS = ('BAM', )
#: default keyword arguments that reproduce the PytorchInsight settings
ATTENTION_DEFAULTS = {
    'GCBlock': dict(ratio=1. / 16),  # also type='ContextBlock', an alias of GCBlock
}


#: every attention module class of resvariants, by registered type name (``register_attention``)
_ATTENTION_CLASSES = {}


def register_attention(cls):
    """Class decorator: register ``cls`` in mmengine's root ``MODELS`` (so mmdet's ResNet
    ``plugins=`` finds it from any scope) and record it as one of resvariants' attention
    modules (:func:`attention_types`)."""
    ROOT_MODELS.register_module(module=cls)
    _ATTENTION_CLASSES[cls.__name__] = cls
    return cls


def attention_types():
    """``{type name: class}`` of every attention module resvariants registers, the SK fusion
    (built through ``sk=dict(...)``, not ``attention=``) included."""
    _import_modules()
    return dict(sorted(_ATTENTION_CLASSES.items()))


def attention_names():
    """Every accepted short name and registered type, for error messages."""
    return sorted(set(ATTENTION_ALIASES) | set(ATTENTION_ALIASES.values()))


def normalize_attention_cfg(cfg):
    """Return a config dict with a registered ``type`` (aliases resolved, defaults filled).

    Raises:
        KeyError: if the name is not a known attention module (the message lists them).
    """
    if cfg is None:
        return None
    if isinstance(cfg, str):
        cfg = dict(type=cfg)
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f'attention must be a name or a dict with "type", got {cfg!r}')
    cfg = copy.deepcopy(dict(cfg))
    name = cfg['type']
    if not isinstance(name, str):
        raise TypeError(f'attention type must be a string, got {name!r}')
    type_name = ATTENTION_ALIASES.get(name.lower(), name).removeprefix('resvariants.')
    if type_name.lower() in SK_NAMES:
        raise KeyError(f'attention={name!r}: SK (selective kernel) is not an attention module '
                       f'that goes after a block; it replaces the bottleneck 3x3 conv. Use '
                       f'sk=dict(groups=32, ratio=16) on resvariants.ResNet (depth 50/101/152) '
                       f'instead of attention=. Valid attention names: '
                       f'{", ".join(attention_names())}')
    _import_modules()
    if type_name not in set(ATTENTION_ALIASES.values()) and ROOT_MODELS.get(type_name) is None:
        raise KeyError(f'unknown attention {name!r}; valid names: {", ".join(attention_names())}'
                       f' (SK is sk=dict(groups=32, ratio=16), not an attention= name)')
    cfg['type'] = type_name
    for key, value in ATTENTION_DEFAULTS.get(type_name, {}).items():
        cfg.setdefault(key, value)
    return cfg


def build_attention(cfg, in_channels):
    """Build an attention module from a name or config for ``in_channels`` channels."""
    cfg = normalize_attention_cfg(cfg)
    if cfg is None:
        return None
    cfg.pop('postfix', None)
    return ROOT_MODELS.build(dict(cfg, in_channels=in_channels))


def find_plugin_type(name, scope=None):
    """The class mmcv's ``build_plugin_layer`` would build for ``type=name`` (None if none):
    the registry of ``scope`` (default: the current default scope), then mmengine's root."""
    if not isinstance(name, str):
        return name
    with ROOT_MODELS.switch_scope_and_registry(scope) as registry:
        return registry.get(name)


def check_plugin_cfgs(plugins, num_stages=4, where='plugins', scope=None):
    """Check mmdet ResNet ``plugins=`` entries before mmdet/mmcv build them.

    mmdet asserts the ``stages`` length (a bare AssertionError) and mmcv reports an unknown
    type as "Cannot find None in registry"; this raises with the entry, the problem and the fix.

    Raises:
        ValueError: ``stages`` of the wrong length, or an entry without ``cfg``.
        KeyError: a plugin type no registry knows.
    """
    for i, plugin in enumerate(plugins or []):
        here = f'{where}[{i}]'
        if not isinstance(plugin, dict) or not isinstance(plugin.get('cfg'), dict):
            raise ValueError(f'{here} must be dict(cfg=dict(type=...), position=..., '
                             f'stages=...), got {plugin!r}')
        cfg = plugin['cfg']
        if 'type' not in cfg:
            raise ValueError(f'{here}.cfg has no "type": {cfg!r}')
        stages = plugin.get('stages')
        if stages is not None and len(stages) != num_stages:
            raise ValueError(
                f'{here} ({cfg["type"]}): stages={tuple(stages)!r} has {len(stages)} entries; '
                f'it needs one per stage, num_stages={num_stages} (e.g. stages=' +
                repr((False, ) + (True, ) * (num_stages - 1)) + '), or stages=None for all')
        if find_plugin_type(cfg['type'], scope) is None:
            _import_modules()
            ours = ', '.join(attention_types())
            raise KeyError(
                f'{here}: unknown plugin type {cfg["type"]!r} (not registered in the '
                f'{_scope_name(scope)!r} scope nor in mmengine\'s root registry). resvariants\' '
                f'attention modules: {ours}; mmcv\'s: ContextBlock, GeneralizedAttention, '
                f'NonLocal2d. Check the spelling, and import the package that registers it '
                f'before the model is built (custom_imports=dict(imports=['
                f'\'resvariants.models\']) in the config, or a prefixed type such as '
                f'\'resvariants.SGE\').')


def _scope_name(scope):
    from mmengine.registry import DefaultScope
    if scope is not None:
        return scope
    current = DefaultScope.get_current_instance()
    return current.scope_name if current is not None else 'mmengine'


def _import_modules():
    # registering side effects; mmcv.cnn registers ContextBlock in the root registry
    import mmcv.cnn  # noqa: F401

    from . import bam, cbam, gc, se, sge, sk, srm  # noqa: F401
