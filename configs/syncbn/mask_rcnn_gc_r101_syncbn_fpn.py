# Mask R-CNN + FPN with a GC-ResNet-101 backbone, synchronized BN (mmdet's `-syncbn` recipe):
# backbone BN statistics over all GPUs of all nodes, trained (norm_eval=False); stem and
# stage 1 stay frozen. Needs CUDA and a distributed launch (tools/dist_train.sh,
# tools/slurm_train.sh); docs/distributed.md.
_base_ = '../mask_rcnn_gc_r101_fpn.py'
model = dict(
    backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True), norm_eval=False))
# `--resume` on another world size with `--auto-scale-lr`: lr rescaled to the new global batch
custom_hooks = [dict(type='resvariants.GlobalBatchLrRescaleHook')]
