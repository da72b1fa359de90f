"""FiniteLossHook, InputCheckHook and RNGStateHook on their own (fake runner, no training)."""
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from resvariants.engine.reliability_hooks import FiniteLossHook, InputCheckHook, RNGStateHook
from resvariants.models import ResNet


def _runner(tmp_path, **kwargs):
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_6.pth'))
    return SimpleNamespace(work_dir=str(tmp_path), iter=7, epoch=0,
                           model=torch.nn.Linear(2, 2), **kwargs)


@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_non_finite_loss_stops_with_the_last_good_checkpoint(tmp_path, bad):
    hook, runner = FiniteLossHook(), _runner(tmp_path)
    hook.after_train_iter(runner, 7, outputs={'loss': torch.tensor(1.5)})  # finite: no error
    with pytest.raises(FloatingPointError) as err:
        hook.after_train_iter(runner, 7, outputs={'loss': torch.tensor(bad),
                                                  'loss_cls': torch.tensor(bad)})
    msg = str(err.value)
    assert 'loss is not finite' in msg and f'loss={bad}' in msg
    assert 'iteration 8' in msg and str(tmp_path / 'iter_6.pth') in msg


def test_loss_summed_from_parts_when_no_total(tmp_path):
    with pytest.raises(FloatingPointError, match='not finite'):
        FiniteLossHook().after_train_iter(
            _runner(tmp_path), 0, outputs={'loss_rpn': torch.tensor(0.3),
                                           'loss_bbox': torch.tensor([float('nan')])})


def test_refuses_to_save_non_finite_weights(tmp_path):
    hook, runner = FiniteLossHook(), _runner(tmp_path)
    good = {'w': torch.ones(2), 'n': torch.tensor(3)}
    hook.before_save_checkpoint(runner, {'state_dict': good})
    with pytest.raises(FloatingPointError, match=r"refusing to save .* 1 weight tensors .*bad"):
        hook.before_save_checkpoint(runner, {'state_dict': dict(good, bad=torch.tensor([
            1., float('nan')]))})


def test_empty_dataset_is_named(tmp_path):
    class Empty(torch.utils.data.Dataset):
        data_root, ann_file = '/data/cls', '/data/cls/meta/train.txt'

        def __len__(self):
            return 0

    runner = _runner(tmp_path, train_dataloader=SimpleNamespace(dataset=Empty()))
    with pytest.raises(ValueError) as err:
        InputCheckHook().before_train(runner)
    assert 'train_dataloader has an empty dataset' in str(err.value)
    assert 'ann_file=/data/cls/meta/train.txt' in str(err.value)


@pytest.mark.parametrize('stacked', [True, False])
def test_image_smaller_than_stride_is_named(tmp_path, stacked):
    model = SimpleNamespace(backbone=ResNet(depth=18, base_channels=8))
    runner = _runner(tmp_path)
    runner.model = model
    sample = SimpleNamespace(metainfo=dict(img_path='/data/tiny.jpg'))
    ok = torch.zeros(2, 3, 32, 40) if stacked else [torch.zeros(3, 32, 40)] * 2
    InputCheckHook().before_train_iter(runner, 0, dict(inputs=ok, data_samples=[sample] * 2))
    small = torch.zeros(1, 3, 24, 64) if stacked else [torch.zeros(3, 24, 64)]
    with pytest.raises(ValueError) as err:
        InputCheckHook().before_val_iter(runner, 0, dict(inputs=small, data_samples=[sample]))
    assert 'image /data/tiny.jpg is 24x64' in str(err.value)
    assert 'smaller than the backbone stride 32' in str(err.value)


def test_stride_follows_the_backbone_strides(tmp_path):
    runner = _runner(tmp_path)
    runner.model = SimpleNamespace(backbone=ResNet(depth=18, base_channels=8,
                                                   strides=(1, 2, 2, 1)))
    InputCheckHook().before_test_iter(runner, 0, dict(inputs=torch.zeros(1, 3, 16, 16)))
    with pytest.raises(ValueError, match='stride 16'):
        InputCheckHook().before_test_iter(runner, 0, dict(inputs=torch.zeros(1, 3, 8, 16)))


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    from mmengine.runner import IterBasedTrainLoop

    from resvariants.utils.safe_load import load_checkpoint_safely
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    checkpoint = {}
    RNGStateHook().before_save_checkpoint(SimpleNamespace(), checkpoint)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.save(checkpoint, tmp_path / 'ckpt.pth')
    loaded = load_checkpoint_safely(str(tmp_path / 'ckpt.pth'))

    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    epoch_runner = SimpleNamespace(_resume=True, _train_loop=None)
    RNGStateHook().after_load_checkpoint(epoch_runner, loaded)
    torch.testing.assert_close(torch.rand(3), expected[0])
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]

    # iteration-based loops replay the skipped batches: only torch's state is restored
    torch.manual_seed(0), np.random.seed(0)
    iter_loop = IterBasedTrainLoop.__new__(IterBasedTrainLoop)
    RNGStateHook().after_load_checkpoint(SimpleNamespace(_resume=True, _train_loop=iter_loop),
                                         loaded)
    torch.testing.assert_close(torch.rand(3), expected[0])
    np.random.seed(0)
    untouched = np.random.rand(3)
    assert not np.array_equal(untouched, expected[1])

    # load_from (not a resume) keeps the run's own seed
    torch.manual_seed(0)
    fresh = torch.rand(3)
    torch.manual_seed(0)
    RNGStateHook().after_load_checkpoint(SimpleNamespace(_resume=False), loaded)
    torch.testing.assert_close(torch.rand(3), fresh)
