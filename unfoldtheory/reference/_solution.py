"""Result types of :func:`unfoldtheory.reference.solve` and the certification rule shared by all paths."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


class InaccurateSolutionWarning(UserWarning):
    """Some instances were returned without a certificate: their relative duality gap exceeds ``tol``."""


def _squeeze(values: np.ndarray, single: bool) -> Any:
    """A float/str for one instance, the array itself for a batch."""
    if not single:
        return values
    value = values[0]
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True, repr=False, kw_only=True)
class Solution:
    r"""A reference optimum with its certificate.

    For one instance the numeric fields are floats and ``status``/``solver`` are strings; for a batch they
    are arrays of shape (batch,) (``status``/``solver`` hold str).

    Attributes
    ----------
    x : ndarray, shape (n,) or (batch, n)
        The solution (float64).
    objective : float or ndarray
        :math:`F(x)`, computed by the problem class.
    gap : float or ndarray
        Absolute duality gap computed by the library (``problem.duality_gap``), rounded outward: a proven
        upper bound on :math:`F(x) - F^\star`.  Never the solver's own claim.
    relative_gap : float or ndarray
        ``gap / F(x)``.
    residual : float, ndarray or None
        Relative distance of 0 to the subdifferential (``problem.optimality_residual(x, y, relative=True)``);
        ``None`` where the problem defines none (RPCA).
    status : str or ndarray of str
        ``"optimal"`` where ``relative_gap <= tol`` (the certificate holds), ``"inaccurate"`` otherwise.
    solver : str or ndarray of str
        What produced each instance: ``"fast"`` or ``"cvxpy:<SOLVER>"``.
    method : str
        The method that was run (``"fast"`` or ``"cvxpy"``; ``"auto"`` is resolved).
    tol : float
        The relative-gap tolerance of the certificate.
    attempts : tuple of SolverAttempt, or tuple of such tuples for a batch
        Per instance, the tries that were rejected (a solver error, no finite point, or a gap above
        ``tol``); empty when the first try was certified.
    """

    x: np.ndarray
    objective: Any
    gap: Any
    relative_gap: Any
    residual: Any
    status: Any
    solver: Any
    method: str
    tol: float
    attempts: tuple = field(default=())

    @property
    def single(self) -> bool:
        """Whether this is the solution of one instance (scalar fields) rather than a batch."""
        return np.ndim(self.objective) == 0

    @property
    def batch_size(self) -> int:
        """Number of instances (1 for a single instance)."""
        return 1 if self.single else int(np.shape(self.objective)[0])

    @property
    def certified(self) -> Any:
        """``relative_gap <= tol``: a bool, or a bool array over the batch."""
        cert = np.asarray(self.relative_gap) <= self.tol
        return bool(cert) if self.single else cert

    def _summary(self) -> str:
        rel = np.atleast_1d(np.asarray(self.relative_gap, dtype=float))
        n_cert = int((rel <= self.tol).sum())
        solvers, counts = np.unique(np.atleast_1d(np.asarray(self.solver, dtype=str)), return_counts=True)
        used = ", ".join(f"{s}: {c}" for s, c in zip(solvers, counts))
        parts = [f"batch={self.batch_size}", f"method={self.method!r}",
                 f"certified={n_cert}/{rel.size} (tol={self.tol:g})",
                 f"worst relative_gap={rel.max():.3e}"]
        if self.residual is not None:
            parts.append(f"worst residual={np.max(self.residual):.3e}")
        parts.append(f"solvers={{{used}}}")
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._summary()})"


@dataclass(frozen=True, repr=False, kw_only=True)
class RPCASolution(Solution):
    r"""A certified robust-PCA optimum: ``L`` (also ``x``), ``S = M - L`` and the dual candidate ``Y``.

    ``gap`` is ``rpca.duality_gap(L, M, Y)``; recompute it from the stored fields to check it.
    ``residual`` is ``None``.
    """

    L: np.ndarray
    S: np.ndarray
    Y: np.ndarray


def certify(relative_gap: np.ndarray, tol: float) -> np.ndarray:
    """Status per instance ("optimal" iff the certificate holds), warning once if any instance fails."""
    ok = relative_gap <= tol
    if not ok.all():
        bad = int((~ok).sum())
        msg = (f"{bad} of {ok.size} instance(s) not certified: worst relative duality gap "
               f"{np.max(relative_gap):.3e} > tol={tol:g}; their status is 'inaccurate'.")
        logger.info(msg)
        warnings.warn(msg, InaccurateSolutionWarning, stacklevel=3)
    return np.where(ok, "optimal", "inaccurate")
