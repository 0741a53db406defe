"""Unfolded ADMM for the LASSO (stacked state)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .._validation import check_matrix, check_scalar
from .base import UnfoldedNetwork, identity_matrix
from .functional import soft_threshold


class UnfoldedADMM(UnfoldedNetwork):
    r"""K iterations of ADMM for :math:`\min \tfrac12\|Ax-y\|^2 + \lambda\|z\|_1` s.t. :math:`x = z`, with learned
    per-layer penalties and thresholds (paradigm 1).

    .. math::

        x_k &= (A^TA + \rho_k I)^{-1}\big(A^T y + \rho_k (z_{k-1} - u_{k-1})\big),\\
        z_k &= \eta_{\theta_k}(x_k + u_{k-1}), \qquad u_k = u_{k-1} + x_k - z_k, \qquad z_0 = u_0 = 0.

    The output is :math:`z_k` (the sparse variable).  Learned: :math:`\rho_k > 0` (through
    :math:`\log\rho_k`) and :math:`\theta_k \ge 0`; classical ADMM has :math:`\theta_k = \lambda/\rho`
    (S. Boyd et al., "Distributed optimization and statistical learning via ADMM", FnT ML 2011, Sec. 6.4),
    which is the initialisation.  The inverse uses the eigendecomposition of :math:`A^TA`, so it is
    differentiable in :math:`\rho_k`.

    Analysis form: per layer three blocks, :math:`x_k` and :math:`u_k` linear (identity, slope [1, 1]) and
    :math:`z_k` soft-thresholded; each layer reads only the previous one.
    """

    paradigm = 1
    per_layer = ("log_rho", "theta")

    def __init__(self, A: Any, num_layers: int, lam: float = 0.1, rho0: float = 1.0, device: Any = None,
                 dtype: torch.dtype | None = None):
        A = check_matrix(A, "A")
        super().__init__(A.shape[0], A.shape[1], num_layers, A=A, device=device, dtype=dtype)
        lam = check_scalar(lam, "lam", low=0.0)
        rho0 = check_scalar(rho0, "rho0", low=0.0, low_inclusive=False)
        self._record_config(A=A, num_layers=num_layers, lam=lam, rho0=rho0)
        s, V = np.linalg.eigh(A.T @ A)
        self.register_buffer("eig", self._tensor(np.maximum(s, 0.0)))
        self.register_buffer("V", self._tensor(V))
        self.log_rho = nn.Parameter(self._tensor(np.full(num_layers, np.log(rho0))))
        self.theta = nn.Parameter(self._tensor(np.full(num_layers, lam / rho0)))

    def _solve(self, rhs: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
        return ((rhs @ self.V) / (self.eig + rho)) @ self.V.T

    def _iterate(self, y):
        Aty = y @ self.A
        z = u = torch.zeros(y.shape[0], self.n, dtype=y.dtype, device=y.device)
        for k in range(self.num_layers):
            rho = self.log_rho[k].exp()
            x = self._solve(Aty + rho * (z - u), rho)
            z_new = soft_threshold(x + u, self.theta[k])
            u = u + x - z_new
            z = z_new
            yield z

    def form(self):
        from ..form import Block, Form, Identity, SoftThreshold

        A, V, s = self._np(self.A), self._np(self.V), self._np(self.eig)
        rho, th = np.exp(self._np(self.log_rho)), self._np(self.theta)
        self._check_thresholds([th[k:k + 1] for k in range(self.num_layers)])
        n, eye = self.n, identity_matrix(self.n)
        blocks, z_idx, u_idx = [], [], []
        for k in range(self.num_layers):
            M = (V / (s + rho[k])) @ V.T
            x_in = {} if k == 0 else {z_idx[-1]: rho[k] * M, u_idx[-1]: -rho[k] * M}
            blocks.append(Block(Identity(n), inputs=x_in, B=M @ A.T, layer=k + 1, name=f"x{k + 1}"))
            xi = len(blocks) - 1
            z_in = {xi: eye} if k == 0 else {xi: eye, u_idx[-1]: eye}
            blocks.append(Block(SoftThreshold(th[k], size=n), inputs=z_in, layer=k + 1, name=f"z{k + 1}"))
            zi = len(blocks) - 1
            if k < self.num_layers - 1:  # u_K is never read
                u_in = {xi: eye, zi: -eye} if k == 0 else {u_idx[-1]: eye, xi: eye, zi: -eye}
                blocks.append(Block(Identity(n), inputs=u_in, layer=k + 1, name=f"u{k + 1}"))
                u_idx.append(len(blocks) - 1)
            z_idx.append(zi)
        return Form(self.m, blocks, output={z_idx[-1]: eye}, layer_outputs=[{i: eye} for i in z_idx],
                    name=f"UnfoldedADMM(K={self.num_layers})")
