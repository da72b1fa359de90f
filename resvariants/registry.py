"""Registries of resvariants (children of mmengine's root registries).

Configs of any scope can name our modules with the scope prefix, e.g.
``backbone=dict(type='resvariants.ResNet', ...)``; no ``custom_imports`` is needed because
the prefix makes mmengine import this module and then the ``locations`` below.

The insertable attention modules (SE, CBAM, SGE, SRM, BAM, SK) are registered in mmengine's
*root* ``MODELS`` (as mmcv does for ``ContextBlock``), so mmdet's ResNet ``plugins=`` finds
them from the ``mmdet`` and ``mmpretrain`` scopes once resvariants is imported, either through
``custom_imports=dict(imports=['resvariants.models'])`` or a prefixed ``'resvariants.SGE'``.
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='resvariants',
                  locations=['resvariants.models'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='resvariants',
                 locations=['resvariants.engine'])
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS,
                          scope='resvariants', locations=['resvariants.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope='resvariants', locations=['resvariants.engine'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope='resvariants',
                   locations=['resvariants.evaluation'])

#: Root registry that holds the insertable (plugin) modules, visible from every scope.
PLUGIN_MODELS = MMENGINE_MODELS
