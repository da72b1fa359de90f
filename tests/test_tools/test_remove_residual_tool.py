"""tools/model_converters/remove_residual.py: config + checkpoint in, exact plain model out,
loadable by mmpretrain (the written config) and by an mmdet detector (StrictPretrained)."""
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch.nn.modules.batchnorm import _BatchNorm

from resvariants.engine.config_loading import build_model
from resvariants.engine.strict_pretrained import load_state_dict_strictly
from resvariants.utils import load_checkpoint_safely

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'model_converters', 'remove_residual.py')


def load_tool():
    spec = importlib.util.spec_from_file_location('remove_residual_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def calibrate_(model, size):
    """Random BN affine parameters and statistics measured on a random batch (eval mode)."""
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    with torch.no_grad():
        for norm in norms:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.3, 0.3)
            norm.reset_running_stats()
            norm.momentum = None
        model.train()
        model.extract_feat(torch.randn(16, 3, size, size))
    return model.eval()


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    tool = load_tool()
    work = tmp_path_factory.mktemp('rm')
    config = work / 'tiny_resnet18_cls.py'
    config.write_text(
        f"_base_ = ['{REPO}/configs/imagenet/resnet50_in1k.py']\n"
        "model = dict(backbone=dict(depth=18, base_channels=8),\n"
        "             head=dict(num_classes=10, in_channels=64))\n")
    cfg = tool.load_config(str(config))
    model = calibrate_(build_model(cfg), 64)
    ckpt = work / 'tiny.pth'
    torch.save(dict(state_dict={f'module.{k}': v for k, v in model.state_dict().items()}), ckpt)
    result = tool.main([str(config), str(ckpt), str(work / 'out'), '--shape', '64',
                        '--latency-runs', '1'])
    return tool, model, result


def test_writes_an_exact_plain_classifier(converted):
    tool, model, result = converted
    assert result['backbone_diff'] < 1e-4 and result['output_diff'] < 1e-4
    assert osp.basename(result['config']) == 'tiny_resnet18_cls_rm-plain.py'
    cfg = Config.fromfile(result['config'])
    assert cfg.model.backbone.type == 'resvariants.RMPlainResNet'
    assert cfg.model.backbone.reserve_identity
    plain = build_model(cfg)
    checkpoint = load_checkpoint_safely(result['checkpoint'])
    load_state_dict_strictly(plain, checkpoint['state_dict'])
    assert checkpoint['meta']['max_abs_diff'] < 1e-4
    plain.eval()
    x = torch.randn(2, 3, 48, 80)  # any size, not only the checked one
    with torch.no_grad():
        torch.testing.assert_close(plain(x), model(x), atol=1e-4, rtol=0)
    (residual_row, _, _), (plain_row, complexity, _) = result['rows']
    assert residual_row == 'residual' and plain_row == 'rm-plain'
    assert complexity.params == sum(p.numel() for p in plain.parameters())


def test_converted_backbone_initialises_a_detector(converted):
    import mmdet.models  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    _, model, result = converted
    cfg = Config.fromfile(osp.join(REPO, 'projects', 'resnet_no_res', 'configs',
                                   'faster-rcnn_rm-plain-r50_fpn_det-small.py')).model
    cfg.backbone.update(depth=18, base_channels=8)
    cfg.backbone.init_cfg.checkpoint = result['checkpoint']
    cfg.neck.update(in_channels=[8, 16, 32, 64], out_channels=16)
    cfg.rpn_head.update(in_channels=16, feat_channels=16)
    cfg.roi_head.bbox_roi_extractor.out_channels = 16
    cfg.roi_head.bbox_head.update(in_channels=16, fc_out_channels=32)
    with DefaultScope.overwrite_default_scope('mmdet'):
        detector = MODELS.build(cfg)
    detector.init_weights()  # StrictPretrained: raises on any missing / unexpected key
    detector.eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(detector.backbone(x)[3], model.backbone(x)[0], atol=1e-4,
                                   rtol=0)
        assert len(detector.extract_feat(x)) == 5


def test_refuses_a_backbone_it_cannot_make_exact(tmp_path):
    tool = load_tool()
    config = tmp_path / 'se.py'
    config.write_text(f"_base_ = ['{REPO}/configs/imagenet/se_resnet50_in1k.py']\n"
                      "model = dict(backbone=dict(base_channels=16), head=dict(in_channels=512))\n")
    cfg = tool.load_config(str(config))
    model = build_model(cfg)
    ckpt = tmp_path / 'se.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    with pytest.raises(ValueError, match='attention'):
        tool.main([str(config), str(ckpt), str(tmp_path / 'out'), '--latency-runs', '0'])
    assert not (tmp_path / 'out').exists()
