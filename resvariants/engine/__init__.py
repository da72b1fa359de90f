"""Engine pieces: strict pretrained init, atomic checkpoint backend."""
from .atomic_backend import AtomicLocalBackend
from .strict_pretrained import StrictPretrainedInit
from .warm_start import WarmStartInit
from .epsilon_hooks import EpsilonAdaptiveLRHook, EpsilonResNetHook
from .eshift_l2 import EShiftL2OptimWrapperConstructor
from .stagewise_distill_hook import StagewiseDistillHook
from .distributed_hooks import GlobalBatchLrRescaleHook, RankSyncCheckHook
from .reliability_hooks import FiniteLossHook, InputCheckHook, RNGStateHook

__all__ = ['AtomicLocalBackend', 'StrictPretrainedInit', 'WarmStartInit', 'EpsilonAdaptiveLRHook',
           'EpsilonResNetHook', 'EShiftL2OptimWrapperConstructor', 'StagewiseDistillHook',
           'GlobalBatchLrRescaleHook', 'RankSyncCheckHook', 'FiniteLossHook', 'InputCheckHook',
           'RNGStateHook']
