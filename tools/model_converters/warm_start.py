"""Warm-start an attention-variant model from a plain ResNet checkpoint and list the new keys.

    python tools/model_converters/warm_start.py CONFIG PLAIN_CKPT DST [--report NEW_KEYS.json]
                                               [--with-head] [--prefix backbone.]

CONFIG is any resvariants config (an mmpretrain classifier such as
configs/imagenet/sge_resnet50_in1k.py or an mmdet detector); PLAIN_CKPT a plain-trunk checkpoint
of the same depth/width/stem (e.g. a converted torchvision ResNet-50, see convert_resnet.py).
The model is built and initialised as for training from scratch, then the backbone gets the
``WarmStart`` init (resvariants/engine/warm_start.py): every checkpoint tensor is loaded with
shape checks, no trunk key may be missing, and the keys the checkpoint lacks (the attention
modules) keep their scratch initialisation. They are printed, one line per module, and written
to ``--report`` as JSON. ``--with-head`` also copies ``head.*`` (classifiers with the same class
count). DST (``{'meta', 'state_dict'}``, written atomically) loads with ``load_from=DST`` or
``init_cfg=dict(type='StrictPretrained', checkpoint=DST, prefix='backbone.')``.

Training configs do the same without this tool:
``--cfg-options model.backbone.init_cfg.type=WarmStart model.backbone.init_cfg.checkpoint=PLAIN``.
"""
import argparse
import contextlib
import io
import json
import logging
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config of the attention variant (classifier/detector)')
    parser.add_argument('checkpoint', help='plain ResNet checkpoint (same trunk)')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    parser.add_argument('--prefix', default='backbone.',
                        help='prefix of the trunk keys in the checkpoint ("" for none)')
    parser.add_argument('--with-head', action='store_true',
                        help='also load head.* from the checkpoint (strict shapes)')
    parser.add_argument('--report', help='write the loaded / new keys to this JSON file')
    parser.add_argument('--seed', type=int, default=0, help='seed of the scratch init')
    return parser.parse_args(argv)


def build_model(config_path, init_cfg):
    """Build the config's model with ``init_cfg`` on its backbone (default scope of the config)."""
    import importlib

    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from resvariants.engine.config_loading import register_scope
    cfg = Config.fromfile(config_path)
    scope = cfg.get('default_scope', 'mmpretrain')
    register_scope(scope)
    cfg.model.backbone.init_cfg = init_cfg
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(cfg.model)


@contextlib.contextmanager
def _quiet_logger():
    """Silence mmengine's per-parameter init dump (the report says what matters)."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def warm_start_model(config_path, checkpoint, prefix='backbone.', with_head=False, seed=0):
    """The config's model, warm-started from ``checkpoint``; returns (model, report)."""
    import torch

    from resvariants.engine.strict_pretrained import load_state_dict_strictly
    from resvariants.engine.warm_start import read_prefixed_state
    torch.manual_seed(seed)
    model = build_model(config_path, dict(type='WarmStart', checkpoint=checkpoint,
                                          prefix=prefix or None))
    with _quiet_logger():
        model.init_weights()
    report = model.backbone.warm_start_report
    if with_head:
        head = {k: v for k, v in read_prefixed_state(checkpoint, None, checkpoint).items()
                if k.startswith('head.')}
        if not head:
            raise KeyError(f'--with-head: {checkpoint} has no head.* keys')
        load_state_dict_strictly(model.head, {k[len('head.'):]: v for k, v in head.items()},
                                 source=f'head.* of {checkpoint}')
    return model, report


def main(argv=None):
    import torch

    from resvariants.engine.atomic_backend import atomic_write
    args = parse_args(argv)
    model, report = warm_start_model(args.config, args.checkpoint, args.prefix, args.with_head,
                                     args.seed)
    print(report.summary())
    meta = dict(warm_start=dict(config=args.config, checkpoint=args.checkpoint,
                                new_keys=report.new, loaded=len(report.loaded),
                                head_loaded=args.with_head))
    buffer = io.BytesIO()
    torch.save(dict(meta=meta, state_dict=model.state_dict()), buffer)
    atomic_write(buffer.getvalue(), args.dst)
    if args.report:
        atomic_write(json.dumps(report.to_dict(), indent=1).encode(), args.report)
    print(f'wrote {args.dst} ({len(report.loaded)} tensors loaded, {len(report.new)} new keys)')
    return report


if __name__ == '__main__':
    main()
