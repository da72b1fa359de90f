# The bag-of-tricks recipe of PytorchInsight (imagenet_trickiter.py; docs/architectures.md 1.12 B/D)
# for any ImageNet config: `tools/train.py CONFIG --recipe imagenet_tricks` merges
# recipe_overrides (at the end) into CONFIG. Its values are named tricks_* so the file can also
# sit beside an ImageNet config in a `_base_` list, and a config copies them into its model /
# optim_wrapper / param_scheduler / train_cfg (configs/imagenet/resnet50_tricks_in1k.py).
#
# * Label smoothing 0.1 as the source defines it: target 1 - 0.1 on the true class and
#   0.1 / (K - 1) on each other class. mmpretrain's LabelSmoothLoss(mode='original') gives
#   1 - e + e / K and e / K, so e = 0.1 * K / (K - 1) is exact (K = 1000: 0.1001001...).
#   A config that changes the number of classes must set label_smooth_val for its K.
# * No weight decay on biases and on parameters whose name contains 'bn' (the source's rule:
#   stem and block BNs; the projection-shortcut BN `downsample.1` keeps its weight decay).
# * Linear warmup over 5 epochs, then cosine to 0, both per iteration: LinearLR with
#   start_factor 1 / (5 N) gives exactly the source's lr * (t + 1) / (5 N) at iteration t
#   (N = iterations per epoch, 5005 for ImageNet at 256 images).
# * 120 epochs (the source's default), 8 x 32 = 256 images, SGD lr 0.1 momentum 0.9, wd 1e-4.
# * Mixup (alpha 0.2) and CutMix (lambda ~ Beta(1, 1), box side sqrt(1 - lambda), lambda
#   corrected to the pasted area) are mmpretrain batch augments, off by default. Turn one on
#   for every batch from the command line:
#     --cfg-options model.train_cfg.probs="[1.0,0.0]"   (mixup)
#     --cfg-options model.train_cfg.probs="[0.0,1.0]"   (CutMix)
#   With them on, the loss is the label-smoothed loss of the mixed target, i.e. the source's
#   lam * L(y) + (1 - lam) * L(y_perm).
tricks_num_classes = 1000
tricks_label_smooth = 0.1
tricks_epochs = 120
tricks_warmup_epochs = 5
tricks_iters_per_epoch = 5005  # ceil(1,281,167 / 256)

tricks_model = dict(
    head=dict(
        loss=dict(
            _delete_=True,
            type='LabelSmoothLoss',
            mode='original',
            label_smooth_val=tricks_label_smooth * tricks_num_classes / (tricks_num_classes - 1),
            num_classes=tricks_num_classes,
            loss_weight=1.0)),
    train_cfg=dict(
        augments=[dict(type='Mixup', alpha=0.2), dict(type='CutMix', alpha=1.0)],
        probs=[0.0, 0.0]))
tricks_optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(bias_decay_mult=0., custom_keys={'bn': dict(decay_mult=0.)}))
tricks_param_scheduler = [
    dict(type='LinearLR', start_factor=1. / (tricks_warmup_epochs * tricks_iters_per_epoch),
         by_epoch=True, begin=0, end=tricks_warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=tricks_epochs - tricks_warmup_epochs, eta_min=0.,
         by_epoch=True, begin=tricks_warmup_epochs, end=tricks_epochs,
         convert_to_iter_based=True),
]
tricks_train_cfg = dict(by_epoch=True, max_epochs=tricks_epochs, val_interval=1)

# what `tools/train.py CONFIG --recipe imagenet_tricks` merges into any ImageNet config
# (resvariants/engine/recipes.py); configs/imagenet/resnet50_tricks_in1k.py is the same as a file
recipe_overrides = dict(model=tricks_model, optim_wrapper=tricks_optim_wrapper,
                        param_scheduler=tricks_param_scheduler, train_cfg=tricks_train_cfg)
