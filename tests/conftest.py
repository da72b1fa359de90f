import json
import os
import os.path as osp

import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# The small real datasets and the reference figures ship in the repo (tests/data/README.md).
TEST_DATA = osp.join(REPO_ROOT, 'tests', 'data')
REFERENCE = osp.join(TEST_DATA, 'reference')


def data_root():
    return os.environ.get('RESVARIANTS_DATA', TEST_DATA)


@pytest.fixture(scope='session')
def reference_figures():
    path = osp.join(REFERENCE, 'reference_figures.json')
    with open(path) as f:
        return json.load(f)


def _scope_guard():
    """Undo the registry scope a test (or a module's fixtures) leaves behind.

    Every mmengine ``Runner`` (and ``DefaultScope.get_instance``) makes its scope the *current*
    one for the rest of the process, so a later ``MODELS.build(dict(type='ResNet'))`` would
    resolve to mmpretrain's or mmdet's ResNet depending on which test ran before.
    """
    from mmengine.registry import DefaultScope
    before = dict(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(before)


_restore_scope_per_module = pytest.fixture(scope='module', autouse=True)(_scope_guard)
_restore_scope_per_test = pytest.fixture(autouse=True)(_scope_guard)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield
