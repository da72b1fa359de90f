"""Hooks that turn silent training failures into clear errors and make resume exact.

* ``FiniteLossHook``: stops training at the first NaN / inf loss (all ranks agree), before the
  checkpoint hook runs, so the last checkpoint on disk is the last good one; it also refuses to
  write a checkpoint whose weights are not finite.
* ``InputCheckHook``: an empty dataset or an image smaller than the backbone's total stride
  fails with a message naming the problem instead of a shape error deep inside a layer (or a
  meaningless 1x1 feature map).
* ``RNGStateHook``: stores the torch / numpy / python random states in every checkpoint and
  restores them on resume, so a run resumed after a crash draws the same random numbers
  (Faster R-CNN's proposal samplers, dropout) as an uninterrupted run of the same seed.

Our runtime bases (``configs/_base_/runtime_*.py``) enable all three through
``default_hooks``.
"""
import math
import os.path as osp
import random

import numpy as np
import torch
from mmengine.dist import all_reduce, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from resvariants.registry import HOOKS


def _total_loss(outputs):
    if not isinstance(outputs, dict):
        return None
    loss = outputs.get('loss')
    if loss is None:
        parts = [v for k, v in outputs.items() if 'loss' in k]
        if not parts:
            return None
        loss = sum(torch.as_tensor(v, dtype=torch.float64).sum() for v in parts)
    return torch.as_tensor(loss, dtype=torch.float64).detach().cpu()


