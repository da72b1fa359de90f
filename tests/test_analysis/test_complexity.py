"""get_flops reproduces PytorchInsight's counter (its README GFLOPs column) within 0.5%."""
import re
import subprocess
import sys

import pytest

from resvariants.analysis import count_complexity
from test_models.test_resnet import VARIANTS, build_classifier
from test_integration.utils import REPO, tool_env

REFERENCE_KEY = {
    'gc_resnet': 'pytorchinsight_constructed',
    'srm_resnet': 'third_party_reference_impls',
}


def reference(figures, variant, depth):
    group = REFERENCE_KEY.get(variant, 'pytorchinsight')
    name = f'{variant}{depth}' + ('_official' if variant == 'srm_resnet' else '')
    return figures[group][name]


@pytest.mark.parametrize('depth', [50, 101])
@pytest.mark.parametrize('variant', VARIANTS)
def test_gflops_within_half_percent_of_reference(variant, depth, reference_figures):
    ref = reference(reference_figures, variant, depth)
    result = count_complexity(build_classifier(variant, depth), (224, 224))
    assert result.params == ref['params']
    assert result.gflops == pytest.approx(ref['pytorchinsight_counter_G'], rel=0.005)
    assert result.gmacs == pytest.approx(ref['conv_linear_GMACs'], rel=0.005)


def test_get_flops_cli_prints_params_and_gflops():
    proc = subprocess.run(
        [sys.executable, 'tools/analysis/get_flops.py', 'configs/imagenet/resnet50_in1k.py',
         '--shape', '224', '224'], cwd=REPO, env=tool_env(), capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'Params: 25,557,032' in proc.stdout
    assert float(re.search(r'GFLOPs: ([0-9.]+)', proc.stdout).group(1)) == pytest.approx(
        4.1219, abs=5e-4)
