"""A clone of the repository works with nothing beside it.

The committed tree is cloned into an empty temporary folder; there, with a user's config in yet
another folder, the package imports from the clone, a config inheriting ``resvariants::`` builds,
and one short real training run on the data that ships in the repo (tests/data) writes a
checkpoint. No environment variable points at data or weights.
"""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
pytestmark = pytest.mark.integration

# what a clone must never name: another machine's paths or documents it lacks
# (built from parts so that this file does not match itself)
OUTSIDE = re.compile('|'.join([r'\.\./' + 'shared', '/' + 'work/', 'ARCHITECTURES' + r'\.md']))


@pytest.fixture(scope='module')
def clone(tmp_path_factory):
    base = tmp_path_factory.mktemp('x')
    dest = base / 'resvariants'
    subprocess.run(['git', 'clone', '--quiet', '--no-hardlinks', REPO, str(dest)], check=True,
                   capture_output=True, text=True, timeout=300)
    assert os.listdir(base) == ['resvariants']
    return dest


@pytest.fixture(scope='module')
def env(clone):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith('RESVARIANTS_') and k != 'PYTHONPATH'}
    env.update(PYTHONPATH=str(clone), OMP_NUM_THREADS='2')
    return env


@pytest.fixture(scope='module')
def user_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('user')


def run(args, cwd, env, timeout=600):
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def test_clone_names_nothing_outside_itself(clone):
    hits = []
    for root, dirs, files in os.walk(clone):
        dirs[:] = [d for d in dirs if d != '.git']
        for name in files:
            if name.endswith(('.py', '.md', '.sh', '.toml')):
                path = osp.join(root, name)
                with open(path, encoding='utf-8', errors='replace') as f:
                    for i, line in enumerate(f, 1):
                        if OUTSIDE.search(line):
                            hits.append(f'{osp.relpath(path, clone)}:{i}: {line.strip()}')
    assert not hits, '\n'.join(hits)


def test_package_imports_from_the_clone(clone, env, user_dir):
    rc, out = run(['-c', 'import resvariants, mmdet.models, mmpretrain.models, mmcv.ops; '
                   'import resvariants.models; print("FILE", resvariants.__file__)'],
                  user_dir, env)
    assert rc == 0, out
    path = re.search(r'^FILE (.+)$', out, re.M).group(1)
    assert osp.realpath(path).startswith(osp.realpath(clone) + os.sep), path


def test_resvariants_base_builds_the_zoo_detector(clone, env, user_dir):
    (user_dir / 'my_detector.py').write_text(
        "_base_ = 'resvariants::faster_rcnn_sge_r101_fpn.py'\n"
        "model = dict(backbone=dict(init_cfg=None))\n")
    code = (
        'import resvariants\n'
        'from mmengine.config import Config\n'
        'from mmdet.utils import register_all_modules\n'
        'from mmdet.registry import MODELS\n'
        'register_all_modules()\n'
        "cfg = Config.fromfile('my_detector.py')\n"
        'model = MODELS.build(cfg.model)\n'
        'n = sum(p.numel() for p in model.backbone.parameters())\n'
        "print('BACKBONE', type(model).__name__, type(model.backbone).__name__, n)\n")
    rc, out = run(['-c', code], user_dir, env)
    assert rc == 0, out
    # SGE-ResNet-101 trunk without the classifier's fc: 42.50 M (+ 2 x 64 per SGE block)
    detector, backbone, n = re.search(r'^BACKBONE (\w+) (\w+) (\d+)$', out, re.M).groups()
    assert (detector, backbone) == ('FasterRCNN', 'ResNet')
    assert int(n) == 42_500_160 + 33 * 2 * 64


def test_user_config_trains_on_the_data_in_the_clone(clone, env, user_dir):
    (user_dir / 'my_classifier.py').write_text(
        "_base_ = 'resvariants::demo/resnet18_cls-small.py'\n"
        'train_dataloader = dict(batch_size=4, num_workers=0, dataset=dict(indices=8))\n'
        'train_cfg = dict(max_epochs=1, val_interval=10)\n'
        'default_hooks = dict(logger=dict(interval=1))\n')
    work = user_dir / 'work'
    rc, out = run([str(clone / 'tools' / 'train.py'), 'my_classifier.py', '--work-dir',
                   str(work)], user_dir, env)
    assert rc == 0, out[-4000:]
    assert osp.isfile(work / 'epoch_1.pth'), os.listdir(work)
    # the data came from the clone's own tests/data (the dumped config holds the resolved root)
    dumped = (work / 'my_classifier.py').read_text()
    root = re.search(r"^cls_small_root = '(.+)'$", dumped, re.M).group(1)
    assert osp.realpath(root) == osp.realpath(clone / 'tests' / 'data' / 'cls_small')
    losses = [float(x) for x in re.findall(r'Epoch\(train\)\s+\[1\]\[\s*\d+/2\].*?\bloss: ([\d.]+)',
                                           out)]
    assert len(losses) == 2 and all(0 < x < 10 for x in losses), out[-3000:]
