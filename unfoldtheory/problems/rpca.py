"""Robust PCA: split an observed matrix into low-rank plus sparse parts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import as_float_array, check_int, check_scalar
from ..errors import InvalidInputError
from ..operators import singular_value_threshold, soft_threshold
from .sparse import _rng


class RPCA:
    r"""Robust PCA (principal component pursuit):

    .. math:: \min_{L, S}\; \|L\|_* + \lambda\|S\|_1 \quad \text{s.t.}\quad L + S = M.

    Parameters
    ----------
    shape : (int, int)
        Shape :math:`(n_1, n_2)` of the observed matrix ``M``.
    lam : float, optional
        Weight of the sparse part; defaults to :math:`1/\sqrt{\max(n_1, n_2)}` (Candès, Li, Ma, Wright,
        "Robust principal component analysis?", J. ACM 2011, Thm 1.1).

    Notes
    -----
    Dual: :math:`\max_Y \langle Y, M\rangle` s.t. :math:`\|Y\|_2 \le 1,\ \|Y\|_\infty \le \lambda`
    (spectral norm and entrywise max).  :meth:`duality_gap` scales any candidate ``Y`` into this set, so the
    gap it returns bounds :math:`\|L\|_* + \lambda\|S\|_1 - p^\star` for any feasible pair ``(L, M - L)``.
    Proximal maps: singular value thresholding for :math:`\|\cdot\|_*` and the soft threshold for
    :math:`\|\cdot\|_1`.
    """

    def __init__(self, shape: tuple[int, int], lam: float | None = None):
        if not (isinstance(shape, (tuple, list)) and len(shape) == 2):
            raise InvalidInputError(f"shape must be a pair (n1, n2); got {shape!r}.")
        self.shape = (check_int(shape[0], "shape[0]", minimum=1), check_int(shape[1], "shape[1]", minimum=1))
        default = 1.0 / np.sqrt(max(self.shape))
        self.lam = default if lam is None else check_scalar(lam, "lam", low=0.0, low_inclusive=False)

    def __repr__(self) -> str:
        return f"RPCA(shape={self.shape}, lam={self.lam:.4g})"

    def _matrix(self, value, name: str) -> np.ndarray:
        arr = as_float_array(value, name, ndim=(2, 3))
        if arr.shape[-2:] != self.shape:
            raise InvalidInputError(f"{name} must have shape {self.shape} (or (batch, *{self.shape})); "
                                    f"got {arr.shape}.")
        return arr

    def objective(self, L, S):
        r""":math:`\|L\|_* + \lambda\|S\|_1` (float, or array over a batch of matrices)."""
        L, S = self._matrix(L, "L"), self._matrix(S, "S")
        nuc = np.linalg.svd(L, compute_uv=False).sum(axis=-1)
        val = nuc + self.lam * np.abs(S).sum(axis=(-2, -1))
        return float(val) if np.ndim(val) == 0 else val

    def prox_nuclear(self, X, tau: float) -> np.ndarray:
        """Singular value thresholding, the prox of ``tau * ||.||_*``."""
        return singular_value_threshold(self._matrix(X, "X"), check_scalar(tau, "tau", low=0.0))

    def prox_l1(self, X, tau: float) -> np.ndarray:
        """Soft threshold at ``tau * lam``, the prox of ``tau * lam * ||.||_1``."""
        return soft_threshold(self._matrix(X, "X"), check_scalar(tau, "tau", low=0.0) * self.lam)

    def dual_feasible(self, Y) -> np.ndarray:
        r"""Scale ``Y`` into the dual set :math:`\{\|Y\|_2 \le 1, \|Y\|_\infty \le \lambda\}` (by a factor
        slightly below the exact one, to absorb the rounding of the spectral norm)."""
        Y = self._matrix(Y, "Y")
        spec = np.linalg.norm(Y, 2, axis=(-2, -1)) * (1 + 64 * np.finfo(float).eps * sum(self.shape))
        mx = np.abs(Y).max(axis=(-2, -1)) / self.lam * (1 + 4 * np.finfo(float).eps)
        scale = np.maximum(np.maximum(spec, mx), 1.0)
        return Y / np.asarray(scale)[..., None, None]

    def duality_gap(self, L, M, Y) -> float | np.ndarray:
        r"""Gap :math:`\|L\|_* + \lambda\|M - L\|_1 - \langle \tilde Y, M\rangle` of the feasible pair
        ``(L, M - L)`` against the dual point :math:`\tilde Y` = :meth:`dual_feasible` ``(Y)``; an upper bound
        on the suboptimality of ``(L, M - L)``, rounded outward."""
        L, M = self._matrix(L, "L"), self._matrix(M, "M")
        Yt = self.dual_feasible(Y)
        primal = np.asarray(self.objective(L, M - L))
        dual = (Yt * M).sum(axis=(-2, -1))
        slack = 16 * np.finfo(float).eps * sum(self.shape) * (np.abs(primal) + np.abs(M).sum(axis=(-2, -1)))
        gap = np.maximum(primal - dual, 0.0) + slack
        return float(gap) if np.ndim(gap) == 0 else gap


@dataclass(frozen=True)
class LowRankPlusSparse:
    """A batch from :func:`low_rank_plus_sparse`: observed ``M = L + S`` and its parts, each
    (batch, n1, n2)."""

    M: np.ndarray
    L: np.ndarray
    S: np.ndarray

    def __len__(self) -> int:
        return self.M.shape[0]

    @property
    def y(self) -> np.ndarray:
        """The observations (``M``), so a batch plugs into the training API like a ``SparseSample``."""
        return self.M

    @property
    def x(self) -> tuple[np.ndarray, np.ndarray]:
        """The targets ``(L, S)``."""
        return self.L, self.S


class RPCAGenerator:
    """Draws batches of :func:`low_rank_plus_sparse` instances (``sample(batch, seed)``), for training."""

    def __init__(self, n1: int, n2: int, rank: int, p: float, magnitude: float = 1.0):
        low_rank_plus_sparse(n1, n2, rank, p, 1, magnitude, seed=0)  # validates the arguments
        self.n1, self.n2, self.rank, self.p, self.magnitude = n1, n2, rank, p, magnitude

    def __repr__(self) -> str:
        return f"RPCAGenerator(shape=({self.n1}, {self.n2}), rank={self.rank}, p={self.p:g})"

    def sample(self, batch: int, seed: int | np.random.Generator | None = None) -> "LowRankPlusSparse":
        return low_rank_plus_sparse(self.n1, self.n2, self.rank, self.p, batch, self.magnitude, seed=seed)


def low_rank_plus_sparse(n1: int, n2: int, rank: int, p: float, batch: int = 1, magnitude: float = 1.0,
                         seed: int | np.random.Generator | None = 0) -> LowRankPlusSparse:
    r"""Random RPCA instances in the model of Candès et al. (2011, Sec. 4.1).

    ``L = X Y^T`` with ``X`` (n1, rank) and ``Y`` (n2, rank) having i.i.d. N(0, 1/n1) and N(0, 1/n2)
    entries; ``S`` has a Bernoulli(p) support with entries ``+-magnitude`` (random signs).
    """
    n1, n2 = check_int(n1, "n1", minimum=1), check_int(n2, "n2", minimum=1)
    rank = check_int(rank, "rank", minimum=0)
    if rank > min(n1, n2):
        raise InvalidInputError(f"rank must be <= min(n1, n2) = {min(n1, n2)}; got {rank}.")
    p = check_scalar(p, "p", low=0.0, high=1.0)
    batch = check_int(batch, "batch", minimum=1)
    magnitude = check_scalar(magnitude, "magnitude", low=0.0)
    rng = _rng(seed)
    X = rng.normal(scale=1 / np.sqrt(n1), size=(batch, n1, rank))
    Y = rng.normal(scale=1 / np.sqrt(n2), size=(batch, n2, rank))
    L = X @ Y.transpose(0, 2, 1)
    S = np.where(rng.random((batch, n1, n2)) < p, magnitude * rng.choice([-1.0, 1.0], (batch, n1, n2)), 0.0)
    return LowRankPlusSparse(M=L + S, L=L, S=S)
