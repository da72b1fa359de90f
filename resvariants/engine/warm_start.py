"""Warm start: initialise an attention variant from a plain ResNet checkpoint.

``init_cfg=dict(type='WarmStart', checkpoint=PATH, prefix='backbone.')`` on any
``resvariants`` backbone (SE, SK*, CBAM, BAM, GC, SGE, SRM, ED, ...):

1. the backbone first gets the initialisation it would get when trained from scratch (Kaiming
   for convs and transposed convs, 1 for norm weights; every module's own ``init_weights``
   still runs afterwards, e.g. SGE's gamma = 0 or GC's zero last conv);
2. every tensor of the checkpoint is loaded; each must exist in the model with the same shape
   (a checkpoint of another depth / width is an error, not a partial load);
3. the model keys the checkpoint does not have are the *new* modules' keys: they keep the
   scratch initialisation. A missing trunk key (stem, ``conv1..3``, ``bn1..3``, projection) is an
   error, so "zero missing trunk keys" is guaranteed. The new keys are logged, grouped by
   module, and kept in ``backbone.warm_start_report``.

With the same random seed the new modules come out bit-identical to a scratch build, and the
trunk bit-identical to the checkpoint (tests/test_engine/test_warm_start.py).
``tools/model_converters/warm_start.py`` does the same offline and writes the result.
"""
import copy
import os.path as osp
import re
from collections import OrderedDict

from mmengine.logging import print_log
from mmengine.model import initialize
from mmengine.model.weight_init import PretrainedInit, update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS

from resvariants.converters.resnet_layout import TRUNK_KEY
from resvariants.utils.safe_load import load_checkpoint_safely, state_dict_of

#: the scratch initialisation of the trunk (mmdet ResNet's default, transposed convs included
#: as EDResNet does), applied before loading so that new modules match a scratch build
SCRATCH_INIT_CFG = [
    dict(type='Kaiming', layer=['Conv2d', 'ConvTranspose2d']),
    dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm']),
]


class WarmStartMismatch(KeyError):
    """The checkpoint is not a plain trunk of the model (message lists the keys)."""

    def __str__(self):
        return str(self.args[0])


class WarmStartReport:
    """Which keys of a warm-started module were loaded and which are new."""

    def __init__(self, loaded, new, source='checkpoint'):
        self.loaded = sorted(loaded)
        self.new = sorted(new)
        self.source = source

    def new_modules(self):
        """New keys grouped by the module that owns them (``OrderedDict`` prefix -> names)."""
        groups = OrderedDict()
        for key in self.new:
            module, name = _owner(key)
            groups.setdefault(module, []).append(name)
        return groups

    def summary(self):
        """A human-readable report listing every new key (one line per new module)."""
        lines = [f'WarmStart from {self.source}: loaded {len(self.loaded)} tensors, '
                 f'{len(self.new)} new keys in {len(self.new_modules())} modules keep their '
                 f'initialisation' + (':' if self.new else ' (the model is the plain trunk)')]
        for module, names in self.new_modules().items():
            lines.append(f'  {module}: {", ".join(names)}')
        return '\n'.join(lines)

    def to_dict(self):
        return dict(source=self.source, loaded=self.loaded, new=self.new)


def _owner(key):
    """Split ``layer1.0.se_layer.conv1.conv.weight`` -> (``layer1.0.se_layer``, rest)."""
    m = re.match(r'^(layer\d+\.\d+\.[^.]+|[^.]+)\.(.+)$', key)
    return (m[1], m[2]) if m else ('', key)


