"""Wall-clock latency of a forward pass (median of repeated runs, no autograd)."""
import statistics
import time
from dataclasses import dataclass

import torch


@dataclass
class Latency:
    median_ms: float
    min_ms: float
    runs: int


def measure_latency(module, inputs, warmup=2, runs=10) -> Latency:
    """Median / min milliseconds of ``module(inputs)`` in eval mode under ``no_grad``.

    CUDA work is synchronised before each clock read, so GPU timings are real too.
    """
    if runs < 1:
        raise ValueError(f'runs must be >= 1, got {runs}')
    was_training = module.training
    module.eval()
    sync = torch.cuda.synchronize if inputs.is_cuda else (lambda: None)
    times = []
    try:
        with torch.no_grad():
            for i in range(warmup + runs):
                sync()
                start = time.perf_counter()
                module(inputs)
                sync()
                if i >= warmup:
                    times.append((time.perf_counter() - start) * 1e3)
    finally:
        module.train(was_training)
    return Latency(median_ms=statistics.median(times), min_ms=min(times), runs=runs)
