"""The training recipes as configs: each one says what the source does, exactly.

Sources (docs/architectures.md 1.12): the bag-of-tricks recipe (imagenet_trickiter.py), the mobile
recipe of ShuffleNetV2 (imagenet_mobile.py). Label smoothing there: 1 - eps on the true class,
eps / (K - 1) elsewhere, loss = KL(target || softmax) with batch mean.
"""
import ast
import glob
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from resvariants.engine.recipes import apply_recipe, available_recipes

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
IMAGENET = osp.join(REPO, 'configs', 'imagenet')
# the PytorchInsight models plus this issue's ones; other configs may add more tricks variants
COVERED = ['resnet50', 'resnet101', 'se_resnet50', 'se_resnet101', 'sk_resnet50', 'sk_resnet101',
           'cbam_resnet50', 'cbam_resnet101', 'bam_resnet50', 'bam_resnet101', 'gc_resnet50',
           'gc_resnet101', 'sge_resnet50', 'sge_resnet101', 'srm_resnet50', 'srm_resnet101',
           'oct_resnet50', 'oct_resnet101', 'ws_resnet50', 'ws_resnet101']
SMOOTHED = [('imagenet/resnet50_tricks_in1k.py', 1000), ('imagenet/shufflenetv2_1x_in1k.py', 1000),
            ('demo/resnet50_tricks_cls-small.py', 10), ('demo/shufflenetv2_1x_cls-small.py', 10)]


def _config(path):
    return Config.fromfile(osp.join(REPO, 'configs', path))


def _mmpretrain_build(cfg):
    from mmpretrain.registry import MODELS

    from resvariants.engine.config_loading import register_scope
    register_scope('mmpretrain')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg)


def _source_target(labels, num_classes, eps=0.1):
    target = torch.full((len(labels), num_classes), eps / (num_classes - 1))
    target[torch.arange(len(labels)), labels] = 1 - eps
    return target


def test_the_recipe_applies_to_every_pytorchinsight_and_issue_model():
    # `tools/train.py configs/imagenet/<arch>_in1k.py --recipe imagenet_tricks`: one recipe file,
    # no per-model copies (a static check; loading ~20 configs through mmengine takes ~1 minute)
    assert available_recipes() == ['imagenet_tricks']
    missing = [arch for arch in COVERED if not osp.isfile(osp.join(IMAGENET, f'{arch}_in1k.py'))]
    assert not missing
    assert sorted(osp.basename(p) for p in glob.glob(osp.join(IMAGENET, '*_tricks_in1k.py'))) \
        == ['resnet50_tricks_in1k.py']


def _tricks(arch):
    return apply_recipe(_config(f'imagenet/{arch}_in1k.py'), 'imagenet_tricks')


def test_the_recipe_flag_and_the_recipe_config_agree():
    """configs/imagenet/resnet50_tricks_in1k.py (the recipe as a `_base_`) is exactly
    resnet50_in1k.py with --recipe imagenet_tricks."""
    as_file = _config('imagenet/resnet50_tricks_in1k.py').to_dict()
    recipe_variables = [k for k in as_file if k.startswith('tricks_') or k == 'recipe_overrides']
    assert len(recipe_variables) == 10
    for key in recipe_variables:
        del as_file[key]
    assert _tricks('resnet50').to_dict() == as_file


def test_recipe_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        apply_recipe(_config('imagenet/resnet50_in1k.py'), 'tricks')
    assert info.value.args[0] == ("unknown recipe 'tricks': neither a file nor one of "
                                  "['imagenet_tricks'] (configs/_recipes/<name>.py)")
    not_a_recipe = tmp_path / 'plain.py'
    not_a_recipe.write_text('model = dict(type="X")\n')
    with pytest.raises(ValueError) as info:
        apply_recipe(_config('imagenet/resnet50_in1k.py'), str(not_a_recipe))
    assert info.value.args[0] == (f'{not_a_recipe} is no recipe: it defines no recipe_overrides '
                                  f'dict (the config keys it sets)')


@pytest.mark.parametrize('arch', ['resnet50', 'srm_resnet101', 'oct_resnet50', 'ws_resnet50',
                                  'ed_resnet50-a'])
