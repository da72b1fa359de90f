"""Top-k accuracy of epsilon-ResNet's side-supervision head, logged beside the main head's.

The source evaluates its auxiliary head in every validation pass (docs/architectures.md 2.3).
``resvariants.EpsilonImageClassifier.predict`` attaches the side head's softmax scores to
each data sample as ``side_pred_score``; this metric is mmpretrain's ``Accuracy`` computed on
those scores, under the prefix ``side/accuracy`` (``side/accuracy/top1`` beside
``accuracy/top1``)::

    val_evaluator = [dict(type='Accuracy', topk=(1, 5)),
                     dict(type='resvariants.SideAccuracy', topk=(1, 5))]
"""
from mmpretrain.evaluation import Accuracy

from resvariants.registry import METRICS

SIDE_SCORE_KEY = 'side_pred_score'


@METRICS.register_module()
class SideAccuracy(Accuracy):
    """mmpretrain's ``Accuracy`` of the side head's scores (``side_pred_score``).

    Args: as mmpretrain's ``Accuracy`` (``topk``, ``thrs``, ``collect_device``); the default
    prefix is ``side/accuracy``.
    """

    default_prefix = 'side/accuracy'

    def process(self, data_batch, data_samples):
        samples = []
        for sample in data_samples:
            if SIDE_SCORE_KEY not in sample:
                raise KeyError(
                    f'SideAccuracy: a prediction has no "{SIDE_SCORE_KEY}" (the side head\'s '
                    f'scores); it needs resvariants.EpsilonImageClassifier with a side_head. '
                    f'For other models remove SideAccuracy from val_evaluator / test_evaluator')
            samples.append(dict(pred_score=sample[SIDE_SCORE_KEY], gt_label=sample['gt_label']))
        super().process(data_batch, samples)
