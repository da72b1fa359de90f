"""All resvariants models; importing this registers them."""
from .attention import *  # noqa: F401,F403
from .backbones import *  # noqa: F401,F403
from .distill import *  # noqa: F401,F403
from resvariants import engine  # noqa: F401  (StrictPretrained init, atomic backend)
