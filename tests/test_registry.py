"""Our modules build from mmdet and mmpretrain configs, with and without custom_imports."""
import subprocess
import sys

import pytest
from mmengine.registry import DefaultScope

from test_integration.utils import REPO, tool_env


@pytest.mark.parametrize('scope', ['mmdet', 'mmpretrain'])
def test_backbone_builds_from_framework_scope(scope):
    import mmdet.models  # noqa: F401
    import mmpretrain.models  # noqa: F401
    from mmdet.registry import MODELS as DET
    from mmpretrain.registry import MODELS as CLS
    registry = DET if scope == 'mmdet' else CLS
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(dict(type='resvariants.ResNet', depth=18, attention='sge',
                                    out_indices=(3, )))
    assert type(model).__module__ == 'resvariants.models.backbones.resnet'
    assert hasattr(model.layer1[0], 'sge')


SNIPPET = '''
import sys
import mmdet.models, mmpretrain.models
from mmengine.registry import DefaultScope
from mmdet.registry import MODELS as DET
from mmpretrain.registry import MODELS as CLS
assert 'resvariants' not in sys.modules
with DefaultScope.overwrite_default_scope('{scope}'):
    registry = DET if '{scope}' == 'mmdet' else CLS
    m = registry.build(dict(type='{backbone}', depth=50, base_channels=16,
                            plugins=[dict(cfg=dict(type='resvariants.SGE', groups=4),
                                          stages=(True,) * 4, position='after_conv3')]))
print(type(m).__name__, type(m.layer1[0].sge).__name__)
'''


@pytest.mark.parametrize('scope,backbone', [('mmdet', 'ResNet'), ('mmpretrain', 'mmdet.ResNet'),
                                            ('mmdet', 'resvariants.ResNet')])
def test_prefixed_names_work_without_custom_imports(scope, backbone):
    """A fresh process that never imported resvariants builds our modules by scope prefix."""
    code = SNIPPET.format(scope=scope, backbone=backbone)
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=tool_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-1] == 'SGE'


def test_custom_imports_make_short_plugin_names_work(tmp_path):
    from mmengine.config import Config
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(
        "custom_imports = dict(imports=['resvariants.models'])\n"
        "model = dict(type='ResNet', depth=50, base_channels=16, plugins=[dict(cfg=dict("
        "type='CBAM'), stages=(False, True, True, True), position='after_conv3')])\n")
    cfg = Config.fromfile(str(cfg_file))
    import mmdet.models  # noqa: F401
    from mmdet.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    assert not hasattr(model.layer1[0], 'cbam') and hasattr(model.layer2[0], 'cbam')
