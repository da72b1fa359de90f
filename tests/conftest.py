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


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield
