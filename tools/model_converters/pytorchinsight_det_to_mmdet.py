"""Convert a PytorchInsight detection-fork checkpoint (mmdet v1) into an mmdet 3.x checkpoint.

    python tools/model_converters/pytorchinsight_det_to_mmdet.py SRC.pth DST.pth

SRC: a Faster / Mask / Cascade R-CNN + FPN of the fork (backbone ResNet-50/101, plain, SE or SGE),
as its ``tools/train.py`` saved it (``{'meta', 'state_dict', 'optimizer'}``, read weights-only).
The detector and backbone are read from the keys. The weights move to our layout
(resvariants/converters/pytorchinsight_det.py: heads under ``roi_head``, the background class
from first to last in ``fc_cls`` and out of ``fc_reg`` / ``conv_logits``), are loaded with strict
key and shape checks into the model of
``projects/public_weights/configs/pytorchinsight_det/<detector>_<backbone>_fpn_v1.py`` (our config
plus the fork's v1 anchors, box coder and RoIAlign) and written atomically to DST; its meta names
that config. Evaluate with

    python tools/test.py projects/public_weights/configs/pytorchinsight_det/<...>_fpn_v1.py DST
"""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='mmdet v1 checkpoint of the PytorchInsight detection fork')
    parser.add_argument('dst', help='output mmdet 3.x checkpoint (.pth)')
    return parser.parse_args(argv)


def run_config(detector, backbone):
    """The config that runs a converted ``detector`` with ``backbone`` as the fork did."""
    from resvariants.converters.pytorchinsight_det import CONFIG_DIR, config_name
    return osp.join(ROOT, CONFIG_DIR, config_name(detector, backbone) + '.py')


def convert(src, dst):
    from resvariants.converters.pytorchinsight_det import (
        backbone_of, classes_of, convert_pytorchinsight_det_state_dict, detector_of)
    from resvariants.converters.resnet_layout import convert_release

    def config_for(state):
        detector, backbone = detector_of(state), backbone_of(state)
        classes = classes_of(state)
        if classes != 80:
            raise ValueError(f'{classes} object classes (fc_cls has {classes + 1} rows): the run '
                             f'configs are COCO detectors with 80')
        return (f'{detector}_{backbone}_fpn', run_config(detector, backbone),
                dict(source_layout='mmdet v1 (PytorchInsight detection fork)'))

    return convert_release(src, dst, lambda state: convert_pytorchinsight_det_state_dict(state)[0],
                           config_for)


def main(argv=None):
    args = parse_args(argv)
    return convert(args.src, args.dst)


if __name__ == '__main__':
    main()
