"""``_base_ = 'resvariants::<config>'``: the model zoo as an installed package's configs.

mmengine resolves ``package::path`` bases only for the OpenMMLab packages it knows (a fixed
table) and only for paths with a folder part (``mmdet::faster_rcnn/x.py``), through the
package's ``.mim/configs`` folder. Importing :mod:`resvariants` teaches its ``Config`` one more
prefix, ``resvariants::``, resolved against the zoo that ships with this package:

* a checkout or ``pip install -e .``: the repository's ``configs/`` folder;
* a wheel: ``resvariants/.mim/configs`` (the same files, copied in at build time).

Flat zoo names work (``resvariants::faster_rcnn_sge_r101_fpn.py``) as well as sub-folders
(``resvariants::imagenet/sge_resnet50_in1k.py``). Unlike ``mmdet::`` bases, a
``resvariants::`` base adds no registry scope of its own: our configs already name their
framework with ``default_scope`` (mmdet or mmpretrain) and their types as ``resvariants.X``,
so the user's config builds exactly as the zoo config does.

Every other prefix is left to mmengine unchanged.
"""
import os.path as osp

PREFIX = 'resvariants::'
_PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def zoo_config_dir() -> str:
    """The folder the zoo configs live in for this installation."""
    # the checkout's own folder first (not the .mim link to it), so that paths relative to a
    # config's folder ({{ fileDirname }}/../..) stay inside the checkout
    for candidate in (osp.join(osp.dirname(_PACKAGE_DIR), 'configs'),   # checkout / editable
                      osp.join(_PACKAGE_DIR, '.mim', 'configs')):       # wheel
        if osp.isfile(osp.join(candidate, '_base_', 'runtime_mmdet.py')) and \
                osp.isfile(osp.join(candidate, '_recipes', 'det_small_data.py')):
            return candidate
    raise FileNotFoundError(
        f'resvariants model zoo not found: neither {_PACKAGE_DIR}/.mim/configs nor the '
        f'checkout\'s configs/ folder next to {_PACKAGE_DIR} exists; reinstall resvariants '
        '(pip install -e . from the repository, or a wheel built from it)')


def resolve(cfg_path: str) -> str:
    """Absolute path of ``resvariants::<relative path>`` (clear error if it is not in the zoo)."""
    if not cfg_path.startswith(PREFIX):
        raise ValueError(f'not a {PREFIX} config path: {cfg_path!r}')
    rel = cfg_path[len(PREFIX):].lstrip('/')
    if not rel or osp.isabs(rel) or '..' in rel.replace('\\', '/').split('/'):
        raise ValueError(f'{cfg_path!r}: give a path inside the resvariants model zoo, e.g. '
                         f"'{PREFIX}faster_rcnn_sge_r101_fpn.py'")
    root = zoo_config_dir()
    path = osp.join(root, rel)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{cfg_path!r} is not a resvariants zoo config (looked for {path}); zoo configs are '
            'the files under configs/, e.g. resvariants::faster_rcnn_sge_r101_fpn.py or '
            'resvariants::imagenet/sge_resnet50_in1k.py')
    return path


def install() -> None:
    """Let mmengine's ``Config`` resolve ``resvariants::`` bases (idempotent)."""
    from mmengine.config import Config

    mmengine_get_cfg_path = Config.__dict__['_get_cfg_path'].__func__
    if getattr(mmengine_get_cfg_path, '_resvariants', False):
        return

    def _get_cfg_path(cfg_path, filename):
        if isinstance(cfg_path, str) and cfg_path.startswith(PREFIX):
            return resolve(cfg_path), None
        return mmengine_get_cfg_path(cfg_path, filename)

    _get_cfg_path._resvariants = True
    Config._get_cfg_path = staticmethod(_get_cfg_path)
