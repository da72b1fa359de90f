"""Bad input fails early with a message that names the problem (issue 10, part 3).

Model arguments fail when the model is built; config, data and checkpoint problems fail in
``tools/train.py`` / ``tools/test.py`` before or while the Runner starts; data problems met
during training (corrupt image, empty dataset, image below the stride) name the file.
NaN loss: tests/test_integration/test_crash_resume.py and test_engine/test_reliability_hooks.py.
"""
import importlib.util
import os.path as osp
import shutil

import pytest
import torch
from mmengine.config import Config
from PIL import Image

from resvariants.engine.preflight import check_checkpoint_file, resolve_auto_resume
from resvariants.models import ResNet

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLS_CFG = osp.join(REPO, 'tests/configs/cls_tiny.py')
DET_CFG = osp.join(REPO, 'tests/configs/det_tiny.py')


def _tool(name):
    spec = importlib.util.spec_from_file_location(f'_tool_{name}', osp.join(REPO, 'tools',
                                                                            f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def train_tool():
    return _tool('train')


@pytest.fixture(scope='module')
def test_tool():
    return _tool('test')


# ----------------------------------------------------------------------------- model arguments

def test_unknown_attention_lists_valid_names():
    with pytest.raises(KeyError) as err:
        ResNet(depth=18, base_channels=8, attention='squeeze')
    assert "unknown attention 'squeeze'" in str(err.value)
    for name in ('se', 'cbam', 'sge', 'srm', 'bam', 'gc'):
        assert name in str(err.value)


def test_unsupported_depth_lists_valid_depths():
    with pytest.raises(KeyError, match=r'unsupported ResNet depth 42; valid depths: '
                                       r'\[18, 34, 50, 101, 152\]'):
        ResNet(depth=42)


def test_selective_kernel_on_basic_blocks_is_refused():
    with pytest.raises(ValueError, match='SK .* needs depth 50/101/152, got depth 18 '
                                         r'\(BasicBlock\)'):
        ResNet(depth=18, base_channels=8, sk=dict(groups=2))


def test_wrong_plugin_position():
    plugin = dict(cfg=dict(type='SEModule'), stages=(True, ) * 4, position='after_conv4')
    with pytest.raises(ValueError, match=r"plugin position must be one of .*after_conv3.*"
                                         r"got 'after_conv4'"):
        ResNet(depth=50, base_channels=8, plugins=[plugin])
    # after_conv3 exists only in bottleneck blocks
    plugin['position'] = 'after_conv3'
    with pytest.raises(ValueError, match='after_conv3 exists only in Bottleneck'):
        ResNet(depth=18, base_channels=8, plugins=[plugin])


def test_attention_sk_points_to_the_sk_argument():
    """SK is not an attention= module (issue 15, part 3)."""
    for name in ('sk', 'SKFusion'):
        with pytest.raises(KeyError) as err:
            ResNet(depth=50, base_channels=16, attention=name)
        msg = str(err.value)
        assert f"attention='{name}': SK (selective kernel) is not an attention module" in msg
        assert 'Use sk=dict(groups=32, ratio=16) on resvariants.ResNet' in msg
    with pytest.raises(KeyError, match=r'\(SK is sk=dict\(groups=32, ratio=16\), not an '
                                       r'attention= name\)'):
        ResNet(depth=50, base_channels=16, attention='squeeze')


def _plugin(type_name, stages=(True, ) * 4):
    return dict(cfg=dict(type=type_name), stages=stages, position='after_conv3')


def test_plugin_stages_of_the_wrong_length():
    """mmdet asserts the length with a bare AssertionError."""
    with pytest.raises(ValueError) as err:
        ResNet(depth=50, base_channels=16, plugins=[_plugin('SRM', stages=(True, True))])
    assert ('plugins[0] (SRM): stages=(True, True) has 2 entries; it needs one per stage, '
            'num_stages=4 (e.g. stages=(False, True, True, True)), or stages=None for all'
            ) == str(err.value)


def test_unknown_plugin_type_in_the_trunk():
    """mmcv says "Cannot find None in registry"."""
    with pytest.raises(KeyError) as err:
        ResNet(depth=50, base_channels=16, plugins=[_plugin('SGEE')])
    msg = str(err.value)
    assert "plugins[0]: unknown plugin type 'SGEE'" in msg
    assert 'SGE' in msg and 'SEModule' in msg and 'GCBlock' in msg  # ours, listed
    assert "custom_imports=dict(imports=['resvariants.models'])" in msg


def _stock_mmdet_config(tmp_path, plugin):
    cfg = tmp_path / 'stock.py'
    cfg.write_text(f"_base_ = '{DET_CFG}'\n"
                   f"model = dict(backbone=dict(_delete_=True, type='mmdet.ResNet', depth=50, "
                   f"plugins=[{plugin!r}]))\n")
    return str(cfg)


def test_stock_mmdet_resnet_plugin_problems_in_a_config(train_tool, tmp_path):
    """A stock mmdet ResNet in a config: tools/train.py checks its plugins before mmcv does."""
    with pytest.raises(KeyError) as err:
        train_tool.main([_stock_mmdet_config(tmp_path, _plugin('SGEE')), '--work-dir',
                         str(tmp_path / 'w')])
    msg = str(err.value)
    assert "model.backbone.plugins[0]: unknown plugin type 'SGEE'" in msg
    assert "not registered in the 'mmdet' scope" in msg
    with pytest.raises(ValueError, match=r'model.backbone.plugins\[0\] \(SGE\): '
                                         r'stages=\(True,\) has 1 entries; it needs one per'):
        train_tool.main([_stock_mmdet_config(tmp_path, _plugin('SGE', stages=(True, ))),
                         '--work-dir', str(tmp_path / 'w')])


def test_unknown_variant_in_a_config_lists_registered_models(train_tool, tmp_path):
    with pytest.raises(KeyError) as err:
        train_tool.main([CLS_CFG, '--work-dir', str(tmp_path), '--cfg-options',
                         'model.backbone.type=resvariants.ResNeSt'])
    msg = str(err.value)
    assert "unknown variant 'resvariants.ResNeSt' at model.backbone.type" in msg
    assert 'ResNet' in msg and 'OctResNet' in msg


# -------------------------------------------------------------------------- data and files

def test_missing_data_root(train_tool, tmp_path):
    with pytest.raises(FileNotFoundError, match=r'train_dataloader.dataset.data_root not found: '
                                                r'/nonexistent/cls_small'):
        train_tool.main([CLS_CFG, '--work-dir', str(tmp_path), '--cfg-options',
                         'train_dataloader.dataset.data_root=/nonexistent/cls_small'])


def test_missing_annotation_file(train_tool, test_tool, tmp_path):
    with pytest.raises(FileNotFoundError, match=r'train_dataloader.dataset.ann_file not found: '
                                                r'.*cls_small/meta/nope.txt'):
        train_tool.main([CLS_CFG, '--work-dir', str(tmp_path), '--cfg-options',
                         'train_dataloader.dataset.ann_file=meta/nope.txt'])
    ckpt = tmp_path / 'any.pth'
    torch.save({'state_dict': {}}, ckpt)
    with pytest.raises(FileNotFoundError, match=r'test_evaluator.ann_file not found: '
                                                r'/nonexistent/instances_val.json'):
        test_tool.main([DET_CFG, str(ckpt), '--work-dir', str(tmp_path), '--cfg-options',
                        'test_evaluator.ann_file=/nonexistent/instances_val.json'])


def _small_cls_data(root, images):
    """A cls_small-like data root holding ``images`` ({name: PIL image or bytes})."""
    (root / 'train').mkdir(parents=True)
    (root / 'meta').mkdir()
    classes = (osp.join(REPO, 'tests', 'data', 'cls_small', 'meta', 'classes.txt'))
    if osp.isfile(classes):
        shutil.copy(classes, root / 'meta' / 'classes.txt')
    else:
        (root / 'meta' / 'classes.txt').write_text('\n'.join(f'c{i}' for i in range(10)))
    lines = []
    for name, content in images.items():
        path = root / 'train' / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            content.save(path)
        lines.append(f'{name} 0')
    (root / 'meta' / 'train.txt').write_text('\n'.join(lines) + ('\n' if lines else ''))
    return root


def _config_on(tmp_path, data_root, pipeline=None):
    cfg = tmp_path / 'cfg.py'
    text = (f"_base_ = '{CLS_CFG}'\n"
            f"train_dataloader = dict(batch_size=2, dataset=dict(data_root='{data_root}', "
            f"classes='{data_root}/meta/classes.txt'"
            + (f", pipeline={pipeline!r}" if pipeline else '') + '))\n')
    cfg.write_text(text)
    return str(cfg)


def test_corrupt_image_is_named(train_tool, tmp_path):
    root = _small_cls_data(tmp_path / 'data', {'broken.JPEG': b'\xff\xd8 not a jpeg at all'})
    with pytest.raises(Exception) as err:
        train_tool.main([_config_on(tmp_path, root), '--work-dir', str(tmp_path / 'w')])
    assert f'failed to load image: {root}/train/broken.JPEG' in str(err.value)


def test_empty_dataset(train_tool, tmp_path):
    root = _small_cls_data(tmp_path / 'data', {})
    with pytest.raises(ValueError) as err:
        train_tool.main([_config_on(tmp_path, root), '--work-dir', str(tmp_path / 'w')])
    assert 'train_dataloader has an empty dataset' in str(err.value)
    assert f'ann_file={root}/meta/train.txt' in str(err.value)


def test_image_smaller_than_the_backbone_stride(train_tool, tmp_path):
    images = {f'tiny{i}.JPEG': Image.new('RGB', (24, 40), (i * 60, 0, 0)) for i in range(2)}
    root = _small_cls_data(tmp_path / 'data', images)
    pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
    with pytest.raises(ValueError) as err:
        train_tool.main([_config_on(tmp_path, root, pipeline), '--work-dir', str(tmp_path / 'w')])
    msg = str(err.value)
    assert f'{root}/train/tiny' in msg and 'is 40x24 after the data pipeline' in msg
    assert 'smaller than the backbone stride 32' in msg


def test_too_small_input_in_train_mode_names_the_norm_and_the_fixes():
    """A 32x32 image at batch 1 is a 1x1 map in layer4: PyTorch's "Expected more than 1 value
    per channel when training" names no module."""
    model = ResNet(depth=50, base_channels=16, attention='srm', norm_eval=False).train()
    with pytest.raises(ValueError) as err:
        model(torch.randn(1, 3, 32, 32))
    msg = str(err.value)
    assert ('ResNet: the BatchNorm layer4.0.bn2 (BatchNorm2d) gets 1 value per channel in '
            'train mode: the input (1, 3, 32, 32) with batch 1 is a 1x1 map there') in msg
    for fix in ('a batch of 2 or more images', 'a larger input', 'norm_eval=True', 'SyncBN'):
        assert fix in msg
    # each fix works
    assert model(torch.randn(2, 3, 32, 32))[-1].shape == (2, 512, 1, 1)
    assert model(torch.randn(1, 3, 64, 64))[-1].shape == (1, 512, 2, 2)
    frozen = ResNet(depth=50, base_channels=16, attention='srm', norm_eval=True).train()
    assert frozen(torch.randn(1, 3, 32, 32))[-1].shape == (1, 512, 1, 1)
    # and no hook is left behind
    assert not any(m._forward_pre_hooks for m in model.modules())


# ---------------------------------------------------------------------------- checkpoints

def test_missing_strict_pretrained_checkpoint_says_how_to_fix_it(tmp_path, monkeypatch):
    missing = str(tmp_path / 'imagenet' / 'resnet50_in1k.pth')
    monkeypatch.setenv('RESVARIANTS_PRETRAINED', str(tmp_path / 'imagenet'))
    model = ResNet(depth=50, base_channels=16, init_cfg=dict(
        type='StrictPretrained', checkpoint=missing, prefix='backbone.'))
    with pytest.raises(FileNotFoundError) as err:
        model.init_weights()
    msg = str(err.value)
    assert f'StrictPretrained init: checkpoint not found: {missing}' in msg
    assert f'$RESVARIANTS_PRETRAINED={tmp_path}/imagenet' in msg
    assert 'export RESVARIANTS_PRETRAINED=DIR' in msg
    assert '--cfg-options model.backbone.init_cfg.checkpoint=PATH' in msg
    assert '--cfg-options model.backbone.init_cfg=None trains the backbone from scratch' in msg
    monkeypatch.delenv('RESVARIANTS_PRETRAINED')
    model = ResNet(depth=50, base_channels=16, init_cfg=dict(
        type='WarmStart', checkpoint=missing))
    with pytest.raises(FileNotFoundError, match=r'WarmStart init: .*RESVARIANTS_PRETRAINED is '
                                                r'not set, so the default checkpoints/imagenet'):
        model.init_weights()


def test_missing_init_checkpoint_fails_before_training(train_tool, tmp_path):
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError) as err:
        train_tool.main([osp.join(REPO, 'tests/configs/det_tiny_converted_backbone.py'),
                         '--work-dir', str(tmp_path / 'w'), '--cfg-options',
                         f'model.backbone.init_cfg.checkpoint={missing}'])
    msg = str(err.value)
    assert f'StrictPretrained init: checkpoint not found: {missing} ' \
           f'(model.backbone.init_cfg.checkpoint)' in msg
    assert '--cfg-options model.backbone.init_cfg.checkpoint=PATH' in msg
    assert not (tmp_path / 'w').exists() or not any((tmp_path / 'w').rglob('*.pth'))


def _cls_model():
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    return MODELS.build(Config.fromfile(CLS_CFG).model)


def test_test_tool_lists_missing_unexpected_and_misshaped_keys(test_tool, tmp_path):
    state = _cls_model().state_dict()
    del state['backbone.layer4.1.bn2.bias']
    state['backbone.layer5.0.conv1.weight'] = torch.zeros(1)
    state['head.fc.weight'] = torch.zeros(1000, 512)
    ckpt = tmp_path / 'other_model.pth'
    torch.save({'state_dict': state}, ckpt)
    with pytest.raises(KeyError) as err:
        test_tool.main([CLS_CFG, str(ckpt), '--work-dir', str(tmp_path / 'w')])
    msg = str(err.value)
    assert '1 missing keys: backbone.layer4.1.bn2.bias' in msg
    assert '1 unexpected keys: backbone.layer5.0.conv1.weight' in msg
    assert 'head.fc.weight: checkpoint (1000, 512) vs model (10, 512)' in msg


def test_truncated_checkpoint_is_reported(tmp_path):
    path = tmp_path / 'iter_4.pth'
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(RuntimeError, match=r'cannot read checkpoint .*iter_4.pth \(truncated'):
        check_checkpoint_file(str(path))


def test_auto_resume_skips_a_broken_latest_checkpoint(tmp_path):
    good = tmp_path / 'iter_2.pth'
    torch.save({'meta': {'iter': 2}, 'state_dict': {'w': torch.ones(3)}}, good)
    broken = tmp_path / 'iter_4.pth'
    broken.write_bytes(good.read_bytes()[:100])  # e.g. written without the atomic backend
    (tmp_path / 'last_checkpoint').write_text(str(broken))
    assert resolve_auto_resume(str(tmp_path)) == str(good)
    assert resolve_auto_resume(str(tmp_path / 'empty_dir_that_has_nothing')) is None
