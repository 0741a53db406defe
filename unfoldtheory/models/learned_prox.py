"""Unrolled proximal gradient whose prox is a learned network (paradigm 4, ISTA-Net-like)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .._validation import check_int, check_matrix, check_scalar
from .base import UnfoldedNetwork, identity_matrix
from .functional import soft_threshold


class LearnedProxISTA(UnfoldedNetwork):
    r"""Unrolled proximal gradient with a learned prox in a learned transform (paradigm 4, DNN inductive bias).

    .. math::

        r_k = x_{k-1} + \gamma_k A^T(y - A x_{k-1}), \qquad x_k = D_k\,\eta_{\theta_k}(E_k r_k), \qquad x_0 = 0,

    the core of ISTA-Net (J. Zhang, B. Ghanem, CVPR 2018), where the prox of a sparsity prior in a learned
    transform :math:`E_k` is followed by a learned (approximate) inverse :math:`D_k`; here :math:`E_k`
    (``width`` x n) and :math:`D_k` (n x ``width``) are dense layers rather than convolutions.  Learned:
    :math:`\gamma_k, E_k, D_k, \theta_k`.  With ``width >= n`` the initialisation :math:`E_k = [I; 0]`,
    :math:`D_k = E_k^T`, :math:`\gamma_k = 1/L`, :math:`\theta_k = \lambda/L` is exactly ISTA.

    Analysis form: per layer a soft-threshold block (the transform coefficients) and an identity block
    (:math:`x_k = D_k h_k`).
    """

    paradigm = 4
    per_layer = ("gamma", "E", "D", "theta")

    def __init__(self, A: Any, num_layers: int, lam: float = 0.1, width: int | None = None, device: Any = None,
                 dtype: torch.dtype | None = None):
        A = check_matrix(A, "A")
        super().__init__(A.shape[0], A.shape[1], num_layers, A=A, device=device, dtype=dtype)
        lam = check_scalar(lam, "lam", low=0.0)
        width = self.n if width is None else check_int(width, "width", minimum=1)
        self._record_config(A=A, num_layers=num_layers, lam=lam, width=width)
        self.L = float(np.linalg.norm(A, 2) ** 2)
        E = np.eye(width, self.n)
        K = num_layers
        self.gamma = nn.Parameter(self._tensor(np.full(K, 1.0 / self.L)))
        self.E = nn.Parameter(self._tensor(np.broadcast_to(E, (K, width, self.n))))
        self.D = nn.Parameter(self._tensor(np.broadcast_to(E.T, (K, self.n, width))))
        self.theta = nn.Parameter(self._tensor(np.full(K, lam / self.L)))

    def _iterate(self, y):
        A = self.A
        x = torch.zeros(y.shape[0], self.n, dtype=y.dtype, device=y.device)
        for k in range(self.num_layers):
            r = x + self.gamma[k] * ((y - x @ A.T) @ A)
            x = soft_threshold(r @ self.E[k].T, self.theta[k]) @ self.D[k].T
            yield x

    def form(self):
        from ..form import Block, Form, Identity, SoftThreshold

        A = self._np(self.A)
        g, E, D, th = (self._np(t) for t in (self.gamma, self.E, self.D, self.theta))
        self._check_thresholds([th[k:k + 1] for k in range(self.num_layers)])
        width = E.shape[1]
        blocks, x_idx = [], []
        for k in range(self.num_layers):
            inputs = {} if k == 0 else {x_idx[-1]: E[k] @ (np.eye(self.n) - g[k] * (A.T @ A))}
            blocks.append(Block(SoftThreshold(th[k], size=width), inputs=inputs, B=g[k] * (E[k] @ A.T),
                                layer=k + 1, name=f"h{k + 1}"))
            blocks.append(Block(Identity(self.n), inputs={len(blocks) - 1: D[k]}, layer=k + 1, name=f"x{k + 1}"))
            x_idx.append(len(blocks) - 1)
        eye = identity_matrix(self.n)
        return Form(self.m, blocks, output={x_idx[-1]: eye}, layer_outputs=[{i: eye} for i in x_idx],
                    name=f"LearnedProxISTA(K={self.num_layers})")
