# Crash / resume test detector: the demo Faster R-CNN R50-FPN (det_tiny, 320x256) with one image
# per batch, 2 iterations, a checkpoint after every iteration, deterministic CPU settings and no
# validation, so a run killed after iteration 1 and resumed can be compared bit for bit.
_base_ = './det_tiny.py'
train_dataloader = dict(batch_size=1)
train_cfg = dict(max_iters=2)
val_cfg = None
val_dataloader = None
val_evaluator = None
param_scheduler = [dict(type='LinearLR', start_factor=1. / 3, by_epoch=False, begin=0, end=2)]
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3))
randomness = dict(seed=0, deterministic=True)
