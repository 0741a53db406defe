"""Sparse-recovery data with the LISTA-CP / ALISTA conventions.

Set-up of Chen, Liu, Wang, Yin (NeurIPS 2018, Sec. 5) and Liu, Chen, Wang, Yin (ALISTA, ICLR 2019, Sec. 5.1):
``A_ij ~ N(0, 1/m)`` with unit-norm columns; ``x*`` with a Bernoulli(p) support and N(0, 1) nonzeros;
``y = A x* + noise`` with the noise level set by a signal-to-noise ratio in dB.  The papers use m = 250,
n = 500, p = 0.1 and SNR in {20, 30, 40, inf} dB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_int, check_matrix, check_scalar
from ..errors import InvalidInputError
from .lasso import Lasso



def _rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise InvalidInputError(f"seed must be an int, a numpy Generator or None; got {seed!r}.")
    return np.random.default_rng(seed)


def gaussian_dictionary(m: int, n: int, seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """Gaussian dictionary ``A_ij ~ N(0, 1/m)`` with columns rescaled to unit l2 norm, shape (m, n)."""
    m, n = check_int(m, "m", minimum=1), check_int(n, "n", minimum=1)
    A = _rng(seed).normal(scale=1.0 / np.sqrt(m), size=(m, n))
    return A / np.linalg.norm(A, axis=0, keepdims=True)


@dataclass(frozen=True)
class SparseSample:
    """A batch drawn from :class:`SparseRecovery`: observations ``y`` (batch, m), the sparse codes
    ``x`` (batch, n) that generated them, and the noise ``noise`` (batch, m) that was added."""

    y: np.ndarray
    x: np.ndarray
    noise: np.ndarray

    def __len__(self) -> int:
        return self.y.shape[0]

    def __repr__(self) -> str:
        nnz = (self.x != 0).sum(axis=1)
        return (f"SparseSample(batch={len(self)}, m={self.y.shape[1]}, n={self.x.shape[1]}, "
                f"mean support={nnz.mean():.1f})")


class SparseRecovery:
    r"""Generator of sparse-recovery instances :math:`y = A x^\star + w`.

    Parameters
    ----------
    A : array_like, shape (m, n)
        The dictionary.  Use :meth:`gaussian` for the LISTA-CP/ALISTA dictionary.
    p : float
        Probability that a coordinate of :math:`x^\star` is nonzero (Bernoulli support), in [0, 1].
    snr_db : float or None
        Signal-to-noise ratio in dB; ``None`` (or ``inf``) gives noiseless data.  Per instance, the noise is
        white Gaussian with variance :math:`\|Ax^\star\|^2 / (m\,10^{\mathrm{SNR}/10})`, so that
        :math:`\mathbb{E}\|w\|^2 = \|Ax^\star\|^2 / 10^{\mathrm{SNR}/10}`.

    Examples
    --------
    >>> import unfoldtheory as ut
    >>> gen = ut.problems.SparseRecovery.gaussian(m=20, n=40, p=0.1, seed=0)
    >>> sample = gen.sample(8, seed=1)
    >>> sample.y.shape, sample.x.shape
    ((8, 20), (8, 40))
    """

    def __init__(self, A, p: float = 0.1, snr_db: float | None = None):
        self.A = check_matrix(A, "A")
        self.m, self.n = self.A.shape
        self.p = check_scalar(p, "p", low=0.0, high=1.0)
        if snr_db is not None and not (isinstance(snr_db, (int, float)) and np.isposinf(snr_db)):
            snr_db = check_scalar(snr_db, "snr_db")
        self.snr_db = None if snr_db is None or np.isposinf(snr_db) else float(snr_db)

    @classmethod
    def gaussian(cls, m: int, n: int, p: float = 0.1, snr_db: float | None = None,
                 seed: int | np.random.Generator | None = 0) -> "SparseRecovery":
        """The LISTA-CP/ALISTA set-up with a Gaussian dictionary drawn from ``seed``."""
        return cls(gaussian_dictionary(m, n, seed), p=p, snr_db=snr_db)

    def __repr__(self) -> str:
        snr = "inf" if self.snr_db is None else f"{self.snr_db:g}"
        return f"SparseRecovery(m={self.m}, n={self.n}, p={self.p:g}, snr_db={snr})"

    def lasso(self, lam: float) -> Lasso:
        """The LASSO problem on this dictionary with weight ``lam``."""
        return Lasso(self.A, lam)

    def sample(self, batch: int, seed: int | np.random.Generator | None = None) -> SparseSample:
        """Draw ``batch`` instances (float64).  The same seed gives the same instances."""
        batch = check_int(batch, "batch", minimum=1)
        rng = _rng(seed)
        support = rng.random((batch, self.n)) < self.p
        x = np.where(support, rng.standard_normal((batch, self.n)), 0.0)
        clean = x @ self.A.T
        if self.snr_db is None:
            noise = np.zeros_like(clean)
        else:
            power = np.einsum("bi,bi->b", clean, clean) / self.m
            std = np.sqrt(power / 10.0 ** (self.snr_db / 10.0))
            noise = std[:, None] * rng.standard_normal(clean.shape)
        return SparseSample(y=clean + noise, x=x, noise=noise)
