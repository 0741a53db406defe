"""The LASSO problem and its certificates of optimality."""

from __future__ import annotations

from functools import cached_property

import numpy as np

from .._validation import as_float_array, check_matrix, check_observations, check_scalar
from ..errors import InvalidInputError
from ..operators import soft_threshold

_EPS = np.finfo(np.float64).eps


class Lasso:
    r"""LASSO: minimise :math:`F(x) = \tfrac12\|Ax - y\|_2^2 + \lambda\|x\|_1` over :math:`x \in \mathbb{R}^n`.

    Parameters
    ----------
    A : array_like, shape (m, n)
        Forward operator (dictionary).  Must be finite.
    lam : float
        Regularisation weight :math:`\lambda \ge 0`.

    Notes
    -----
    * Smooth part :math:`f(x) = \tfrac12\|Ax-y\|^2` has gradient :math:`A^T(Ax-y)`, Lipschitz with
      constant :math:`L = \|A\|_2^2` (:attr:`L`).
    * Prox of the nonsmooth part: :math:`\operatorname{prox}_{t\lambda\|\cdot\|_1} = \eta_{t\lambda}` (soft
      threshold).
    * Dual (Fenchel): :math:`\max_u\; u^T y - \tfrac12\|u\|^2` s.t. :math:`\|A^T u\|_\infty \le \lambda`.
      :meth:`duality_gap` builds the dual point from the scaled residual of a candidate ``x``, so
      :math:`F(x) - F^\star \le` ``duality_gap(x, y)`` for any ``x`` (rounded outward).

    Every method accepts one instance (``x`` of shape (n,), ``y`` of shape (m,)) or a batch ((batch, n),
    (batch, m)) and returns a float or an array of shape (batch,).

    Examples
    --------
    >>> import numpy as np, unfoldtheory as ut
    >>> prob = ut.problems.Lasso(np.eye(2), lam=0.5)
    >>> prob.objective(np.array([0.5, 0.0]), np.array([1.0, 0.2]))
    0.395
    """

    def __init__(self, A, lam: float):
        # a private read-only copy: the cached L and |A| (used by the outward rounding) can never go stale
        self.A = check_matrix(A, "A").copy()
        self.A.flags.writeable = False
        self.lam = check_scalar(lam, "lam", low=0.0)
        self.m, self.n = self.A.shape

    def __repr__(self) -> str:
        return f"Lasso(m={self.m}, n={self.n}, lam={self.lam:g}, L={self.L:.4g})"

    @cached_property
    def L(self) -> float:
        """Lipschitz constant of the gradient of the smooth part, :math:`\\|A\\|_2^2` (largest eigenvalue of the
        smaller Gram matrix)."""
        G = self.A @ self.A.T if self.m <= self.n else self.A.T @ self.A
        return float(np.linalg.eigvalsh(G)[-1])

    @cached_property
    def _abs_A(self) -> np.ndarray:
        return np.abs(self.A)

    # ------------------------------------------------------------------ helpers
    def _pair(self, x, y) -> tuple[np.ndarray, np.ndarray, bool]:
        X = as_float_array(x, "x", ndim=(1, 2))
        if X.shape[-1] != self.n:
            raise InvalidInputError(
                f"x has {X.shape[-1]} entries per instance but A has {self.n} columns; got shape {X.shape}.")
        Y, single_y = check_observations(y, self.m, "y")
        single = X.ndim == 1 and single_y
        X2 = X[None, :] if X.ndim == 1 else X
        if X2.shape[0] != Y.shape[0] and 1 not in (X2.shape[0], Y.shape[0]):
            raise InvalidInputError(
                f"x and y hold different numbers of instances ({X2.shape[0]} and {Y.shape[0]}); "
                "pass matching batches.")
        batch = max(X2.shape[0], Y.shape[0])
        return np.broadcast_to(X2, (batch, self.n)), np.broadcast_to(Y, (batch, self.m)), single

    @staticmethod
    def _out(values: np.ndarray, single: bool):
        return float(values[0]) if single else values

    # ------------------------------------------------------------------ values
    def objective(self, x, y):
        """:math:`F(x) = \\tfrac12\\|Ax-y\\|^2 + \\lambda\\|x\\|_1` (float, or array over the batch)."""
        X, Y, single = self._pair(x, y)
        r = X @ self.A.T - Y
        return self._out(0.5 * np.einsum("bi,bi->b", r, r) + self.lam * np.abs(X).sum(axis=1), single)

    def gradient(self, x, y) -> np.ndarray:
        """Gradient of the smooth part, :math:`A^T(Ax - y)`."""
        X, Y, single = self._pair(x, y)
        g = (X @ self.A.T - Y) @ self.A
        return g[0] if single else g

    def prox(self, v, step: float) -> np.ndarray:
        r""":math:`\operatorname{prox}_{t\lambda\|\cdot\|_1}(v) = \eta_{t\lambda}(v)` for step ``t >= 0``."""
        step = check_scalar(step, "step", low=0.0)
        return soft_threshold(as_float_array(v, "v"), step * self.lam)

    def optimality_residual(self, x, y, *, relative: bool = False):
        r"""Distance of 0 to the subdifferential :math:`\partial F(x)`, in the Euclidean norm.

        With :math:`g = A^T(Ax-y)`: the coordinate term is :math:`|g_i + \lambda\,\mathrm{sign}(x_i)|` where
        :math:`x_i \ne 0` and :math:`\max(|g_i| - \lambda, 0)` where :math:`x_i = 0`.  It is zero exactly at the
        minimisers.  ``relative=True`` divides by :math:`\|A^T y\|_2`, the residual of ``x = 0`` when
        :math:`\lambda = 0` (so the relative residual of the zero vector is at most 1).
        """
        X, Y, single = self._pair(x, y)
        g = (X @ self.A.T - Y) @ self.A
        on = X != 0
        term = np.where(on, np.abs(g + self.lam * np.sign(X)), np.maximum(np.abs(g) - self.lam, 0.0))
        res = np.linalg.norm(term, axis=1)
        if relative:
            scale = np.linalg.norm(Y @ self.A, axis=1)
            res = np.where(res == 0, 0.0, res / np.maximum(scale, np.finfo(float).tiny))
        return self._out(res, single)

    def dual_point(self, x, y) -> np.ndarray:
        r"""A dual-feasible point built from the residual: :math:`u = s\,(y - Ax)`, with
        :math:`s = \min(1, \lambda/\|A^T(y-Ax)\|_\infty)` shrunk by the rounding error of that norm so that
        :math:`\|A^T u\|_\infty \le \lambda` holds in exact arithmetic.

        With :math:`\lambda = 0` the dual set is :math:`\{A^T u = 0\}`, which a rounded residual cannot be
        certified to meet, so the dual point is 0 and the gap is :math:`F(x)` (a valid but loose bound)."""
        X, Y, single = self._pair(x, y)
        u = self._dual(X, Y)[0]
        return u[0] if single else u

    def _dual(self, X: np.ndarray, Y: np.ndarray):
        r = Y - X @ self.A.T
        c = r @ self.A
        # |computed (A^T r)_i - exact| <= m eps (|A|^T |r|)_i (+ higher order): bound the exact sup-norm.
        err = (self.m + 2) * _EPS * (np.abs(r) @ self._abs_A).max(axis=1)
        norm_bound = np.abs(c).max(axis=1) + err
        if self.lam > 0:
            s = np.minimum(1.0, self.lam / np.maximum(norm_bound, np.finfo(float).tiny))
            s = np.where(norm_bound <= self.lam, 1.0, s * (1.0 - 4 * _EPS))
        else:
            s = np.where(norm_bound == 0, 1.0, 0.0)
        return s[:, None] * r, r

    def duality_gap(self, x, y, *, relative: bool = False):
        r"""Certified upper bound on :math:`F(x) - F^\star`: the Fenchel duality gap
        :math:`F(x) - (u^T y - \tfrac12\|u\|^2)` at the dual point :meth:`dual_point`.

        The value is rounded outward: a first-order bound on the floating-point error of both terms is added,
        so the returned number is an upper bound on the exact gap of the float64 ``x``.  ``relative=True``
        divides by :math:`F(x)` (0 when the gap is 0).
        """
        X, Y, single = self._pair(x, y)
        u, r = self._dual(X, Y)
        l1 = np.abs(X).sum(axis=1)
        primal = 0.5 * np.einsum("bi,bi->b", r, r) + self.lam * l1
        dual = np.einsum("bi,bi->b", u, Y) - 0.5 * np.einsum("bi,bi->b", u, u)
        # rounding budget: errors of r (n+1 terms per entry), of the inner products (m terms), of ||x||_1.
        nr, ny = np.linalg.norm(r, axis=1), np.linalg.norm(Y, axis=1)
        nax = np.linalg.norm(np.abs(X) @ self._abs_A.T, axis=1)
        slack = (self.n + self.m + 4) * _EPS * (2 * (nr + ny) * (nax + ny + nr) + self.lam * l1)
        gap = np.maximum(primal - dual, 0.0) + slack
        if relative:
            gap = gap / np.maximum(primal, np.finfo(float).tiny)
        return self._out(gap, single)
