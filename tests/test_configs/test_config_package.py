"""``resvariants::`` bases: the model zoo resolves from a config in any folder."""
import os.path as osp

import pytest
from mmengine.config import Config

import resvariants  # noqa: F401  (installs the resvariants:: prefix)
from resvariants.utils import config_package

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _user_config(tmp_path, text, name='user_cfg.py'):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_zoo_dir_is_the_checkouts_configs_folder():
    assert osp.samefile(config_package.zoo_config_dir(), osp.join(REPO, 'configs'))
    # the wheel layout reaches the same files through resvariants/.mim/configs
    assert osp.samefile(osp.join(REPO, 'resvariants', '.mim', 'configs'), osp.join(REPO, 'configs'))


def test_flat_zoo_name_inherits_the_zoo_config(tmp_path):
    cfg = Config.fromfile(_user_config(tmp_path, (
        "_base_ = 'resvariants::faster_rcnn_sge_r101_fpn.py'\n"
        "model = dict(backbone=dict(init_cfg=None))\n"
        "train_cfg = dict(max_epochs=1)\n")))
    zoo = Config.fromfile(osp.join(REPO, 'configs', 'faster_rcnn_sge_r101_fpn.py'))
    assert cfg.default_scope == zoo.default_scope == 'mmdet'
    assert cfg.model.backbone.init_cfg is None
    assert zoo.model.backbone.init_cfg is not None
    zoo.model.backbone.init_cfg = None
    assert cfg.model.to_dict() == zoo.model.to_dict()   # no extra `_scope_`, same model
    assert cfg.train_cfg.max_epochs == 1 and zoo.train_cfg.max_epochs != 1
    assert cfg.model.backbone.type == 'resvariants.ResNet' and cfg.model.backbone.depth == 101
    assert cfg.model.backbone.attention.type == 'SGE'


def test_sub_folder_zoo_name(tmp_path):
    cfg = Config.fromfile(_user_config(tmp_path, (
        "_base_ = ['resvariants::imagenet/se_resnet50_in1k.py']\n"
        "model = dict(head=dict(num_classes=10))\n")))
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.model.backbone.attention.type.lower() in ('se', 'semodule')
    assert cfg.model.head.num_classes == 10


def test_demo_data_root_defaults_to_the_repos_copy(tmp_path, monkeypatch):
    monkeypatch.delenv('RESVARIANTS_DATA', raising=False)
    cfg = Config.fromfile(_user_config(tmp_path, (
        "_base_ = 'resvariants::demo/resnet18_cls-small.py'\n")))
    root = cfg.train_dataloader.dataset.data_root
    assert osp.samefile(root, osp.join(REPO, 'tests', 'data', 'cls_small'))
    monkeypatch.setenv('RESVARIANTS_DATA', str(tmp_path))
    cfg = Config.fromfile(_user_config(tmp_path, (
        "_base_ = 'resvariants::demo/resnet18_cls-small.py'\n"), name='again.py'))
    assert cfg.train_dataloader.dataset.data_root == f'{tmp_path}/cls_small'


def test_unknown_zoo_name_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'resvariants::faster_rcnn_nope\.py' is not a "
                                                r'resvariants zoo config'):
        Config.fromfile(_user_config(tmp_path, "_base_ = 'resvariants::faster_rcnn_nope.py'\n"))


@pytest.mark.parametrize('bad', ['resvariants::../pyproject.toml', 'resvariants::',
                                 'resvariants::/etc/passwd'])
def test_paths_outside_the_zoo_are_refused(bad):
    with pytest.raises((ValueError, FileNotFoundError)):
        config_package.resolve(bad)


def test_other_packages_are_left_to_mmengine(tmp_path):
    cfg = Config.fromfile(_user_config(tmp_path, (
        "_base_ = 'mmdet::_base_/models/faster-rcnn_r50_fpn.py'\n")))
    assert cfg.model.type == 'FasterRCNN'
    assert cfg.model._scope_ == 'mmdet'   # mmengine's own scope handling, unchanged
    config_package.install()              # idempotent: still one wrapper
    assert getattr(Config.__dict__['_get_cfg_path'].__func__, '_resvariants', False)