def warm_start(module, state_dict, source='checkpoint'):
    """Load a plain-trunk ``state_dict`` into ``module``; the module's other keys stay as they are.

    Returns:
        WarmStartReport: the loaded and the new keys.

    Raises:
        WarmStartMismatch (a KeyError): if the checkpoint has keys the module lacks or with
            other shapes, or lacks a trunk key of the module, listing them.
    """
    from resvariants.engine.strict_pretrained import compare_state_dicts
    missing, unexpected, mis_shaped = compare_state_dicts(module.state_dict(), state_dict)
    missing_trunk = [k for k in missing if TRUNK_KEY.match(k)]
    problems = [(f'{len(unexpected)} checkpoint keys the model does not have', unexpected),
                (f'{len(mis_shaped)} keys with other shapes', mis_shaped),
                (f'{len(missing_trunk)} trunk keys missing from the checkpoint', missing_trunk)]
    problems = [(title, keys) for title, keys in problems if keys]
    if problems:
        lines = [f'cannot warm-start {type(module).__name__} from {source}: it must be a '
                 f'checkpoint of the same trunk (depth, width, stem) without the new modules']
        lines += [f'  {title}: ' + ', '.join(keys[:12]) + (' ...' if len(keys) > 12 else '')
                  for title, keys in problems]
        raise WarmStartMismatch('\n'.join(lines))
    result = module.load_state_dict(state_dict, strict=False)
    # BN layers fill an absent num_batches_tracked themselves, so torch may report fewer
    if result.unexpected_keys or not set(result.missing_keys) <= set(missing):
        raise RuntimeError(f'warm start of {type(module).__name__}: torch reported {result}, '
                           f'the key comparison found missing={missing}')
    return WarmStartReport(loaded=state_dict, new=missing, source=source)


def read_prefixed_state(checkpoint, prefix, source):
    """Tensor dict of ``checkpoint`` (path or dict) with ``prefix`` stripped (keys without it
    are dropped); ``module.`` prefixes are removed first."""
    if isinstance(checkpoint, str):
        checkpoint = load_checkpoint_safely(checkpoint, map_location='cpu')
    state = state_dict_of(checkpoint, source=source)
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        state = OrderedDict((k[len(prefix):], v) for k, v in state.items()
                            if k.startswith(prefix))
        if not state:
            raise KeyError(f'{source} has no keys with prefix {prefix!r}')
    return state


@WEIGHT_INITIALIZERS.register_module(name='WarmStart')
class WarmStartInit(PretrainedInit):
    """Scratch init, then a strict-but-partial load of a plain trunk checkpoint.

    Args:
        checkpoint (str): Path of the plain checkpoint (e.g. a converted torchvision ResNet-50,
            or a ``configs/imagenet/resnet50_in1k.py`` training checkpoint).
        prefix (str | None): Prefix of the trunk keys in the checkpoint. Defaults to
            ``'backbone.'`` (classifier checkpoints); None for bare backbone state dicts.
        map_location (str): Where to load the tensors. Defaults to ``'cpu'``.
        scratch_init_cfg (list[dict] | None): Initialisation applied before loading, so the new
            modules get their scratch values. Defaults to :data:`SCRATCH_INIT_CFG`; ``[]``
            skips it (new modules then keep their construction-time values).
    """

    def __init__(self, checkpoint, prefix='backbone.', map_location='cpu',
                 scratch_init_cfg=None):
        super().__init__(checkpoint=checkpoint, prefix=prefix, map_location=map_location)
        self.scratch_init_cfg = copy.deepcopy(
            SCRATCH_INIT_CFG if scratch_init_cfg is None else scratch_init_cfg)

    def __call__(self, module):
        if isinstance(self.checkpoint, str) and not osp.isfile(self.checkpoint):
            from resvariants.engine.strict_pretrained import missing_checkpoint_error
            raise missing_checkpoint_error(self.checkpoint, 'WarmStart')
        if self.scratch_init_cfg:
            initialize(module, self.scratch_init_cfg)
        state = read_prefixed_state(self.checkpoint, self.prefix, source=self.checkpoint)
        report = warm_start(module, state, source=self.checkpoint)
        module.warm_start_report = report
        print_log(report.summary(), logger='current')
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=self._get_init_info())

    def _get_init_info(self):
        return (f'{self.__class__.__name__}: trunk from {self.checkpoint}, new modules keep '
                f'their initialisation')