def test_tricks_config_is_its_base_config_plus_the_recipe(arch):
    cfg, base = _tricks(arch), _config(f'imagenet/{arch}_in1k.py')
    assert cfg.model.backbone == base.model.backbone
    assert cfg.train_dataloader == base.train_dataloader
    loss = cfg.model.head.loss
    assert (loss.type, loss.mode, loss.num_classes) == ('LabelSmoothLoss', 'original', 1000)
    assert loss.label_smooth_val == pytest.approx(0.1 * 1000 / 999, rel=1e-12)
    assert cfg.model.train_cfg.augments == [dict(type='Mixup', alpha=0.2),
                                            dict(type='CutMix', alpha=1.0)]
    assert cfg.model.train_cfg.probs == [0., 0.]  # mixing is opt-in
    optimizer = {k: v for k, v in cfg.optim_wrapper.optimizer.items() if k != '_scope_'}
    assert optimizer == dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4)
    assert cfg.optim_wrapper.paramwise_cfg.bias_decay_mult == 0.
    # plus the base config's own rules (SRM: no decay on the SRM parameters, its source's rule)
    own_rules = base.optim_wrapper.get('paramwise_cfg', {}).get('custom_keys', {})
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys == {'bn': dict(decay_mult=0.),
                                                           **own_rules}
    assert bool(own_rules) == arch.startswith('srm_')
    assert cfg.optim_wrapper.get('constructor') == base.optim_wrapper.get('constructor')
    assert cfg.train_cfg.max_epochs == 120
    assert [s.type for s in cfg.param_scheduler] == ['LinearLR', 'CosineAnnealingLR']


def test_recipe_comes_before_cfg_options_in_train_py():
    import sys
    sys.path.insert(0, REPO)
    from resvariants.engine.config_loading import load_config
    from tools.train import parse_args
    args = parse_args(['configs/imagenet/se_resnet50_in1k.py', '--recipe', 'imagenet_tricks',
                       '--cfg-options', 'train_cfg.max_epochs=3'])
    cfg = load_config(args)
    assert cfg.train_cfg.max_epochs == 3
    assert cfg.model.head.loss.type == 'LabelSmoothLoss'
    assert cfg.model.backbone == _config('imagenet/se_resnet50_in1k.py').model.backbone


@pytest.mark.parametrize('path,num_classes', SMOOTHED)
def test_label_smoothing_targets_equal_the_source(path, num_classes):
    loss_fn = _mmpretrain_build(_config(path).model.head.loss)
    labels = torch.tensor([0, 3, num_classes - 1, 3])
    target = loss_fn.smooth_label(loss_fn.generate_one_hot_like_label(labels))
    expected = _source_target(labels, num_classes)
    torch.testing.assert_close(target, expected, rtol=0, atol=1e-7)
    assert target[0, 0].item() == pytest.approx(0.9) and target[0, 1].item() == pytest.approx(
        0.1 / (num_classes - 1))
    # the loss differs from the source's KL divergence only by the target's entropy
    logits = torch.randn(4, num_classes, dtype=torch.float64)
    expected64 = expected.double()
    kl = F.kl_div(F.log_softmax(logits, 1), expected64, reduction='batchmean')
    entropy = -(expected64 * expected64.log()).sum(1).mean()
    torch.testing.assert_close(loss_fn(logits, labels), kl + entropy)


def test_mixed_targets_give_the_source_mixed_loss():
    loss_fn = _mmpretrain_build(_config('imagenet/resnet50_tricks_in1k.py').model.head.loss)
    labels, permuted, lam = torch.tensor([1, 7]), torch.tensor([7, 2]), 0.3
    soft = lam * F.one_hot(labels, 1000).float() + (1 - lam) * F.one_hot(permuted, 1000).float()
    logits = torch.randn(2, 1000)
    torch.testing.assert_close(loss_fn(logits, soft),
                               lam * loss_fn(logits, labels) + (1 - lam) * loss_fn(logits, permuted))


