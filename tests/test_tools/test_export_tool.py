"""``tools/deployment/export.py``: a config and checkpoint in, a verified ONNX / TorchScript file
out (issue 17, item 6), and clear errors for a bad config, checkpoint, format or part.

The configs are the zoo's SGE-ResNet-50 classifier and Faster R-CNN, made small with
``--cfg-options`` (ResNet-18 trunk); inputs are 64x64.
"""
import importlib.util
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLS_CFG = osp.join(REPO, 'configs/imagenet/sge_resnet50_in1k.py')
DET_CFG = osp.join(REPO, 'configs/faster_rcnn_sge_r50_fpn.py')
SMALL_CLS = ['model.backbone.depth=18', 'model.head.in_channels=512']
SMALL_DET = ['model.backbone.depth=18', 'model.neck.in_channels=[64,128,256,512]']
SHAPE = ['--shape', '64', '64', '--verify-shapes', '57', '41', '40', '72']


def _tool():
    path = osp.join(REPO, 'tools', 'deployment', 'export.py')
    spec = importlib.util.spec_from_file_location('_tool_deployment_export', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _randomise(model, seed=0):
    """Random weights and BN statistics with outputs of order 1 (not the init's)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            std = p[0].numel()**-0.5 if p.dim() > 1 else 0.5
            p.copy_(torch.randn(p.shape, generator=g) * std)
        for name, buf in model.named_buffers():
            if name.endswith('running_var'):
                buf.copy_(torch.rand(buf.shape, generator=g) + 0.5)
            elif name.endswith('running_mean'):
                buf.copy_(torch.randn(buf.shape, generator=g) * 0.2)
    return model.eval()


def _build(config, options):
    from resvariants.engine.config_loading import build_model, read_config
    return build_model(read_config(config, options), without_checkpoint=True)


@pytest.fixture(scope='module')
def classifier(tmp_path_factory):
    """A small SGE-ResNet-18 classifier with random weights, saved as an mmengine checkpoint
    and as a bare backbone state dict."""
    model = _randomise(_build(CLS_CFG, SMALL_CLS))
    folder = tmp_path_factory.mktemp('ckpt')
    full = str(folder / 'classifier.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': 1}}, full)
    bare = str(folder / 'backbone.pth')
    torch.save(model.backbone.state_dict(), bare)
    return model, full, bare


def _run_file(path, fmt, x):
    from resvariants.deployment import Runner
    return Runner(path, fmt)(x)


def test_whole_classifier_to_onnx_from_a_checkpoint(classifier, tmp_path, capsys):
    model, checkpoint, _ = classifier
    out = str(tmp_path / 'cls.onnx')
    result = _tool().main([CLS_CFG, checkpoint, '--with-head', '--out', out, *SHAPE,
                           '--cfg-options', *SMALL_CLS])
    printed = capsys.readouterr().out
    assert 'Exporting backbone+neck+head of ResNet as onnx (torchscript exporter, opset 17)' \
        in printed
    assert 'Verified at 2x3x57x41' in printed and 'Verified at 2x3x40x72' in printed
    assert f'OK: {out}' in printed and result['max_abs_diff'] < 1e-4
    # the file holds the checkpoint's weights: the logits of the saved model, at another size
    x = torch.randn(3, 3, 48, 80)
    with torch.no_grad():
        expected = model(x, mode='tensor')
    (logits, ) = _run_file(out, 'onnx', x)
    assert logits.shape == (3, 1000)
    np.testing.assert_allclose(logits, expected.numpy(), rtol=1e-4, atol=1e-4)


def test_backbone_to_torchscript_from_a_bare_backbone_checkpoint(classifier, tmp_path):
    model, _, bare = classifier
    out = str(tmp_path / 'backbone.pt')
    _tool().main([CLS_CFG, bare, '--format', 'torchscript', '--out', out, *SHAPE,
                  '--cfg-options', *SMALL_CLS])
    x = torch.randn(1, 3, 50, 33)
    (feature, ) = _run_file(out, 'torchscript', x)
    with torch.no_grad():
        expected = model.backbone(x)[-1]
    assert feature.shape == (1, 512, 2, 2)
    np.testing.assert_allclose(feature, expected.numpy(), rtol=1e-5, atol=1e-5)
    assert 'backbone.layer4.1.sge.weight' in torch.jit.load(out).state_dict()


def test_detector_backbone_and_neck_with_random_weights(tmp_path, capsys):
    out = str(tmp_path / 'det.onnx')
    with pytest.warns(UserWarning, match='no checkpoint given: exporting random weights'):
        result = _tool().main([DET_CFG, 'none', '--with-neck', '--out', out, *SHAPE,
                               '--cfg-options', *SMALL_DET])
    assert 'Weights: random (no checkpoint)' in capsys.readouterr().out
    # every FPN level is an output, each with its own dynamic height and width
    assert [len(r['diffs']) for r in result['results']] == [5, 5]
    outs = _run_file(out, 'onnx', torch.randn(1, 3, 96, 65))
    assert [o.shape[2:] for o in outs] == [(24, 17), (12, 9), (6, 5), (3, 3), (2, 2)]


def test_default_output_names_the_config_and_part():
    tool = _tool()
    assert tool.default_output(DET_CFG, 'onnx', with_neck=True) == osp.join(
        'work_dirs', 'deploy', 'faster_rcnn_sge_r50_fpn_neck.onnx')
    assert tool.default_output(CLS_CFG, 'torchscript') == osp.join(
        'work_dirs', 'deploy', 'sge_resnet50_in1k.pt')


# ------------------------------------------------------------------------------- errors


def test_a_difference_above_the_tolerance_fails_loudly(classifier, tmp_path, monkeypatch,
                                                       capsys):
    from resvariants.deployment import core
    original = core.Runner.__call__

    def off_by_a_little(self, x):
        return [o + 1e-3 for o in original(self, x)]

    monkeypatch.setattr(core.Runner, '__call__', off_by_a_little)
    _, checkpoint, _ = classifier
    with pytest.raises(SystemExit) as info:
        _tool().main([CLS_CFG, checkpoint, '--out', str(tmp_path / 'x.onnx'), *SHAPE,
                      '--cfg-options', *SMALL_CLS])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert 'FAILED:' in err and "differ from PyTorch's by more than 0.0001" in err
    assert '57x41: 0.001' in err


def test_missing_config_and_checkpoint_are_named(classifier, tmp_path):
    tool = _tool()
    with pytest.raises(FileNotFoundError, match='config file not found: nowhere.py'):
        tool.main(['nowhere.py'])
    missing = str(tmp_path / 'missing.pth')
    with pytest.raises(FileNotFoundError, match=f'checkpoint not found: {missing}'):
        tool.main([CLS_CFG, missing, '--cfg-options', *SMALL_CLS])


def test_a_checkpoint_of_another_config_is_refused(classifier, tmp_path):
    model, _, _ = classifier
    tool = _tool()
    state = {k: v for k, v in model.state_dict().items() if '.sge.' not in k}
    no_sge = str(tmp_path / 'plain.pth')
    torch.save({'state_dict': state}, no_sge)
    with pytest.raises(KeyError, match=r'lacks 16 of the \d+ weights of the exported backbone '
                       r'\(e.g. backbone.layer1.0.sge.weight'):
        tool.main([CLS_CFG, no_sge, '--cfg-options', *SMALL_CLS])
    wider = str(tmp_path / 'wider.pth')
    state = dict(model.state_dict())
    state['backbone.conv1.weight'] = torch.zeros(32, 3, 7, 7)
    torch.save({'state_dict': state}, wider)
    with pytest.raises(ValueError, match=r'backbone.conv1.weight: \(32, 3, 7, 7\) in the '
                       r'checkpoint, \(64, 3, 7, 7\) in the model'):
        tool.main([CLS_CFG, wider, '--cfg-options', *SMALL_CLS])


class _RunsCodeOnLoad:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_a_checkpoint_that_runs_code_is_refused(tmp_path):
    from resvariants.utils import UnsafeCheckpointError
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    with open(path, 'wb') as f:
        pickle.dump({'state_dict': {'w': torch.zeros(1)}, 'x': _RunsCodeOnLoad(marker)}, f)
    with pytest.raises(UnsafeCheckpointError, match='refusing to load checkpoint'):
        _tool().main([CLS_CFG, str(path), '--cfg-options', *SMALL_CLS])
    assert not marker.exists()


def test_bad_format_part_and_options_are_named(capsys):
    from resvariants.deployment import ExportError
    tool = _tool()
    with pytest.raises(SystemExit) as info:
        tool.main([CLS_CFG, '--format', 'tflite'])
    assert info.value.code == 2
    assert "argument --format: invalid choice: 'tflite'" in capsys.readouterr().err
    with pytest.raises(ExportError, match='--with-head exports a whole classifier .* '
                       'FasterRCNN has no classification head'):
        tool.main([DET_CFG, '--with-head', '--cfg-options', *SMALL_DET])
    with pytest.raises(ValueError, match='--exporter chooses the ONNX exporter'):
        tool.main([CLS_CFG, '--format', 'torchscript', '--exporter', 'dynamo'])
    with pytest.raises(ValueError, match=r'--shape takes H W \(or one size\)'):
        tool.main([CLS_CFG, '--shape', '1', '2', '3', '4'])


def test_command_line_errors_exit_2_with_the_message(tmp_path):
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools/deployment/export.py'),
                           str(tmp_path / 'none.py')], capture_output=True, text=True,
                          cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith(f'error: config file not found: {tmp_path}/none.py')


# ------------------------------------------------------------- tools/deployment/benchmark_export.py


def test_benchmark_script_prints_the_matrix_and_latency_tables(capsys):
    """Both tables of docs/deployment.md on the CIFAR ResNet-20 config at 32x32 (verified at
    25x21 and 41x37); latency with 2 rounds, for the table's form only."""
    spec = importlib.util.spec_from_file_location(
        '_tool_benchmark_export', osp.join(REPO, 'tools', 'deployment', 'benchmark_export.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    config = 'projects/resnet_no_res/configs/resnet20_1xb1024_cifar100.py'
    assert tool.main(['--matrix', '--configs', config, '--shape', '32']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ('| config | exported | ONNX max abs diff (25x21 / 41x37) | TorchScript '
                        'max abs diff (25x21 / 41x37) | max abs output |')
    (row, ) = [line for line in lines if line.startswith('| resnet20_1xb1024_cifar100 |')]
    cells = [c.strip() for c in row.strip('|').split('|')]
    assert cells[1] == 'backbone (CifarResNet)'
    diffs = [float(d) for cell in cells[2:4] for d in cell.split(' / ')]
    assert len(diffs) == 4 and max(diffs) < 1e-4 and float(cells[4]) > 0.1

    tool.main(['--configs', config, '--shape', '32', '--threads', '1', '--warmup', '0',
               '--runs', '2'])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == ('| config | PyTorch eager (ms) | TorchScript (ms) | ONNX Runtime (ms) '
                        '| ONNX Runtime / eager |')
    (row, ) = [line for line in lines if line.startswith('| resnet20_1xb1024_cifar100 |')]
    times = [float(c) for c in row.strip('|').split('|')[1:]]
    assert len(times) == 4 and all(t > 0 for t in times)
    # the ratio of the unrounded medians; the printed times are rounded to 0.1 ms
    assert times[3] == pytest.approx(times[2] / times[0], rel=0.25, abs=0.01)
