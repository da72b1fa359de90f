"""Engine pieces: strict pretrained init, atomic checkpoint backend."""
from .atomic_backend import AtomicLocalBackend
from .strict_pretrained import StrictPretrainedInit

__all__ = ['AtomicLocalBackend', 'StrictPretrainedInit']