def _checkpoint_path(runner):
    """The path of the last checkpoint written to the work dir, or None."""
    last = osp.join(runner.work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            return f.read().strip() or None
    return None


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training with a clear error when the loss becomes NaN or infinite.

    Runs after every training iteration with a priority above the checkpoint hook, so the
    diverged weights are never saved: the last checkpoint on disk (named in the error) is the
    last good one, and ``tools/train.py --resume`` restarts from it. In distributed runs the
    ranks agree through one all-reduce, so every rank stops at the same iteration.

    Args:
        check_weights_on_save (bool): also refuse to write a checkpoint whose floating-point
            weights hold NaN / inf. Defaults to True.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, check_weights_on_save=True):
        self.check_weights_on_save = check_weights_on_save

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        loss = _total_loss(outputs)
        bad = torch.zeros(1, dtype=torch.float32)
        if loss is not None and not bool(torch.isfinite(loss).all()):
            bad += 1
        if get_world_size() > 1:
            device = next(iter(runner.model.parameters())).device
            bad = bad.to(device)
            all_reduce(bad, op='sum')
        if bad.item() > 0:
            value = 'not available on this rank' if loss is None else f'{loss.item()}'
            last = _checkpoint_path(runner)
            hint = (f'the last good checkpoint is {last}; resume from it with '
                    f'--resume {last} (lower the learning rate or add gradient clipping)'
                    if last else 'no checkpoint had been written yet')
            raise FloatingPointError(
                f'training stopped: the loss is not finite (loss={value}) at iteration '
                f'{runner.iter + 1} (epoch {runner.epoch + 1}) on {int(bad.item())} rank(s); '
                f'{hint}')

    def before_save_checkpoint(self, runner, checkpoint):
        if not self.check_weights_on_save:
            return
        state = checkpoint.get('state_dict', {})
        bad = [k for k, v in state.items()
               if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise FloatingPointError(
                f'refusing to save a checkpoint at iteration {runner.iter}: {len(bad)} weight '
                f'tensors hold NaN/inf ({", ".join(bad[:5])}{" ..." if len(bad) > 5 else ""}); '
                f'the last good checkpoint is {_checkpoint_path(runner)}')


def _backbone_stride(model):
    """Total stride of the model's backbone (stem x stages), or None if unknown."""
    if is_model_wrapper(model):
        model = model.module
    backbone = getattr(model, 'backbone', None)
    strides = getattr(backbone, 'strides', None)
    if backbone is None or strides is None:
        return None
    num_stages = getattr(backbone, 'num_stages', len(strides))
    first = backbone.stem[0] if getattr(backbone, 'deep_stem', False) else \
        getattr(backbone, 'conv1', None)
    stem = _first(getattr(first, 'stride', 2))
    pool = getattr(backbone, 'maxpool', None)
    if isinstance(pool, torch.nn.MaxPool2d):
        stem *= _first(pool.stride)
    return stem * math.prod(_first(s) for s in strides[:num_stages])


def _first(value):
    return value[0] if isinstance(value, (tuple, list)) else value


def _input_sizes(data_batch):
    if not isinstance(data_batch, dict):
        return []
    inputs = data_batch.get('inputs')
    if torch.is_tensor(inputs):
        return [tuple(inputs.shape[-2:])] if inputs.dim() >= 3 else []
    if isinstance(inputs, (list, tuple)):
        return [tuple(x.shape[-2:]) for x in inputs if torch.is_tensor(x) and x.dim() >= 2]
    return []


def _image_paths(data_batch):
    samples = data_batch.get('data_samples') if isinstance(data_batch, dict) else None
    paths = []
    for sample in samples or []:
        meta = getattr(sample, 'metainfo', {}) or {}
        paths.append(meta.get('img_path', '?'))
    return paths


def _dataset_description(dataset):
    parts = [type(dataset).__name__]
    for attr in ('data_root', 'ann_file'):
        value = getattr(dataset, attr, None)
        if value:
            parts.append(f'{attr}={value}')
    return ', '.join(parts)


@HOOKS.register_module()
class InputCheckHook(Hook):
    """Fail early, with the reason, on an empty dataset or an image below the network stride.

    A ResNet divides the input by 32 (stem 4 x stages 8): a smaller image still runs but
    ends in a 1x1 map of padding, and detectors crash later with unrelated shape errors. The
    check runs on the batches as the dataloader delivers them (after the pipeline, before the
    data preprocessor); it costs a shape comparison per batch.
    """

    priority = 'VERY_HIGH'

    def _check_dataset(self, runner, loader_name):
        loader = getattr(runner, loader_name, None)
        dataset = getattr(loader, 'dataset', None)
        if dataset is not None and len(dataset) == 0:
            raise ValueError(f'{loader_name} has an empty dataset '
                             f'({_dataset_description(dataset)}): no samples to iterate; '
                             f'check the annotation file and the image folder (filter_cfg '
                             f'may have removed every image)')

    def before_train(self, runner):
        self._check_dataset(runner, 'train_dataloader')

    def before_val(self, runner):
        self._check_dataset(runner, 'val_dataloader')

    def before_test(self, runner):
        self._check_dataset(runner, 'test_dataloader')

    def _check_batch(self, runner, data_batch):
        stride = _backbone_stride(runner.model)
        if stride is None:
            return
        for index, (h, w) in enumerate(_input_sizes(data_batch)):
            if h < stride or w < stride:
                paths = _image_paths(data_batch)
                name = paths[index] if index < len(paths) else f'sample {index} of the batch'
                raise ValueError(
                    f'image {name} is {h}x{w} after the data pipeline, smaller than the '
                    f'backbone stride {stride}: the last stage would see less than one pixel. '
                    f'Resize it to at least {stride}x{stride} in the pipeline or drop it.')

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._check_batch(runner, data_batch)

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        self._check_batch(runner, data_batch)

    def before_test_iter(self, runner, batch_idx, data_batch=None):
        self._check_batch(runner, data_batch)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the random number generator states in checkpoints and restore them on resume.

    mmengine re-seeds a resumed run from the config seed, so anything random inside the
    training step (proposal sampling in detectors, dropout) differs from an uninterrupted run.
    The torch state is restored when the checkpoint is loaded. An iteration-based loop then
    replays the data pipeline of the skipped iterations, which advances numpy / python
    ``random`` exactly as the original run did (data loading in the main process), so those
    states are restored only for epoch-based loops, which start a fresh epoch instead.
    Only rank 0 writes checkpoints: every rank restores rank 0's state (the ranks share the
    seed unless ``randomness.diff_rank_seed`` is set).
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint['rng_state'] = dict(
            rank=get_rank(),
            torch=torch.get_rng_state(),
            numpy=_numpy_state_to_dict(np.random.get_state()),
            python=_python_state_to_list(random.getstate()))

    def after_load_checkpoint(self, runner, checkpoint):
        state = checkpoint.get('rng_state')
        if not state or not getattr(runner, '_resume', False):
            return  # load_from (fine-tuning / testing) keeps the run's own seed
        torch.set_rng_state(state['torch'])
        from mmengine.runner import IterBasedTrainLoop
        if not isinstance(getattr(runner, '_train_loop', None), IterBasedTrainLoop):
            np.random.set_state(_numpy_state_from_dict(state['numpy']))
            random.setstate(_python_state_from_list(state['python']))


def _numpy_state_to_dict(state):
    name, keys, pos, has_gauss, cached = state
    return dict(name=name, keys=torch.from_numpy(keys.astype(np.int64)), pos=int(pos),
                has_gauss=int(has_gauss), cached_gaussian=float(cached))


def _numpy_state_from_dict(d):
    return (d['name'], d['keys'].numpy().astype(np.uint32), d['pos'], d['has_gauss'],
            d['cached_gaussian'])


def _python_state_to_list(state):
    version, internal, gauss = state
    return [version, torch.tensor(internal, dtype=torch.int64), gauss]


def _python_state_from_list(state):
    version, internal, gauss = state
    return (version, tuple(int(x) for x in internal.tolist()), gauss)
