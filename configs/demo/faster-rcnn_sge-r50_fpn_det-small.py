# The zoo config configs/faster_rcnn_sge_r50_fpn.py (everything: model, frozen stage 1,
# norm_eval, SGD, warmup, CocoMetric) run on det_small: only the data location, a smaller image
# scale for the CPU, a short iteration schedule and the ImageNet checkpoint (here: the SGE
# classifier of configs/demo/sge_resnet50_cls-small.py) differ.
#   python tools/train.py configs/demo/sge_resnet50_cls-small.py --work-dir work_dirs/demo/sge_cls
#   python tools/train.py configs/demo/faster-rcnn_sge-r50_fpn_det-small.py --auto-scale-lr
#   python tools/test.py configs/demo/faster-rcnn_sge-r50_fpn_det-small.py \
#       work_dirs/faster-rcnn_sge-r50_fpn_det-small/iter_48.pth
_base_ = ['../faster_rcnn_sge_r50_fpn.py', '../_recipes/det_small_data.py']
data_root = {{_base_.det_small_root}}
model = dict(backbone=dict(init_cfg=dict(checkpoint='work_dirs/demo/sge_cls/epoch_4.pth')))
train_dataloader = {{_base_.det_small_train_dataloader}}
val_dataloader = {{_base_.det_small_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.det_small_evaluator}}
test_evaluator = val_evaluator

# 48 iterations (one pass over the 96 training images), evaluated at the end
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=48, val_interval=48)
param_scheduler = [dict(type='LinearLR', start_factor=1. / 3, by_epoch=False, begin=0, end=16)]
default_hooks = dict(logger=dict(interval=8),
                     checkpoint=dict(by_epoch=False, interval=48, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
