# Multi-node test classifier: ResNet-18 at width 8 on 80 cls_small images, 4 iterations,
# checkpoints at 2 and 4. Everything a rank computes depends only on its own images, so
# N ranks x b images give exactly the loss and update of 1 process x N*b images
# (tests/test_integration/test_multinode.py): deterministic pipeline (64x64 images, no
# random crop / flip), fixed sampler seed, GroupNorm instead of BN (BN statistics would be
# per rank; SyncBN, the GPU answer, has no CPU implementation). `--auto-scale-lr` scales
# lr 0.1 by global batch / 8.
_base_ = './cls_tiny.py'
model = dict(
    backbone=dict(base_channels=8, norm_cfg=dict(type='GN', num_groups=4, requires_grad=True)),
    head=dict(in_channels=64))
train_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(batch_size=4, sampler=dict(type='DefaultSampler', shuffle=True, seed=0),
                        dataset=dict(indices=list(range(0, 2000, 25)),  # 80 images, all 10 classes
                                     pipeline=train_pipeline))
auto_scale_lr = dict(base_batch_size=8)
custom_hooks = [dict(type='resvariants.RankSyncCheckHook', interval=1),
                dict(type='resvariants.GlobalBatchLrRescaleHook')]
