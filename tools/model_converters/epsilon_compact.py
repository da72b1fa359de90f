"""Export the compact network of a trained epsilon-ResNet (its discarded blocks removed).

    python tools/model_converters/epsilon_compact.py CONFIG CKPT OUT_DIR [--shape H W]
                                                     [--tolerance 1e-5] [--no-flops]

CONFIG/CKPT: an epsilon-ResNet classifier (or detector) config and a checkpoint written by a
run with ``resvariants.EpsilonResNetHook`` (it stores which blocks were discarded). OUT_DIR
receives ``<config>_compact.py`` (ordinary mmpretrain ImageClassifier / mmdet detector with a
``CompactResNet`` / ungated ``PreActResNetCIFAR`` backbone, no side head, no epsilon hooks),
``<config>_compact.pth`` (its weights, written atomically) and ``compact_backbone.py`` (the
backbone with detection settings and a StrictPretrained init, for detector configs such as
projects/epsilon_resnet/configs/faster-rcnn_eps-r50-compact_fpn_det-small.py).

The tool checks on a random batch that the compact network's backbone and head outputs equal
the gated network's (eval mode, recorded decisions) within --tolerance, and prints the removed
blocks, parameters (without the training-only side head) and GFLOPs (PytorchInsight counter
convention; of the classifier, or of the backbone for detectors) before and after.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Export the compact network of an '
                                                 'epsilon-ResNet checkpoint')
    parser.add_argument('config', help='config of the gated (epsilon) model')
    parser.add_argument('checkpoint', help='checkpoint of a run with EpsilonResNetHook')
    parser.add_argument('out_dir', help='directory for the compact config and checkpoint')
    parser.add_argument('--shape', type=int, nargs='+', default=None,
                        help='input H W (or one size) for the check and the FLOPs; default '
                             '32 for CIFAR networks, 224 otherwise')
    parser.add_argument('--tolerance', type=float, default=1e-5,
                        help='largest allowed |gated - compact| output difference')
    parser.add_argument('--no-flops', action='store_true', help='skip the GFLOPs count')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    shape = None
    if args.shape is not None:
        shape = tuple(args.shape * 2 if len(args.shape) == 1 else args.shape)
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f'--shape takes H W (or one size), got {args.shape}')
    for path in (args.config, args.checkpoint):
        if not osp.isfile(path):
            raise FileNotFoundError(f'file not found: {path}')
    import resvariants  # noqa: F401
    from resvariants.converters.epsilon_compact import export_compact
    result = export_compact(args.config, args.checkpoint, args.out_dir, shape=shape,
                            tolerance=args.tolerance, count_flops=not args.no_flops)
    plan = result.plan
    print(f'Blocks removed: {len(plan.removed)}/{plan.total_blocks} '
          f'({plan.removed_ratio:.2%}): {", ".join(plan.removed) or "none"}')
    print(f'Blocks per stage: {plan.stage_blocks}, projection/parameter-free shortcut kept '
          f'in stages: {[i + 1 for i, s in enumerate(plan.shortcut_only_stages) if s]}')
    print(f'Input shape: (1, 3, {result.shape[0]}, {result.shape[1]})')
    print(f'{"":<8}{"Params":>14}{"GFLOPs":>12}   (params: whole model without the side '
          f'head; GFLOPs: {result.flops_of})')
    print(f'{"before":<8}{result.params_before:>14,}{result.gflops_before:>12.4f}')
    print(f'{"after":<8}{result.params_after:>14,}{result.gflops_after:>12.4f}')
    print(f'max |gated - compact| output difference: {result.max_abs_diff:.3g}')
    print(f'wrote {result.config_path}\n      {result.checkpoint_path}\n      '
          f'{result.backbone_snippet_path}')
    return result


if __name__ == '__main__':
    main()
