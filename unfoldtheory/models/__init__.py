"""Unfolded networks as torch modules: a model zoo covering the four paradigms of deep unfolding.

Every model maps an observation ``y`` ((m,) or (batch, m)) to ``x_K``; ``forward(y, return_all=True)``
returns ``[x_1, ..., x_K]``; ``.form()`` gives the analysis form where the layers are representable (and
raises :class:`~unfoldtheory.errors.NotRepresentableError` where they are not).

One constructor convention: ``Model(A, num_layers, lam=..., ..., device=None, dtype=None)``.  For the
learned models ``lam`` (default 0.1) is only the LASSO weight of the ISTA they are initialised as (thresholds
``lam / L``, learned afterwards); classical :class:`ISTA` has no default and requires ``lam``.  The earlier
``ISTA(A, lam, num_layers)`` order still works with a ``DeprecationWarning``.  :class:`HyperLISTA` has no
``lam`` (its thresholds are instance-adaptive) and says so if given one; :class:`UnfoldedRPCA` takes the
matrix ``shape`` and ``lam0`` (the weight of the sparse part) instead of ``A`` and ``lam``.

==========  =========================================================================================
paradigm    models
==========  =========================================================================================
classical   :class:`ISTA`
1           :class:`LearnedStepISTA`, :class:`ALISTA`, :class:`HyperLISTA`, :class:`UnfoldedFISTA`,
            :class:`UnfoldedADMM`, :class:`UnfoldedRPCA`
2           :class:`LISTA` (untied / tied), :class:`LISTACP`, :class:`LISTACPSS`, :class:`TiLISTA`
3           :class:`CorrectedISTA`
4           :class:`LearnedProxISTA`
==========  =========================================================================================
"""

from .adapt import AdaptedModel, adapt
from .admm import UnfoldedADMM
from .base import UnfoldedNetwork
from .corrected import CorrectedISTA
from .coupled import ALISTA, LISTACP, LISTACPSS, LearnedStepISTA, TiLISTA
from .io import load, save
from .ista import ISTA
from .learned_prox import LearnedProxISTA
from .lista import LISTA
from .momentum import HyperLISTA, UnfoldedFISTA
from .rpca import UnfoldedRPCA

MODELS = (ISTA, LISTA, LISTACP, LISTACPSS, TiLISTA, LearnedStepISTA, ALISTA, HyperLISTA, UnfoldedFISTA,
          CorrectedISTA, LearnedProxISTA, UnfoldedADMM, UnfoldedRPCA)

__all__ = ["UnfoldedNetwork", "MODELS", "load", "save", "adapt", "AdaptedModel"] + [cls.__name__ for cls in MODELS]
