"""One factory for every insertable attention module (timm ``create_attn`` style).

``build_attention('sge', 256)`` or ``build_attention(dict(type='SGE', groups=32), 256)`` builds
a shape-preserving module; blocks take a config and never import concrete classes.
"""
import copy
import importlib
import pkgutil
import sys

from resvariants.registry import PLUGIN_MODELS as ROOT_MODELS

#: where a module goes: after the last norm of each block, after a whole stage (BAM), or
#: as the fusion of a block's branches (SK: ``sk=dict(...)``, not ``attention=``)
PLACEMENTS = ('block', 'stage', 'branches')

#: type name -> dict(cls, aliases, placement, defaults), filled by ``register_attention``
_ATTENTIONS = {}


def register_attention(cls=None, *, aliases=(), placement='block', defaults=None):
    """Class decorator: register an attention module in mmengine's root ``MODELS`` (so mmdet's
    ResNet ``plugins=`` finds it from any scope) and declare how configs name and place it.

    Args:
        aliases (tuple[str]): Short, case-insensitive names for ``attention=`` (``'se'``).
        placement (str): ``'block'`` (after the last norm of every block, the default),
            ``'stage'`` (after each stage of ``attention_stages``, default stages 1-3) or
            ``'branches'`` (fuses a block's branches; built by the block, not ``attention=``).
        defaults (dict | None): Keyword arguments filled in when a config omits them.
    """
    if placement not in PLACEMENTS:
        raise ValueError(f'placement must be one of {PLACEMENTS}, got {placement!r}')

    def register(cls):
        ROOT_MODELS.register_module(module=cls)
        _ATTENTIONS[cls.__name__] = dict(cls=cls, aliases=tuple(a.lower() for a in aliases),
                                         placement=placement, defaults=dict(defaults or {}))
        return cls

    return register if cls is None else register(cls)


def attention_types():
    """``{type name: class}`` of every attention module resvariants registers, the SK fusion
    (built through ``sk=dict(...)``, not ``attention=``) included."""
    _import_modules()
    return {name: info['cls'] for name, info in sorted(_ATTENTIONS.items())}


def attention_aliases():
    """``{short name: type name}`` of the modules ``attention=`` accepts."""
    _import_modules()
    return {alias: name for name, info in sorted(_ATTENTIONS.items())
            if info['placement'] != 'branches' for alias in info['aliases']}


def attention_placement(type_name):
    """``'block'``, ``'stage'`` or ``'branches'`` for a registered type; ``'block'`` for
    plugins of other packages (mmcv's NonLocal2d ...)."""
    _import_modules()
    return _ATTENTIONS.get(type_name, {}).get('placement', 'block')


def attention_names():
    """Every accepted short name and registered type, for error messages."""
    aliases = attention_aliases()
    return sorted(set(aliases) | set(aliases.values()))


def _branch_fusion_names():
    return {name.lower() for name, info in _ATTENTIONS.items() if info['placement'] == 'branches'
            } | {a for info in _ATTENTIONS.values() if info['placement'] == 'branches'
                 for a in info['aliases']}


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
    _import_modules()
    aliases = attention_aliases()
    type_name = aliases.get(name.lower(), name).removeprefix('resvariants.')
    if type_name.lower() in _branch_fusion_names():
        raise KeyError(f'attention={name!r}: SK (selective kernel) is not an attention module '
                       f'that goes after a block; it replaces the bottleneck 3x3 conv. Use '
                       f'sk=dict(groups=32, ratio=16) on resvariants.ResNet (depth 50/101/152) '
                       f'instead of attention=. Valid attention names: '
                       f'{", ".join(attention_names())}')
    if type_name not in set(aliases.values()) and ROOT_MODELS.get(type_name) is None:
        raise KeyError(f'unknown attention {name!r}; valid names: {", ".join(attention_names())}'
                       f' (SK is sk=dict(groups=32, ratio=16), not an attention= name)')
    cfg['type'] = type_name
    for key, value in _ATTENTIONS.get(type_name, {}).get('defaults', {}).items():
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
    """Import every module file of this package (registering side effects), so a new
    attention module is found without being listed anywhere; mmcv.cnn registers ContextBlock
    in the root registry."""
    import mmcv.cnn  # noqa: F401
    package = sys.modules[__package__]
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith('_') and info.name != 'factory':
            importlib.import_module(f'{__package__}.{info.name}')