def _narrow_classifier(path):
    cfg = _tricks(path) if '/' not in path else _config(path)
    cfg.model.backbone.base_channels = 8
    cfg.model.head.in_channels = 256
    return cfg, _mmpretrain_build(cfg.model)


@pytest.mark.parametrize('path', ['imagenet/resnet50_tricks_in1k.py', 'srm_resnet50'])
def test_tricks_decay_exactly_where_the_source_does(path):
    cfg, model = _narrow_classifier(path)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {id(p): g['weight_decay'] for g in wrapper.optimizer.param_groups
             for p in g['params']}
    for name, param in model.named_parameters():
        # SRM's parameters keep the no-decay rule of the SRM code (test_source_recipes.py)
        source_no_decay = 'bias' in name or 'bn' in name or '.srm.' in name
        assert decay[id(param)] == (0. if source_no_decay else 1e-4), name
    assert decay[id(model.backbone.layer1[0].downsample[1].weight)] == 1e-4


def test_shufflenet_mobile_recipe(reference_figures):
    cfg = _config('imagenet/shufflenetv2_1x_in1k.py')
    model = _mmpretrain_build(cfg.model)
    n = sum(p.numel() for p in model.parameters())
    assert n == reference_figures['pytorchinsight']['shufflenetv2_1x']['params'] == 2_278_604
    assert cfg.train_dataloader.batch_size * 8 == cfg.auto_scale_lr.base_batch_size == 1024
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(0.1 * 1024 / 256)
    assert cfg.train_cfg.max_epochs == 300
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {id(p): g['weight_decay'] for g in wrapper.optimizer.param_groups
             for p in g['params']}
    no_decay = set()
    for module in model.modules():  # the source's rule: grouped convs, BN, biases
        for name, param in module.named_parameters(recurse=False):
            grouped = getattr(module, 'groups', 1) > 1
            if grouped or isinstance(module, torch.nn.BatchNorm2d) or 'bias' in name:
                no_decay.add(id(param))
    assert no_decay
    for param in model.parameters():
        assert decay[id(param)] == (0. if id(param) in no_decay else 4e-5)


def _lr_curve(cfg, iters_per_epoch):
    """The lr of every iteration, with the schedulers built as the Runner builds them."""
    from mmengine.registry import PARAM_SCHEDULERS
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.optim_wrapper.optimizer.lr)
    schedulers = [PARAM_SCHEDULERS.build(
        sch, default_args=dict(optimizer=optimizer, epoch_length=iters_per_epoch))
        for sch in cfg.param_scheduler]
    lrs = []
    for _ in range(cfg.train_cfg.max_epochs * iters_per_epoch):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        for s in schedulers:
            s.step()
    return lrs


def _source_lr(base, epochs, warmup, n, t):
    epoch, batch = divmod(t, n)
    if epoch < warmup:
        return base * (epoch + (batch + 1) / n) / warmup
    progress = (epoch - warmup + (batch + 1) / n) / (epochs - warmup)
    return base * (1 + math.cos(math.pi * progress)) / 2


@pytest.mark.parametrize('path,warmup,n', [('imagenet/resnet50_tricks_in1k.py', 5, 5005),
                                           ('imagenet/shufflenetv2_1x_in1k.py', 5, 1252)])
def test_warmup_and_cosine_follow_the_source(path, warmup, n):
    cfg = _config(path)
    epochs, base = cfg.train_cfg.max_epochs, cfg.optim_wrapper.optimizer.lr
    cfg.train_cfg.max_epochs = warmup + 2  # the warmup and the start of the cosine
    lrs = _lr_curve(cfg, n)
    warm = warmup * n
    source = [_source_lr(base, epochs, warmup, n, t) for t in range(len(lrs))]
    torch.testing.assert_close(torch.tensor(lrs[:warm], dtype=torch.float64),
                               torch.tensor(source[:warm], dtype=torch.float64), rtol=1e-9,
                               atol=0)
    # the cosine phase is the source's, one iteration later (mmengine starts it at lr itself)
    torch.testing.assert_close(torch.tensor(lrs[warm + 1:], dtype=torch.float64),
                               torch.tensor(source[warm:-1], dtype=torch.float64), rtol=1e-9,
                               atol=0)
