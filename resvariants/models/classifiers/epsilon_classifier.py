"""mmpretrain ``ImageClassifier`` with epsilon-ResNet's side supervision.

Source facts: docs/architectures.md 2.3.

An auxiliary BN-ReLU -> GAP -> fc classifier reads the output of one block in the middle of the
network and adds its cross-entropy, weighted 0.1, to the main loss. Its default position is the
source's: after block n/2 of stage 2 on CIFAR (``layer2.9`` of ResNet-110), after block 8 of
stage 3 for ResNet-101 and block 13 for ResNet-152 (block 0 for depths 18/34/50, where the
source's rule crashes or has no head). Its cross-entropy is added in ``loss``; ``predict``
(validation and test) also runs it, as the source's inference pass does, and attaches its
softmax scores to every data sample as ``side_pred_score``, which
``resvariants.SideAccuracy`` turns into ``side/accuracy/top1`` beside the main head's
``accuracy/top1``. The main head's predictions are unchanged; the compact export drops the side
head.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.models.losses import CrossEntropyLoss

from resvariants.registry import MODELS


class SideSupervisionHead(LinearClsHead):
    """BN-ReLU -> global average pool -> fc classifier with a weighted cross-entropy.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels of the supervised feature map.
        loss_weight (float): Weight of its cross-entropy. Defaults to 0.1 (the source's).
        norm_cfg (dict): Norm of the head. Defaults to ``dict(type='BN')``.
    """

    def __init__(self, num_classes, in_channels, loss_weight=0.1, norm_cfg=dict(type='BN'),
                 **kwargs):
        super().__init__(num_classes, in_channels,
                         loss=CrossEntropyLoss(loss_weight=loss_weight), **kwargs)
        self.norm_name, norm = build_norm_layer(norm_cfg, in_channels)
        self.add_module(self.norm_name, norm)

    def pre_logits(self, feats):
        x = F.relu(getattr(self, self.norm_name)(feats[-1]))
        return x.mean(dim=(2, 3))


def _remember_output(module, inputs, output):
    keep = module.training or getattr(module, 'capture_side_output', False)
    module.side_output = output if keep else None


@MODELS.register_module()
class EpsilonImageClassifier(ImageClassifier):
    """``ImageClassifier`` whose training loss adds a side-supervision head.

    Args:
        backbone (dict): An epsilon backbone (``resvariants.EpsilonResNet``,
            ``resvariants.PreActResNetCIFAR``), or any backbone with ``res_layers`` when
            ``side_position`` is given.
        side_head (dict | None): ``SideSupervisionHead`` arguments (``loss_weight``,
            ``num_classes`` (default: the main head's), ``norm_cfg``); None disables it.
            Defaults to ``dict(loss_weight=0.1)``.
        side_position (tuple[int, int] | None): ``(stage, block)``, 0-based, whose output the
            head reads. Defaults to the backbone's ``side_supervision_point()``.
        predict_side (bool): ``predict`` attaches the side head's scores
            (``side_pred_score``) to the data samples. Defaults to True.
        **kwargs: As mmpretrain's ``ImageClassifier`` (``neck``, ``head``, ...).
    """

    def __init__(self, backbone, side_head=dict(loss_weight=0.1), side_position=None,
                 predict_side=True, **kwargs):
        super().__init__(backbone, **kwargs)
        self.predict_side = predict_side
        self.side_position = None
        self.side_head = None
        if side_head is None:
            return
        side_head = dict(side_head)
        layers = getattr(self.backbone, 'res_layers', None)
        if side_position is None:
            if not hasattr(self.backbone, 'side_supervision_point'):
                raise ValueError(f'{type(self.backbone).__name__} does not define the side '
                                 f'head position: give side_position=(stage, block)')
            stage, block, channels = self.backbone.side_supervision_point()
        else:
            stage, block = side_position
            channels = None
        if layers is None or not 0 <= stage < len(layers) or \
                not 0 <= block < len(getattr(self.backbone, layers[stage])):
            raise ValueError(f'side_position (stage {stage}, block {block}) is not a block of '
                             f'{type(self.backbone).__name__}')
        self.side_position = (stage, block)
        if channels is None:
            channels = [m for m in self.side_block.modules()
                        if isinstance(m, nn.Conv2d)][-1].out_channels
        num_classes = side_head.pop('num_classes', None) or getattr(self.head, 'num_classes',
                                                                    None)
        if not num_classes:
            raise ValueError('side_head needs num_classes (there is no main head to take it '
                             'from)')
        self.side_head = SideSupervisionHead(num_classes, channels, **side_head)
        self.side_block.register_forward_hook(_remember_output)

    @property
    def side_block(self):
        """The block whose output feeds the side head (looked up, not registered twice)."""
        if self.side_position is None:
            return None
        stage, block = self.side_position
        return getattr(self.backbone, self.backbone.res_layers[stage])[block]

    def loss(self, inputs, data_samples):
        """Main head loss plus ``loss_side`` (the weighted side-head cross-entropy)."""
        if self.side_block is not None:
            self.side_block.side_output = None
        feats = self.extract_feat(inputs)
        losses = self.head.loss(feats, data_samples)
        if self.side_head is not None:
            side_feature = self.side_block.side_output
            self.side_block.side_output = None
            if side_feature is None:
                raise RuntimeError('the side-supervised block did not run in training mode')
            side = self.side_head.loss((side_feature, ), data_samples)
            losses.update({('loss_side' if k == 'loss' else f'side_{k}'): v
                           for k, v in side.items()})
        return losses

    def predict(self, inputs, data_samples=None, **kwargs):
        """The main head's predictions, each data sample also carrying the side head's softmax
        scores as ``side_pred_score`` (when there is a side head and ``predict_side``)."""
        if self.side_head is None or not self.predict_side:
            return super().predict(inputs, data_samples, **kwargs)
        block = self.side_block
        block.side_output = None
        block.capture_side_output = True
        try:
            feats = self.extract_feat(inputs)
        finally:
            block.capture_side_output = False
        side_feature, block.side_output = block.side_output, None
        if side_feature is None:
            raise RuntimeError('the side-supervised block did not run during predict')
        predictions = self.head.predict(feats, data_samples, **kwargs)
        side_scores = torch.softmax(self.side_head((side_feature, )), dim=1).detach()
        for sample, score in zip(predictions, side_scores):
            sample.set_field(score, 'side_pred_score', dtype=torch.Tensor)
        return predictions
