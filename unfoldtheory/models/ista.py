"""Classical ISTA unrolled into K layers (nothing trainable)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from .._validation import check_matrix, check_scalar
from ..errors import InvalidInputError
from ..form import Form
from .base import UnfoldedNetwork, chain_form
from .functional import soft_threshold


class ISTA(UnfoldedNetwork):
    r"""K iterations of ISTA for the LASSO :math:`\tfrac12\|Ax-y\|^2 + \lambda\|x\|_1`, as a network.

    .. math::

        x_k = \eta_{\gamma\lambda}\big(x_{k-1} + \gamma A^T(y - A x_{k-1})\big), \qquad x_0 = 0,

    i.e. :math:`x_k = \eta_\theta(W_2 x_{k-1} + W_1 y)` with :math:`W_1 = \gamma A^T`,
    :math:`W_2 = I - \gamma A^T A`, :math:`\theta = \gamma\lambda`.  Nothing is trainable (all tensors are
    buffers).  With :math:`\gamma \in (0, 2/L)`, :math:`L = \|A\|_2^2`, the iterates converge to a LASSO
    minimiser; :math:`F(x_k) - F^\star \le L\|x_0 - x^\star\|^2/(2k)` for :math:`\gamma = 1/L`
    (Beck & Teboulle, SIAM J. Imaging Sci. 2009, Thm 3.1).

    Parameters
    ----------
    A : array_like (m, n)
    num_layers : int, >= 1
    lam : float, >= 0 (required: the LASSO weight of the ISTA being unrolled)
    step : float, optional
        :math:`\gamma`; defaults to :math:`1/L`.  Steps >= 2/L are allowed (the network is still defined) but
        warn, since ISTA then need not converge.
    device, dtype : torch device (default CUDA when available) and float32 (default) or float64.

    Every zoo model takes ``(A, num_layers, lam=..., ...)``.  The old order ``ISTA(A, lam, num_layers)`` still
    works and emits a :class:`DeprecationWarning`.
    """

    def __init__(self, A: Any, num_layers: int | None = None, *args: Any, lam: float | None = None,
                 step: float | None = None, device: Any = None, dtype: torch.dtype | None = None):
        if args:  # the old positional order ISTA(A, lam, num_layers[, step, device, dtype])
            if lam is not None:
                raise InvalidInputError("lam was given twice (by keyword and in the old positional order "
                                        "ISTA(A, lam, num_layers)); use ISTA(A, num_layers, lam=...).")
            warnings.warn("ISTA(A, lam, num_layers) is deprecated: every zoo model takes (A, num_layers, lam=...); "
                          "write ISTA(A, num_layers, lam=lam).", DeprecationWarning, stacklevel=2)
            old = dict(zip(("step", "device", "dtype"), args[1:]))
            lam, num_layers = num_layers, args[0]
            step, device, dtype = old.get("step", step), old.get("device", device), old.get("dtype", dtype)
        if num_layers is None:
            raise InvalidInputError("num_layers is required: ISTA(A, num_layers, lam=...).")
        if lam is None:
            raise InvalidInputError("lam is required: ISTA(A, num_layers, lam=...) unrolls ISTA for the LASSO "
                                    "0.5||Ax - y||^2 + lam ||x||_1 (there is no default LASSO weight).")
        A = check_matrix(A, "A")
        super().__init__(A.shape[0], A.shape[1], num_layers, A=A, device=device, dtype=dtype)
        self.lam = check_scalar(lam, "lam", low=0.0)
        self._record_config(A=A, lam=self.lam, num_layers=num_layers, step=step)
        self.L = float(np.linalg.norm(A, 2) ** 2)
        if step is None:
            step = 1.0 / self.L
        self.step = check_scalar(step, "step", low=0.0, low_inclusive=False)
        if self.step * self.L >= 2:
            warnings.warn(f"ISTA step {self.step:g} >= 2/L = {2 / self.L:g}: the iteration need not converge.",
                          stacklevel=2)

    @property
    def threshold(self) -> float:
        """The threshold :math:`\\gamma\\lambda` of every layer."""
        return self.step * self.lam

    def extra_repr(self) -> str:
        return super().extra_repr() + f", lam={self.lam:g}, step={self.step:.4g} (= {self.step * self.L:.3g}/L)"

    def _iterate(self, y):
        A, g, th = self.A, self.step, self.threshold
        x = soft_threshold(g * (y @ A), th)
        yield x
        for _ in range(self.num_layers - 1):
            x = soft_threshold(x + g * ((y - x @ A.T) @ A), th)
            yield x

    def form(self) -> Form:
        A = self._np(self.A)
        W1 = self.step * A.T
        W2 = np.eye(self.n) - self.step * (A.T @ A)
        return chain_form(self.m, [W1] * self.num_layers, [W2] * self.num_layers,
                           [np.full(self.n, self.threshold)] * self.num_layers, name=f"ISTA(K={self.num_layers})")
