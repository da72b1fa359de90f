"""Print the exactness of every supported conversion as a table (run it, it measures).

    python projects/public_weights/exactness_table.py [--families torchvision timm mmpretrain]
                                                      [--input-size 224] [--markdown]

For each architecture the source library builds its own model with random weights (nothing is
downloaded; BN statistics and biases are randomised so that every tensor matters), the state dict
goes through the converter, and the table shows the parameter counts of both models and the max
abs difference of their logits on two random 3 x S x S images, plus the seconds it took.
"""
import argparse
import os.path as osp
import sys
import time

import torch
from torch.nn.modules.batchnorm import _BatchNorm

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

TORCHVISION = ['resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152', 'resnext50_32x4d',
               'resnext101_32x8d', 'resnext101_64x4d']
TIMM = ['resnet18', 'resnet34d', 'resnet50', 'resnet50c', 'resnet50d', 'resnet50s', 'resnet101d',
        'resnet152d', 'resnext50_32x4d', 'resnext50d_32x4d', 'resnext101_32x8d', 'seresnet18',
        'seresnet50', 'seresnet152d', 'seresnext50_32x4d', 'seresnext101_32x8d',
        'seresnext101d_32x8d']
MMPRETRAIN = [dict(type='ResNet', depth=50), dict(type='ResNetV1c', depth=50),
              dict(type='ResNetV1d', depth=101),
              dict(type='ResNeXt', depth=101, groups=32, width_per_group=8),
              dict(type='SEResNet', depth=50),
              dict(type='SEResNeXt', depth=50, groups=32, width_per_group=4)]


def randomize_(model, seed=0):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                module.weight.uniform_(0.5, 1.0, generator=generator)
                module.bias.normal_(0, 0.1, generator=generator)
                module.running_mean.normal_(0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
            elif isinstance(getattr(module, 'bias', None), torch.Tensor):
                module.bias.normal_(0, 0.1, generator=generator)
    return model.eval()


def _params(model):
    return sum(p.numel() for p in model.parameters())


def cases(families):
    from resvariants.converters import mmpretrain as mp
    from resvariants.converters import timm as tm
    from resvariants.converters import torchvision as tv
    if 'torchvision' in families:
        for arch in TORCHVISION:
            def run(arch=arch):
                source = randomize_(tv.build_torchvision_model(arch))
                converted = tv.convert_torchvision_state_dict(source.state_dict())
                return source, converted, tv.infer_torchvision_arch(converted)[1]
            yield 'torchvision', arch, run
    if 'timm' in families:
        import timm
        for arch in TIMM:
            def run(arch=arch):
                source = randomize_(timm.create_model(arch, pretrained=False))
                converted, cfg = tm.convert_timm_state_dict(source.state_dict(), arch)
                return source, converted, cfg
            yield 'timm', arch, run
    if 'mmpretrain' in families:
        for backbone in MMPRETRAIN:
            name = f'{backbone["type"]}-{backbone["depth"]}'
            if 'groups' in backbone:
                name += f'-{backbone["groups"]}x{backbone["width_per_group"]}d'

            def run(backbone=backbone):
                from mmengine.registry import DefaultScope
                from mmpretrain.models import ImageClassifier
                with DefaultScope.overwrite_default_scope('mmpretrain'):
                    source = ImageClassifier(backbone=backbone,
                                             neck=dict(type='GlobalAveragePooling'),
                                             head=dict(type='LinearClsHead', num_classes=1000,
                                                       in_channels=2048))
                source = randomize_(source)
                converted, cfg = mp.convert_mmpretrain_state_dict(source.state_dict())
                return source, converted, cfg
            yield 'mmpretrain', name, run


def main(argv=None):
    from resvariants.converters.resnet_layout import forward_logits, load_converted
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--families', nargs='+', default=['torchvision', 'timm', 'mmpretrain'])
    parser.add_argument('--input-size', type=int, default=224)
    parser.add_argument('--markdown', action='store_true', help='print a Markdown table')
    args = parser.parse_args(argv)
    images = torch.randn(2, 3, args.input_size, args.input_size,
                         generator=torch.Generator().manual_seed(1))
    header = ('source', 'architecture', 'source params', 'our params', 'max |logit diff|',
              'seconds')
    rows = []
    for family, arch, run in cases(args.families):
        start = time.time()
        source, converted, backbone_cfg = run()
        ours = load_converted(converted, backbone_cfg)
        diff = (forward_logits(source, images) - forward_logits(ours, images)).abs().max()
        rows.append((family, arch, f'{_params(source):,}', f'{_params(ours):,}',
                     f'{diff.item():.2g}', f'{time.time() - start:.1f}'))
        print(' | '.join(rows[-1]), flush=True)
    if args.markdown:
        print('\n| ' + ' | '.join(header) + ' |\n|' + '---|' * len(header))
        for row in rows:
            print('| ' + ' | '.join(row) + ' |')
    return rows


if __name__ == '__main__':
    main()
