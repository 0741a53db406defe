"""Unfolded robust PCA: learned singular-value and soft thresholds."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .._validation import check_int, check_scalar
from ..errors import InvalidInputError, NotRepresentableError
from .base import UnfoldedNetwork
from .functional import soft_threshold


def singular_value_threshold(X: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """Torch singular value thresholding on the last two axes (differentiable)."""
    U, s, Vh = torch.linalg.svd(X, full_matrices=False)
    return (U * torch.relu(s - tau).unsqueeze(-2)) @ Vh


class UnfoldedRPCA(UnfoldedNetwork):
    r"""Unfolded alternating proximal minimisation for robust PCA (paradigm 1; CORONA-like thresholds).

    .. math::

        L_k = \mathrm{SVT}_{\tau_k}(M - S_{k-1}), \qquad S_k = \eta_{\lambda_k}(M - L_k), \qquad S_0 = 0,

    block-coordinate minimisation of :math:`\tfrac12\|M - L - S\|_F^2 + \tau\|L\|_* + \lambda\|S\|_1`, with the
    per-layer thresholds :math:`\tau_k, \lambda_k \ge 0` learned.  ``forward(M)`` takes one matrix
    (n1, n2) or a batch (batch, n1, n2) and returns the pair ``(L_K, S_K)``; ``return_all=True`` returns the
    list of pairs.  Singular value thresholding is not elementwise, so the network has no analysis form.

    References: O. Solomon, R. Cohen, Y. Zhang, et al., "Deep unfolded robust PCA with application to
    clutter suppression in ultrasound" (CORONA), IEEE TMI 2020; Candès, Li, Ma, Wright, J. ACM 2011.
    """

    paradigm = 1
    per_layer = ("tau", "lam")
    nonnegative = ("tau", "lam")

    def __init__(self, shape: tuple[int, int], num_layers: int, tau0: float = 1.0, lam0: float | None = None,
                 device: Any = None, dtype: torch.dtype | None = None):
        if not (isinstance(shape, (tuple, list)) and len(shape) == 2):
            raise InvalidInputError(f"shape must be a pair (n1, n2); got {shape!r}.")
        n1, n2 = check_int(shape[0], "shape[0]", minimum=1), check_int(shape[1], "shape[1]", minimum=1)
        super().__init__(n1 * n2, n1 * n2, num_layers, device=device, dtype=dtype)
        self.shape = (n1, n2)
        tau0 = check_scalar(tau0, "tau0", low=0.0)
        lam0 = 1.0 / np.sqrt(max(n1, n2)) if lam0 is None else check_scalar(lam0, "lam0", low=0.0)
        self._record_config(shape=[n1, n2], num_layers=num_layers, tau0=tau0, lam0=lam0)
        self.tau = nn.Parameter(self._tensor(np.full(num_layers, tau0)))
        self.lam = nn.Parameter(self._tensor(np.full(num_layers, lam0)))

    def extra_repr(self) -> str:
        return f"shape={self.shape}, num_layers={self.num_layers}, dtype={self.dtype}, device={self.device}"

    def _input_spec(self):
        return "M", self.shape, ""

    def _iterate(self, M):
        S = torch.zeros_like(M)
        for k in range(self.num_layers):
            L = singular_value_threshold(M - S, self.tau[k])
            S = soft_threshold(M - L, self.lam[k])
            yield L, S

    def forward(self, M: Any, return_all: bool = False):
        X, single = self._prepare(M)
        outs = list(self._iterate(X)) if return_all else [list(self._iterate(X))[-1]]
        if single:
            outs = [(L[0], S[0]) for L, S in outs]
        return outs if return_all else outs[0]

    def form(self):
        raise NotRepresentableError(
            "UnfoldedRPCA uses singular value thresholding, which is not an elementwise map, so the network "
            "has no analysis form. Layer-wise bounds (SVT and the soft threshold are both nonexpansive) still "
            "apply.")
