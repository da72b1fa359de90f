"""A new attention module is one file and one test (docs/architecture.md): a copy of the
package gets the toy module and its test exactly as the docs show them, and the registry-driven
tests then build, train and check that module with nothing else edited."""
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: the registry-driven test files a new module must pass without being named in them
REGISTRY_TESTS = ['test_attention_autograd.py', 'test_attention_batch1.py',
                  'test_attention_module_api.py', 'test_attention_init.py',
                  'test_backbone_contracts.py']


def _doc_blocks():
    """``{target path: code}`` of the two blocks under the toy-attention markers."""
    with open(osp.join(REPO, 'docs', 'architecture.md')) as f:
        text = f.read()
    found = re.findall(r'<!-- toy attention \w+: (\S+) -->\n```python\n(.*?)```', text, re.S)
    return dict(found)


def test_docs_show_one_module_file_and_one_test_file():
    assert sorted(_doc_blocks()) == ['resvariants/models/attention/channel_gain.py',
                                     'tests/test_models/test_channel_gain.py']


def test_toy_module_from_the_docs_passes_the_registry_driven_tests(tmp_path):
    shutil.copytree(osp.join(REPO, 'resvariants'), tmp_path / 'resvariants', symlinks=True,
                    ignore=shutil.ignore_patterns('__pycache__'))
    shutil.copytree(osp.join(REPO, 'tests'), tmp_path / 'tests', symlinks=True,
                    ignore=shutil.ignore_patterns('__pycache__', 'data'))
    os.symlink(osp.join(REPO, 'tests', 'data'), tmp_path / 'tests' / 'data')
    for path, code in _doc_blocks().items():
        (tmp_path / path).write_text(code)
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    selected = ['tests/test_models/test_channel_gain.py'] + [
        f'tests/test_models/{name}' for name in REGISTRY_TESTS]
    result = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-rA', '-p', 'no:cacheprovider', '--rootdir',
         str(tmp_path), *selected, '-k', 'ChannelGain or channel_gain'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    passed = re.findall(r'^PASSED tests/test_models/(\w+\.py)::\w+\[?[^\n]*ChannelGain',
                        output, re.M)
    # the toy test, and the new module's cases in every registry-driven file
    assert 'PASSED tests/test_models/test_channel_gain.py::' in output
    assert set(passed) == set(REGISTRY_TESTS), output[-2000:]
    assert len(passed) >= 30 and ' failed' not in output and ' skipped' not in output
