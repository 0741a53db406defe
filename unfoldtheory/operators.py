"""Proximal operators in float64 numpy, shared by the problems, the analysis form and the tests.

The torch counterparts used inside models live in :mod:`unfoldtheory.models.functional`.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def soft_threshold(z: np.ndarray, theta: np.ndarray | float) -> np.ndarray:
    r"""Soft threshold :math:`\eta_\theta(z) = \operatorname{sign}(z)\max(|z| - \theta, 0)`, elementwise.

    It is the proximal operator of :math:`\theta\|\cdot\|_1` for :math:`\theta \ge 0`: firmly nonexpansive,
    with slope in [0, 1].  ``theta`` broadcasts against ``z`` (a scalar or one threshold per coordinate).
    Floating inputs keep their precision (``np.longdouble`` stays extended); anything else becomes float64.
    """
    z = as_floating(z)
    return np.sign(z) * np.maximum(np.abs(z) - theta, 0.0)


def as_floating(z: Any) -> np.ndarray:
    """``z`` as a floating array: float64 unless it already is floating (then its precision is kept)."""
    z = np.asarray(z)
    return z if np.issubdtype(z.dtype, np.floating) else z.astype(np.float64)


def singular_value_threshold(X: np.ndarray, tau: float) -> np.ndarray:
    r"""Singular value thresholding :math:`U \max(\Sigma - \tau, 0) V^T`, the prox of :math:`\tau\|\cdot\|_*`.

    Acts on the last two axes, so a stack of matrices is thresholded matrix by matrix.  It is not an
    elementwise map, so networks that use it have no analysis form (see :mod:`unfoldtheory.form`).
    """
    U, s, Vt = np.linalg.svd(np.asarray(X, dtype=float), full_matrices=False)
    return (U * np.maximum(s - tau, 0.0)[..., None, :]) @ Vt
