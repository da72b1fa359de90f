"""tools/analysis/benchmark_plain.py prints the latency table of the five network forms."""
import importlib.util
import os.path as osp

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool():
    path = osp.join(REPO, 'tools', 'analysis', 'benchmark_plain.py')
    spec = importlib.util.spec_from_file_location('benchmark_plain', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_forms_compute_what_they_claim():
    tool = load_tool()
    forms, size = tool.build_forms('resnet20', 'cpu')
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        out = {name: model(x)[-1] for name, model in forms.items()}
    # exact forms reproduce their source network, the distilled-student forms each other
    torch.testing.assert_close(out['residual fused'], out['residual'], atol=1e-4, rtol=0)
    torch.testing.assert_close(out['RM exact'], out['residual'], atol=1e-4, rtol=0)
    torch.testing.assert_close(out['plain fused'], out['plain'], atol=1e-4, rtol=0)


def test_prints_one_row_per_arch_and_batch(capsys):
    tool = load_tool()
    rows, figures = tool.main(['--archs', 'resnet20', '--batch-sizes', '1', '2', '--runs', '1',
                               '--warmup', '0'])
    printed = capsys.readouterr().out
    assert len(rows) == 2 and all(row in printed for row in rows)
    assert all(len(row.strip('|').split('|')) == 10 for row in rows)
    params = {name: value[0] for name, value in figures['resnet20'].items()}
    # the plain network drops the two projection shortcuts, RM adds reserved channels
    assert params['plain'] < params['residual'] < params['RM exact']
    assert params['plain fused'] < params['residual fused']
