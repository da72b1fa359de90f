"""resvariants: ResNet variants as registered mmdet / mmpretrain backbones and plugins.

Importing the package allow-lists the types of an mmengine checkpoint for torch's weights-only
loading (resume and test then work with the safety on). Models register themselves when
``resvariants.models`` is imported, which the registry does lazily the first time a
``resvariants.X`` type is built. It also lets mmengine's ``Config`` resolve
``_base_ = 'resvariants::<zoo config>'`` from any folder (:mod:`resvariants.utils.config_package`).
"""
from .utils.config_package import install as _install_config_package
from .utils.safe_load import allow_mmengine_checkpoint_types

__version__ = '0.1.0'

allow_mmengine_checkpoint_types()
_install_config_package()
