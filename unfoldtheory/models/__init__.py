"""Unfolded networks as torch modules.

Every model maps an observation ``y`` ((m,) or (batch, m)) to ``x_K``; ``forward(y, return_all=True)``
returns ``[x_1, ..., x_K]``; ``.form()`` gives the analysis form where the layers are representable.
"""

from .base import UnfoldedNetwork
from .ista import ISTA
from .lista import LISTA

__all__ = ["UnfoldedNetwork", "ISTA", "LISTA"]
