"""tools/analysis/growth.py: the sweeps it runs, the with_cp equality check that guards them,
and the with_cp trade it reports (no timing assertions)."""
import argparse
import csv
import importlib.util
import math
import os.path as osp

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool():
    path = osp.join(REPO, 'tools', 'analysis', 'growth.py')
    spec = importlib.util.spec_from_file_location('resvariants_growth', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = load_tool()


def test_tiny_sweep_writes_every_point_with_and_without_checkpointing(tmp_path, monkeypatch):
    configs = ['configs/imagenet/resnet50_in1k.py', 'configs/imagenet/oct_resnet50_in1k.py']
    build_variant = tool.build_variant

    def octave_without_checkpointing(path):
        # every registered backbone defines with_cp today: stand in for one that does not
        classifier, det, supports_cp = build_variant(path)
        assert supports_cp
        return classifier, det, 'oct_resnet50' not in path

    monkeypatch.setattr(tool, 'build_variant', octave_without_checkpointing)
    rows = tool.main(['--configs', *configs, '--device', 'cpu', '--batches', '2', '3',
                      '--size', '64', '--det-sizes', '32x32', '32x48', '--runs', '1',
                      '--threads', '1', '--check-size', '32', '--out-dir', str(tmp_path)])
    # a variant that defines no checkpointing: its "on" rows are absent, not faked
    expected = {(name, sweep, on, batch, h, w)
                for name, modes in (('resnet50_in1k', (False, True)),
                                    ('oct_resnet50_in1k', (False, )))
                for on in modes
                for sweep, batch, h, w in (('batch', 2, 64, 64), ('batch', 3, 64, 64),
                                           ('input size', 1, 32, 32),
                                           ('input size', 1, 32, 48))}
    got = {(r['config'], r['sweep'], r['with_cp'], r['batch'], r['height'], r['width'])
           for r in rows}
    assert got == expected
    for row in rows:
        assert row['train_ms'] > 0
        assert row['ms_per_image'] == pytest.approx(row['train_ms'] / row['batch'])
    with open(tmp_path / 'growth.csv') as f:
        assert len(list(csv.DictReader(f))) == len(expected)
    text = (tmp_path / 'growth.md').read_text()
    assert '| resnet50_in1k | input size | 1 | 32 | 48 |' in text  # the with_cp trade table
    assert 'oct_resnet50_in1k | input size | 1' not in text.split('with_cp on / off')[1]
    assert (tmp_path / 'growth.png').stat().st_size > 10_000


def test_detection_backbone_has_the_detection_settings_and_the_classifier_weights():
    classifier, det, supports_cp = tool.build_variant(
        osp.join(REPO, 'configs/imagenet/sge_resnet50_in1k.py'))
    assert supports_cp
    assert det.out_indices == (0, 1, 2, 3) and det.frozen_stages == 1 and det.norm_eval
    assert not any(p.requires_grad for p in det.layer1.parameters())
    assert det.layer1[0].bn1.training is False  # norm_eval after train()
    for key, value in classifier.backbone.state_dict().items():
        assert torch.equal(det.state_dict()[key], value), key
    outs = det(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape[1:]) for o in outs] == [(256, 16, 24), (512, 8, 12), (1024, 4, 6),
                                                  (2048, 2, 3)]


class _Step:
    """A fake train step: with_cp on perturbs the loss (``dloss``) or one gradient."""

    def __init__(self, on, dloss=0., dgrad=0.):
        torch.manual_seed(0)
        self.model = torch.nn.Linear(3, 2)
        self.on, self.dloss, self.dgrad = on, dloss, dgrad
        self.x = torch.ones(4, 3)

    def loss(self):
        out = self.model(self.x)
        loss = out.sum() + (self.dloss if self.on else 0.)
        if self.on and self.dgrad:
            loss = loss + self.dgrad * (self.model.bias[0] - self.model.bias[0].detach())  # 0
        return loss


def test_with_cp_check_passes_an_unchanged_step_and_names_a_changed_one():
    tool.check_with_cp_keeps_the_step(lambda on: _Step(on), 'same')
    with pytest.raises(AssertionError,
                       match=r'^net: with_cp changed the loss \(-0\.863\d+ -> 0\.136\d+\)$'):
        tool.check_with_cp_keeps_the_step(lambda on: _Step(on, dloss=1.), 'net')
    with pytest.raises(AssertionError, match=r'^net: with_cp changed the gradient of bias '
                                             r'\(max \|diff\| 0\.01\)'):
        tool.check_with_cp_keeps_the_step(lambda on: _Step(on, dgrad=0.01), 'net')


def test_with_cp_really_runs_the_blocks_checkpointed(monkeypatch):
    """set_with_cp reaches every block: the checkpointed step calls torch's checkpoint once per
    block whose input needs a gradient (stage 1 is frozen in the detection backbone, so neither
    its blocks nor the first block of stage 2, which reads stage 1's output, are recomputed)."""
    import torch.utils.checkpoint as cp
    _, det, _ = tool.build_variant(osp.join(REPO, 'configs/imagenet/resnet50_in1k.py'))
    calls = []
    real = cp.checkpoint
    monkeypatch.setattr(cp, 'checkpoint', lambda *a, **k: calls.append(1) or real(*a, **k))
    for on, expected in ((False, 0), (True, 3 + 6 + 3)):
        calls.clear()
        tool.BackboneStep(tool.set_with_cp(det, on), 'cpu', 1, (32, 32)).loss()
        assert len(calls) == expected


def test_cp_summary_divides_on_by_off_at_each_point():
    rows = [dict(config='a', sweep='batch', batch=2, height=8, width=8, with_cp=on,
                 train_ms=ms, peak_mem_MB=mb)
            for on, ms, mb in ((False, 100., 40.), (True, 130., 10.))]
    rows.append(dict(config='oct', sweep='batch', batch=2, height=8, width=8, with_cp=False,
                     train_ms=5., peak_mem_MB=0.))
    (row, ) = tool.cp_summary(rows)
    assert (row['config'], row['time_ratio'], row['memory_ratio']) == ('a', 1.3, 0.25)
    rows[0]['peak_mem_MB'] = 0.
    assert math.isnan(tool.cp_summary(rows[:2])[0]['memory_ratio'])


@pytest.mark.parametrize('text, message', [
    ('800', 'is not HxW'), ('800x', 'is not HxW'), ('0x10', 'H and W must be >= 1')])
def test_parse_size_refuses_malformed_sizes(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        tool.parse_size(text)
    assert tool.parse_size('800x1333') == (800, 1333)


def test_bad_arguments_are_rejected(capsys):
    for argv, message in ((['--batches', '0', '2'], '--batches must all be >= 1'),
                          (['--runs', '0'], '--runs must be >= 1')):
        with pytest.raises(SystemExit):
            tool.parse_args(argv)
        assert message in capsys.readouterr().err


def test_detection_backbone_normalises_with_measured_statistics():
    """Frozen BN statistics at their initial values (0, 1) let a weight-standardised net's
    features overflow (every conv multiplies them by about its fan-in's square root): the
    statistics are measured on a batch first, so the WS backbone stays finite."""
    _, det, _ = tool.build_variant(osp.join(REPO, 'configs/imagenet/ws_resnet50_in1k.py'))
    assert not torch.equal(det.bn1.running_var, torch.ones_like(det.bn1.running_var))
    outs = det(torch.randn(1, 3, 64, 64))
    assert all(torch.isfinite(o).all() and o.abs().max() < 1e3 for o in outs)
