r"""The coupled LISTA family: :math:`x_k = \eta_{\theta_k}\big(x_{k-1} + W_k^T(y - A x_{k-1})\big)`.

All models here share the partial weight coupling :math:`W_2^{(k)} = I - W_1^{(k)} A` with
:math:`W_1^{(k)} = W_k^T` (Chen, Liu, Wang, Yin, NeurIPS 2018, eq. (5)); they differ in how :math:`W_k` is
parametrised:

============================  ========================================  =========  =======================
model                         :math:`W_k`                               paradigm   learned
============================  ========================================  =========  =======================
:class:`LearnedStepISTA`      :math:`\gamma_k A`                        1          steps, thresholds
:class:`ALISTA`               :math:`\gamma_k \tilde W` (analytic)      1          steps, thresholds
:class:`TiLISTA`              :math:`\gamma_k W` (one shared W)         2          W, steps, thresholds
:class:`LISTACP`              :math:`W_k` per layer                     2          W_k, thresholds
:class:`LISTACPSS`            LISTA-CP with support selection           2          W_k, thresholds
============================  ========================================  =========  =======================

Support selection (Chen et al. 2018, Sec. 3; ALISTA code ``shrink_ss``): in layer k the entries whose magnitude
exceeds the threshold **and** lies in the top :math:`q_k` percent of the instance bypass the shrinkage, with
:math:`q_k = \min(k p, p_{\max})` (k = 1..K; ALISTA defaults p = 1.2 %, p_max = 13 %).  The map is
discontinuous at the selection boundary, so a model with support selection has no analysis form.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .._validation import check_matrix, check_scalar
from ..errors import InvalidInputError, NotRepresentableError
from .base import UnfoldedNetwork, chain_form
from .functional import soft_threshold


def support_selection_schedule(num_layers: int, p: float, p_max: float) -> list[float]:
    """Percentages :math:`q_k = \\min(k p, p_{\\max})` for k = 1..K (ALISTA code: ``clip((t+1) p, 0, p_max)``)."""
    return [min((k + 1) * p, p_max) for k in range(num_layers)]


def check_support_selection(value: Any) -> tuple[float, float] | None:
    """Validate ``support_selection=(p, p_max)`` (percentages in (0, 100]) or ``None``."""
    if value is None:
        return None
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise InvalidInputError(f"support_selection must be None or a pair (p, p_max) of percentages; got {value!r}.")
    p = check_scalar(value[0], "support_selection p", low=0.0, high=100.0, low_inclusive=False)
    p_max = check_scalar(value[1], "support_selection p_max", low=0.0, high=100.0, low_inclusive=False)
    return p, p_max


def shrink_support_selection(z: torch.Tensor, theta: torch.Tensor, percent: float) -> torch.Tensor:
    """Soft threshold, except for entries with ``|z| > theta`` among the top ``percent`` % of each row."""
    n = z.shape[-1]
    keep = max(1, math.ceil(percent / 100.0 * n))
    mag = z.abs()
    kth = torch.topk(mag, keep, dim=-1).values[..., -1:]
    bypass = (mag >= kth) & (mag > theta)
    return torch.where(bypass, z, soft_threshold(z, theta))


class CoupledUnfolding(UnfoldedNetwork):
    """Base of the coupled family; subclasses define :meth:`layer_weight` (the m x n matrix W_k)."""

    def __init__(self, A: Any, num_layers: int, support_selection: Any = None, device: Any = None,
                 dtype: torch.dtype | None = None):
        A = check_matrix(A, "A")
        super().__init__(A.shape[0], A.shape[1], num_layers, A=A, device=device, dtype=dtype)
        self.L = float(np.linalg.norm(A, 2) ** 2)
        self.support_selection = check_support_selection(support_selection)
        self._percent = (None if self.support_selection is None
                         else support_selection_schedule(num_layers, *self.support_selection))

    def layer_weight(self, k: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def threshold(self, k: int) -> torch.Tensor:
        return self.theta[k]

    def extra_repr(self) -> str:
        ss = "" if self.support_selection is None else f", support_selection={self.support_selection}"
        return super().extra_repr() + ss

    def _iterate(self, y):
        A = self.A
        x = torch.zeros(y.shape[0], self.n, dtype=y.dtype, device=y.device)
        for k in range(self.num_layers):
            W = self.layer_weight(k)
            z = x + (y - x @ A.T) @ W if k else y @ W
            th = self.threshold(k)
            x = soft_threshold(z, th) if self._percent is None else shrink_support_selection(z, th, self._percent[k])
            yield x

    def form(self):
        if self.support_selection is not None:
            raise NotRepresentableError(
                f"{type(self).__name__} uses support selection, which is discontinuous at the selection "
                "boundary (not Lipschitz there), so it has no analysis form. Use support_selection=None, or "
                "analyses that do not need the form.")
        A = self._np(self.A)
        eye = np.eye(self.n)
        W1, W2, th = [], [], []
        for k in range(self.num_layers):
            Wk = self._np(self.layer_weight(k))
            W1.append(Wk.T)
            W2.append(eye - Wk.T @ A)
            th.append(np.broadcast_to(self._np(self.threshold(k)), (self.n,)).copy())
        self._check_thresholds(th)
        return chain_form(self.m, W1, W2, th, name=f"{type(self).__name__}(K={self.num_layers})")

    def weights(self) -> dict[str, list[np.ndarray]]:
        """The equivalent LISTA weights ``W1_k = W_k^T``, ``W2_k = I - W_k^T A``, ``theta_k`` (float64)."""
        A = self._np(self.A)
        W = [self._np(self.layer_weight(k)) for k in range(self.num_layers)]
        return {"W1": [w.T for w in W], "W2": [np.eye(self.n) - w.T @ A for w in W],
                "theta": [np.broadcast_to(self._np(self.threshold(k)), (self.n,)).copy()
                          for k in range(self.num_layers)]}


class LearnedStepISTA(CoupledUnfolding):
    r"""Unfolded ISTA with learned per-layer step sizes and thresholds (paradigm 1; SLISTA-like).

    .. math:: x_k = \eta_{\theta_k}\big(x_{k-1} - \gamma_k A^T(A x_{k-1} - y)\big), \quad x_0 = 0.

    Learned: :math:`\gamma_k` and :math:`\theta_k` (2K scalars).  Initialised as ISTA: :math:`\gamma_k = 1/L`,
    :math:`\theta_k = \lambda/L`.

    Reference: P. Ablin, T. Moreau, M. Massias, A. Gramfort, "Learning step sizes for unfolded sparse
    coding", NeurIPS 2019 (SLISTA learns the steps with :math:`\theta_k = \lambda\gamma_k`; here the threshold
    is free).
    """

    paradigm = 1
    per_layer = ("gamma", "theta")

    def __init__(self, A: Any, num_layers: int, lam: float = 0.1, device: Any = None,
                 dtype: torch.dtype | None = None):
        super().__init__(A, num_layers, device=device, dtype=dtype)
        lam = check_scalar(lam, "lam", low=0.0)
        self._record_config(A=check_matrix(A, "A"), num_layers=num_layers, lam=lam)
        self.gamma = nn.Parameter(self._tensor(np.full(num_layers, 1.0 / self.L)))
        self.theta = nn.Parameter(self._tensor(np.full(num_layers, lam / self.L)))

    def layer_weight(self, k):
        return self.gamma[k] * self.A


class ALISTA(CoupledUnfolding):
    r"""Analytic LISTA (paradigm 1): the weight is computed, only steps and thresholds are learned.

    .. math:: x_k = \eta_{\theta_k}\big(x_{k-1} - \gamma_k \tilde W^T(A x_{k-1} - y)\big), \quad x_0 = 0,

    with :math:`\tilde W` the analytic weight of stage 1,
    :math:`\tilde W \in \arg\min_W \|W^T A\|_F^2` s.t. :math:`\mathrm{diag}(W^T A) = 1`
    (:func:`unfoldtheory.coherence.analytic_weight`).  Learned: :math:`\gamma_k, \theta_k` (2K scalars).

    Reference: J. Liu, X. Chen, Z. Wang, W. Yin, "ALISTA: Analytic weights are as good as learned weights in
    LISTA", ICLR 2019, eqs. (16)-(17); Thm 1 gives linear convergence for
    :math:`\gamma_k \in (0, 2/(2\tilde\mu s - \tilde\mu + 1))` with
    :math:`\theta_k = \gamma_k \tilde\mu \sup\|x_k - x^\star\|_1`.

    Parameters
    ----------
    W : array_like (m, n), optional
        The stage-1 weight; computed from ``A`` when omitted.
    gamma0, theta0 : float
        Initial step and threshold of every layer.
    support_selection : (p, p_max) or None
        ALISTA's support selection (the paper uses (1.2, 13)); ``None`` keeps the analysis form.
    """

    paradigm = 1
    per_layer = ("gamma", "theta")

    def __init__(self, A: Any, num_layers: int, W: Any = None, gamma0: float = 1.0, theta0: float = 0.1,
                 support_selection: Any = None, device: Any = None, dtype: torch.dtype | None = None):
        A = check_matrix(A, "A")
        super().__init__(A, num_layers, support_selection=support_selection, device=device, dtype=dtype)
        if W is None:
            from ..coherence import analytic_weight

            W = analytic_weight(A)
        W = check_matrix(W, "W")
        if W.shape != A.shape:
            raise InvalidInputError(f"W must have the shape of A {A.shape}; got {W.shape}.")
        gamma0 = check_scalar(gamma0, "gamma0", low=0.0, low_inclusive=False)
        theta0 = check_scalar(theta0, "theta0", low=0.0)
        self._record_config(A=A, num_layers=num_layers, W=W, gamma0=gamma0, theta0=theta0,
                            support_selection=self.support_selection)
        self.register_buffer("W", self._tensor(W))
        self.gamma = nn.Parameter(self._tensor(np.full(num_layers, gamma0)))
        self.theta = nn.Parameter(self._tensor(np.full(num_layers, theta0)))

    def layer_weight(self, k):
        return self.gamma[k] * self.W


class TiLISTA(CoupledUnfolding):
    r"""Tied LISTA (paradigm 2): one learned weight shared by all layers, per-layer steps and thresholds.

    .. math:: x_k = \eta_{\theta_k}\big(x_{k-1} - \gamma_k W^T(A x_{k-1} - y)\big), \quad x_0 = 0.

    Learned: W (m x n, shared), :math:`\gamma_k, \theta_k`.  Initialised with :math:`W = A`,
    :math:`\gamma_k = 1/L`, :math:`\theta_k = \lambda/L` (ISTA).

    Reference: Liu et al., ALISTA, ICLR 2019, eq. (15).
    """

    paradigm = 2
    per_layer = ("gamma", "theta")

    def __init__(self, A: Any, num_layers: int, lam: float = 0.1, support_selection: Any = None,
                 device: Any = None, dtype: torch.dtype | None = None):
        A = check_matrix(A, "A")
        super().__init__(A, num_layers, support_selection=support_selection, device=device, dtype=dtype)
        lam = check_scalar(lam, "lam", low=0.0)
        self._record_config(A=A, num_layers=num_layers, lam=lam, support_selection=self.support_selection)
        self.W = nn.Parameter(self._tensor(A))
        self.gamma = nn.Parameter(self._tensor(np.full(num_layers, 1.0 / self.L)))
        self.theta = nn.Parameter(self._tensor(np.full(num_layers, lam / self.L)))

    def layer_weight(self, k):
        return self.gamma[k] * self.W


class LISTACP(CoupledUnfolding):
    r"""LISTA with partial weight coupling, LISTA-CP (paradigm 2).

    .. math:: x_k = \eta_{\theta_k}\big(x_{k-1} + W_k^T(y - A x_{k-1})\big), \quad x_0 = 0.

    Learned: :math:`W_k \in \mathbb{R}^{m\times n}` and :math:`\theta_k` per layer.  Initialised as ISTA
    (:math:`W_k = A/L`, :math:`\theta_k = \lambda/L`).

    Reference: X. Chen, J. Liu, Z. Wang, W. Yin, "Theoretical linear convergence of unfolded ISTA and its
    practical weights and thresholds", NeurIPS 2018 (Thm 2: linear rate
    :math:`\|x_k - x^\star\| \le sB e^{-ck}` under its assumptions).
    """

    paradigm = 2
    per_layer = ("Wk", "theta")
    _default_support_selection = None

    def __init__(self, A: Any, num_layers: int, lam: float = 0.1, support_selection: Any = "default",
                 device: Any = None, dtype: torch.dtype | None = None):
        A = check_matrix(A, "A")
        if isinstance(support_selection, str) and support_selection == "default":
            support_selection = self._default_support_selection
        super().__init__(A, num_layers, support_selection=support_selection, device=device, dtype=dtype)
        lam = check_scalar(lam, "lam", low=0.0)
        self._record_config(A=A, num_layers=num_layers, lam=lam, support_selection=self.support_selection)
        self.Wk = nn.Parameter(self._tensor(np.broadcast_to(A / self.L, (num_layers,) + A.shape)))
        self.theta = nn.Parameter(self._tensor(np.full(num_layers, lam / self.L)))

    def layer_weight(self, k):
        return self.Wk[k]


class LISTACPSS(LISTACP):
    r"""LISTA-CP with support selection, LISTA-CPSS (paradigm 2); no analysis form (discontinuous layers).

    Same recursion as :class:`LISTACP`, with the shrinkage replaced in layer k by support selection at
    :math:`q_k = \min(k p, p_{\max})` percent (default p = 1.2, p_max = 13, the ALISTA/LISTA-CPSS code).

    Reference: Chen et al., NeurIPS 2018, Sec. 3 (Thm 3: a faster linear rate with support selection).
    """

    _default_support_selection = (1.2, 13.0)
