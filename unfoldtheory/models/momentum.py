"""Unfolded proximal gradient with momentum: learned-step FISTA and HyperLISTA (paradigm 1)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .._validation import check_matrix, check_scalar
from ..errors import InvalidInputError, NotRepresentableError
from .base import UnfoldedNetwork, identity_matrix
from .functional import soft_threshold


def fista_momentum(num_layers: int) -> np.ndarray:
    r"""FISTA's momentum weights :math:`\beta_k = (t_{k-1} - 1)/t_k`, :math:`t_1 = 1`,
    :math:`t_{k+1} = (1 + \sqrt{1 + 4t_k^2})/2` (Beck & Teboulle 2009); :math:`\beta_1 = \beta_2 = 0`."""
    t = [1.0]
    for _ in range(num_layers):
        t.append((1 + np.sqrt(1 + 4 * t[-1] ** 2)) / 2)
    return np.array([0.0] + [(t[k - 1] - 1) / t[k] for k in range(1, num_layers)])


class UnfoldedFISTA(UnfoldedNetwork):
    r"""Unfolded FISTA with learned steps, thresholds and momentum (paradigm 1).

    .. math::

        v_k = x_{k-1} + \beta_k (x_{k-1} - x_{k-2}), \qquad
        x_k = \eta_{\theta_k}\big(v_k - \gamma_k A^T(A v_k - y)\big), \qquad x_0 = x_{-1} = 0.

    Learned: :math:`\gamma_k, \theta_k, \beta_k`.  Initialised as FISTA (Beck & Teboulle, SIAM J. Imaging Sci.
    2009): :math:`\gamma_k = 1/L`, :math:`\theta_k = \lambda/L`, :math:`\beta_k` from :func:`fista_momentum`.

    Analysis form (stacked state): layer k holds the block :math:`x_k` (soft threshold) and, for k < K, a copy of
    :math:`x_{k-1}` (identity, slope [1, 1]), so each layer reads only the previous layer.
    """

    paradigm = 1
    per_layer = ("gamma", "theta", "beta")

    def __init__(self, A: Any, num_layers: int, lam: float = 0.1, device: Any = None,
                 dtype: torch.dtype | None = None):
        A = check_matrix(A, "A")
        super().__init__(A.shape[0], A.shape[1], num_layers, A=A, device=device, dtype=dtype)
        lam = check_scalar(lam, "lam", low=0.0)
        self._record_config(A=A, num_layers=num_layers, lam=lam)
        self.L = float(np.linalg.norm(A, 2) ** 2)
        self.gamma = nn.Parameter(self._tensor(np.full(num_layers, 1.0 / self.L)))
        self.theta = nn.Parameter(self._tensor(np.full(num_layers, lam / self.L)))
        self.beta = nn.Parameter(self._tensor(fista_momentum(num_layers)))

    def _iterate(self, y):
        A = self.A
        x_prev = x = torch.zeros(y.shape[0], self.n, dtype=y.dtype, device=y.device)
        for k in range(self.num_layers):
            v = x + self.beta[k] * (x - x_prev)
            x_prev, x = x, soft_threshold(v - self.gamma[k] * ((v @ A.T - y) @ A), self.theta[k])
            yield x

    def form(self):
        from ..form import Block, Form, Identity, SoftThreshold

        A = self._np(self.A)
        g, th, b = self._np(self.gamma), self._np(self.theta), self._np(self.beta)
        self._check_thresholds([th[k:k + 1] for k in range(self.num_layers)])
        eye, n = identity_matrix(self.n), self.n
        blocks, x_idx, copy_idx = [], [], []   # copy_idx[k]: block holding x_{k-1} in layer k (or None)
        for k in range(self.num_layers):
            M = np.eye(n) - g[k] * (A.T @ A)
            inputs = {}
            if k >= 1:
                inputs[x_idx[k - 1]] = (1 + b[k]) * M
            if k >= 2:
                inputs[copy_idx[k - 1]] = -b[k] * M
            # the copy of x_{k-1}, needed by layer k+1 as x_{(k+1)-2}
            if 1 <= k < self.num_layers - 1:
                blocks.append(Block(Identity(n), inputs={x_idx[k - 1]: eye}, layer=k + 1, name=f"copy{k}"))
                copy_idx.append(len(blocks) - 1)
            else:
                copy_idx.append(None)
            blocks.append(Block(SoftThreshold(th[k], size=n), inputs=inputs, B=g[k] * A.T, layer=k + 1,
                                name=f"x{k + 1}"))
            x_idx.append(len(blocks) - 1)
        return Form(self.m, blocks, output={x_idx[-1]: eye}, layer_outputs=[{i: eye} for i in x_idx],
                    name=f"UnfoldedFISTA(K={self.num_layers})")


class HyperLISTA(UnfoldedNetwork):
    r"""HyperLISTA-style network with three learned scalars (paradigm 1).

    .. math::

        z_k &= x_k - \gamma \tilde W^T(A x_k - y) + \beta_k (x_k - x_{k-1}),\\
        \beta_k &= c_\beta \|x_k\|_0, \qquad \theta_k = c_\theta\,\gamma\,\|A^+(A x_k - y)\|_1, \qquad
        x_{k+1} = \eta_{\theta_k}(z_k),

    with :math:`\tilde W` the ALISTA analytic weight and :math:`A^+` the pseudo-inverse.  Learned:
    :math:`\gamma, c_\theta, c_\beta`.  The thresholds and momentum are computed from the instance (the
    practical rules of the paper), so the layers are not fixed elementwise maps: no analysis form.

    Reference: X. Chen, J. Liu, Z. Wang, W. Yin, "Hyperparameter tuning is all you need for LISTA",
    NeurIPS 2021 (support selection omitted here).
    """

    paradigm = 1
    nonnegative = ("gamma", "c_theta", "c_beta")

    def __init__(self, A: Any, num_layers: int, gamma0: float = 1.0, c_theta0: float = 0.02,
                 c_beta0: float = 0.0, device: Any = None, dtype: torch.dtype | None = None,
                 lam: float | None = None):
        if lam is not None:
            raise InvalidInputError(
                "HyperLISTA takes no lam: its thresholds are computed from each instance "
                "(theta_k = c_theta * gamma * ||A^+(A x_k - y)||_1); set their initial scale with c_theta0 "
                f"(default 0.02) instead of lam={lam!r}.")
        A = check_matrix(A, "A")
        super().__init__(A.shape[0], A.shape[1], num_layers, A=A, device=device, dtype=dtype)
        from ..coherence import analytic_weight

        self._record_config(A=A, num_layers=num_layers, gamma0=gamma0, c_theta0=c_theta0, c_beta0=c_beta0)
        self.register_buffer("W", self._tensor(analytic_weight(A)))
        self.register_buffer("A_pinv", self._tensor(np.linalg.pinv(A)))
        self.gamma = nn.Parameter(self._tensor(check_scalar(gamma0, "gamma0", low=0.0, low_inclusive=False)))
        self.c_theta = nn.Parameter(self._tensor(check_scalar(c_theta0, "c_theta0", low=0.0)))
        self.c_beta = nn.Parameter(self._tensor(check_scalar(c_beta0, "c_beta0", low=0.0)))

    def _iterate(self, y):
        A = self.A
        x_prev = x = torch.zeros(y.shape[0], self.n, dtype=y.dtype, device=y.device)
        for _ in range(self.num_layers):
            r = x @ A.T - y
            theta = self.c_theta * self.gamma * (r @ self.A_pinv.T).abs().sum(dim=1, keepdim=True)
            beta = self.c_beta * (x != 0).sum(dim=1, keepdim=True).to(y.dtype)
            z = x - self.gamma * (r @ self.W) + beta * (x - x_prev)
            x_prev, x = x, soft_threshold(z, theta)
            yield x

    def form(self):
        raise NotRepresentableError(
            "HyperLISTA computes its thresholds and momentum from the instance (theta_k depends on the "
            "residual, beta_k on the support size), so its layers are not fixed elementwise maps and it has "
            "no analysis form. Use ALISTA (fixed per-layer parameters) for form-based certificates.")
