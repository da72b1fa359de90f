"""Helpers for the converter tests: source models with every tensor randomised."""
import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm


def randomize_(model, seed=0):
    """Give every norm (weight, bias, running stats) and every bias random values, in place.

    Library inits leave many tensors at 0 or 1 (zero-gamma last BN, zero biases, fresh running
    statistics); a converter that dropped or swapped such a tensor would go unnoticed. The
    conv / linear weights keep their random library init.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                module.weight.uniform_(0.5, 1.0, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
                module.running_mean.normal_(0, 0.1, generator=generator)
                module.bias.normal_(0, 0.1, generator=generator)
                module.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1, ),
                                                                   generator=generator)))
            elif getattr(module, 'bias', None) is not None and isinstance(module.bias,
                                                                           torch.Tensor):
                module.bias.normal_(0, 0.1, generator=generator)
    return model.eval()


@pytest.fixture
def randomize():
    return randomize_


@pytest.fixture
def images():
    """A normalised image batch (2 x 3 x 64 x 64)."""
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
