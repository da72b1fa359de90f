import json
import os
import os.path as osp

import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = osp.join(osp.dirname(REPO_ROOT), 'shared')


def data_root():
    return os.environ.get('RESVARIANTS_DATA', osp.join(SHARED, 'data'))


@pytest.fixture(scope='session')
def reference_figures():
    path = osp.join(SHARED, 'reference', 'reference_figures.json')
    with open(path) as f:
        return json.load(f)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield
