"""unfoldtheory: check the theory of deep unfolding against trained networks.

Submodules
----------
problems    inverse problems (LASSO, RPCA), their certificates of optimality and data generators
reference   certified reference optima (cvxpy, and a fast batched path verified by duality gaps)
form        the analysis form of an unrolled network, read by every certificate
models      unfolded networks as torch modules (ISTA, LISTA, ...)
errors      exception types

``import unfoldtheory`` does not import cvxpy, sympy or hypothesis; they are loaded by the functions that
need them.
"""

from . import (bounds, coherence, contraction, convergence, errors, form, generalization, lipschitz, metrics, models,
               problems, reference, robustness, suite, symbolic, testing,
               training)
from .errors import InvalidInputError, MissingFileError, NotRepresentableError, SolverError, UnfoldTheoryError

__version__ = "0.1.0.dev0"

__all__ = ["bounds", "coherence", "contraction", "convergence", "errors", "form", "generalization", "lipschitz", "metrics", "models",
           "problems", "reference", "robustness", "suite", "symbolic", "testing", "training", "InvalidInputError", "NotRepresentableError",
           "SolverError", "UnfoldTheoryError", "MissingFileError", "__version__"]
