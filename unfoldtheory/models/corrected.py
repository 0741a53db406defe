"""ISTA with a learned correction term (paradigm 3)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .._validation import check_int, check_matrix, check_scalar
from .base import UnfoldedNetwork, identity_matrix
from .functional import soft_threshold


class CorrectedISTA(UnfoldedNetwork):
    r"""Classical ISTA plus a small learned network per layer (paradigm 3, learned correction terms).

    .. math::

        h_k &= \mathrm{ReLU}(V_k x_{k-1} + R_k y + c_k), \\
        x_k &= \eta_{\gamma\lambda}\big(x_{k-1} + \gamma A^T(y - A x_{k-1}) + U_k h_k\big), \qquad x_0 = 0.

    The classical part (step :math:`\gamma = 1/L`, threshold :math:`\gamma\lambda`) is fixed; the one-hidden-layer
    MLP correction :math:`(U_k, V_k, R_k, c_k)` with ``hidden`` units is learned.  :math:`U_k = 0` at
    initialisation, so the untrained network is ISTA.  In the analysis form the MLP is an extra ReLU block per
    layer (slope [0, 1]).

    References: hybrid ISTA / neural-augmented ALISTA (e.g. J. Overdevest et al., IEEE TRS 2024) learn such
    correction terms; this is the plain MLP variant.
    """

    paradigm = 3
    per_layer = ("U", "V", "R", "c")
    nonnegative = ()

    def __init__(self, A: Any, num_layers: int, lam: float = 0.1, hidden: int = 32, seed: int = 0,
                 device: Any = None, dtype: torch.dtype | None = None):
        A = check_matrix(A, "A")
        super().__init__(A.shape[0], A.shape[1], num_layers, A=A, device=device, dtype=dtype)
        self.lam = check_scalar(lam, "lam", low=0.0)
        hidden = check_int(hidden, "hidden", minimum=1)
        self._record_config(A=A, num_layers=num_layers, lam=self.lam, hidden=hidden, seed=seed)
        self.L = float(np.linalg.norm(A, 2) ** 2)
        self.step = 1.0 / self.L
        rng = np.random.default_rng(seed)
        K, n, m = num_layers, self.n, self.m
        self.U = nn.Parameter(self._tensor(np.zeros((K, n, hidden))))
        self.V = nn.Parameter(self._tensor(rng.normal(scale=1 / np.sqrt(n), size=(K, hidden, n))))
        self.R = nn.Parameter(self._tensor(rng.normal(scale=1 / np.sqrt(m), size=(K, hidden, m))))
        self.c = nn.Parameter(self._tensor(np.zeros((K, hidden))))

    def _iterate(self, y):
        A, g, th = self.A, self.step, self.step * self.lam
        x = torch.zeros(y.shape[0], self.n, dtype=y.dtype, device=y.device)
        for k in range(self.num_layers):
            h = torch.relu(x @ self.V[k].T + y @ self.R[k].T + self.c[k])
            x = soft_threshold(x + g * ((y - x @ A.T) @ A) + h @ self.U[k].T, th)
            yield x

    def form(self):
        from ..form import Block, Form, ReLU, SoftThreshold

        A = self._np(self.A)
        U, V, R, c = (self._np(t) for t in (self.U, self.V, self.R, self.c))
        M = np.eye(self.n) - self.step * (A.T @ A)
        blocks, x_idx = [], []
        for k in range(self.num_layers):
            prev = {} if k == 0 else {x_idx[-1]: V[k]}
            blocks.append(Block(ReLU(V.shape[1]), inputs=prev, B=R[k], b=c[k], layer=k + 1, name=f"h{k + 1}"))
            inputs = {len(blocks) - 1: U[k]}
            if k:
                inputs[x_idx[-1]] = M
            blocks.append(Block(SoftThreshold(self.step * self.lam, size=self.n), inputs=inputs,
                                B=self.step * A.T, layer=k + 1, name=f"x{k + 1}"))
            x_idx.append(len(blocks) - 1)
        eye = identity_matrix(self.n)
        return Form(self.m, blocks, output={x_idx[-1]: eye}, layer_outputs=[{i: eye} for i in x_idx],
                    name=f"CorrectedISTA(K={self.num_layers})")
