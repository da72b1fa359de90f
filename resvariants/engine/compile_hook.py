"""``torch.compile`` of named submodules, in place (``nn.Module.compile``: state-dict keys,
checkpoints and ``init_cfg`` unchanged): a detector's backbone and neck compile whole, its
data-dependent heads do not (docs/benchmarks.md, "Compiling")."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from resvariants.registry import HOOKS


@HOOKS.register_module()
class CompileModulesHook(Hook):
    """Compile ``modules`` of the runner's model before the first iteration.

    Args:
        modules (tuple[str]): Submodule names (``'backbone'``, ``'neck'``, ``'backbone.layer4'``).
            Defaults to ``('backbone', )``.
        fullgraph (bool): Refuse graph breaks (an error, not a silent slowdown). Defaults to
            True.
        **compile_kwargs: Further ``torch.compile`` arguments (``mode``, ``backend``,
            ``dynamic``, ``options``).
    """

    priority = 'VERY_HIGH'

    def __init__(self, modules=('backbone', ), fullgraph=True, **compile_kwargs):
        if isinstance(modules, str):
            modules = (modules, )
        if not modules:
            raise ValueError('CompileModulesHook needs the names of the modules to compile')
        self.modules = tuple(modules)
        self.compile_kwargs = dict(compile_kwargs, fullgraph=fullgraph)

    def before_run(self, runner):
        self.compile(runner.model, logger=runner.logger)

    def compile(self, model, logger=None):
        """Compile the modules of ``model`` (a wrapper such as DDP is looked through)."""
        model = model.module if is_model_wrapper(model) else model
        for name in self.modules:
            try:
                module = model.get_submodule(name)
            except AttributeError:
                children = ', '.join(n for n, _ in model.named_children())
                raise KeyError(f'CompileModulesHook: {type(model).__name__} has no module '
                               f'{name!r} (its modules: {children})') from None
            module.compile(**self.compile_kwargs)
            if logger is not None:
                logger.info(f'compiled {name} ({type(module).__name__}) with torch.compile'
                            f'({self.compile_kwargs}); the first iterations are slow')
        return model
