"""tools/misc/demo_summary.py: the demo's last 3 lines come from the logs the runs wrote."""
import importlib.util
import json
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
spec = importlib.util.spec_from_file_location(
    'demo_summary', osp.join(REPO, 'tools', 'misc', 'demo_summary.py'))
demo_summary = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo_summary)


def _write_jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(json.dumps(r) + '\n' for r in records))


@pytest.fixture
def runs(tmp_path):
    cls, det, test = tmp_path / 'cls', tmp_path / 'det', tmp_path / 'det_test'
    # mmengine: <work_dir>/<timestamp>/vis_data/scalars.json, one record per log / val step
    _write_jsonl(cls / '20260101_000000' / 'vis_data' / 'scalars.json', [
        {'lr': 0.1, 'loss': 2.3, 'step': 10},
        {'accuracy/top1': 31.4, 'accuracy/top5': 77.0, 'step': 4},
        {'lr': 0.05, 'loss': 1.9, 'step': 20},
        {'accuracy/top1': 52.6, 'accuracy/top5': 90.2, 'step': 8},
    ])
    (cls / 'epoch_8.pth').write_bytes(b'x')
    (cls / 'last_checkpoint').write_text(str(cls / 'epoch_8.pth'))
    det.mkdir()
    (det / 'epoch_12.pth').write_bytes(b'x')
    (det / 'last_checkpoint').write_text(str(det / 'epoch_12.pth'))
    # tools/test.py: <work_dir>/<timestamp>/<timestamp>.json holds the test metrics
    _write_jsonl(test / '20260101_000100' / '20260101_000100.json', [
        {'coco/bbox_mAP': 0.071, 'coco/bbox_mAP_50': 0.183, 'coco/bbox_mAP_75': 0.052,
         'coco/bbox_mAP_s': 0.0, 'step': 0}])
    return cls, det, test


def test_summary_reports_the_last_figures_and_checkpoints(runs, capsys):
    cls, det, test = runs
    assert demo_summary.main(['--cls-dir', str(cls), '--det-dir', str(det),
                              '--test-dir', str(test)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith('classifier: top-1 52.6 % / top-5 90.2 %')
    assert lines[1].startswith('detector:   COCO bbox AP 0.071 / AP50 0.183 / AP75 0.052')
    assert str(cls / 'epoch_8.pth') in lines[2] and str(det / 'epoch_12.pth') in lines[2]


def test_missing_metrics_fail_with_the_reason(runs, capsys):
    cls, det, test = runs
    for path in test.rglob('*.json'):
        path.unlink()
    assert demo_summary.main(['--cls-dir', str(cls), '--det-dir', str(det),
                              '--test-dir', str(test)]) == 1
    assert "no 'coco/bbox_mAP_50' in the logs under" in capsys.readouterr().err
