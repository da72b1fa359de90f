"""Engine pieces: initialisers, hooks, the e-shifted L2 constructor, the atomic checkpoint
backend, torch.compile of submodules, the inference fast path for testing."""
from .atomic_backend import AtomicLocalBackend
from .compile_hook import CompileModulesHook
from .inference_hook import InferenceFastPathHook
from .strict_pretrained import StrictPretrainedInit
from .warm_start import WarmStartInit
from .epsilon_hooks import EpsilonAdaptiveLRHook, EpsilonResNetHook
from .eshift_l2 import EShiftL2OptimWrapperConstructor
from .stagewise_distill_hook import StagewiseDistillHook
from .distributed_hooks import GlobalBatchLrRescaleHook, RankSyncCheckHook
from .reliability_hooks import FiniteLossHook, InputCheckHook, RNGStateHook

__all__ = ['AtomicLocalBackend', 'CompileModulesHook', 'InferenceFastPathHook',
           'StrictPretrainedInit', 'WarmStartInit',
           'EpsilonAdaptiveLRHook', 'EpsilonResNetHook', 'EShiftL2OptimWrapperConstructor', 'StagewiseDistillHook',
           'GlobalBatchLrRescaleHook', 'RankSyncCheckHook', 'FiniteLossHook', 'InputCheckHook',
           'RNGStateHook']
