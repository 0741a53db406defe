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


class _SVT(torch.autograd.Function):
    r"""Singular value thresholding with a backward pass that stays finite at repeated or zero singular values.

    For :math:`F(X) = U\,\mathrm{diag}(f(\sigma))V^T` with :math:`f(\sigma) = (\sigma - \tau)_+` and
    :math:`\hat G = U^T G V`, the gradient is (Lewis & Sendov 2005; Candès, Sing-Long & Trzasko, IEEE TSP 2013,
    Thm IV.3) :math:`U A V^T + (I - UU^T) G V \mathrm{diag}(f/\sigma) V^T + U \mathrm{diag}(f/\sigma) U^T G (I -
    VV^T)`, with :math:`A_{ii} = f'(\sigma_i)\hat G_{ii}` and, for :math:`i \ne j`,
    :math:`A_{ij} = \tfrac12\frac{f_i - f_j}{\sigma_i - \sigma_j}(\hat G_{ij} + \hat G_{ji}) +
    \tfrac12\frac{f_i + f_j}{\sigma_i + \sigma_j}(\hat G_{ij} - \hat G_{ji})`.  Every ratio lies in [0, 1]
    (f is 1-Lipschitz, nondecreasing, with 0 <= f(s) <= s) and is replaced by its limit where the denominator
    vanishes, whereas torch's generic SVD backward divides by :math:`\sigma_i^2 - \sigma_j^2` and returns NaN
    on rank-deficient inputs.  :math:`\partial F/\partial\tau = -U\,\mathrm{diag}(1[\sigma > \tau])V^T`.
    """

    @staticmethod
    def forward(ctx, X, tau):
        U, s, Vh = torch.linalg.svd(X, full_matrices=False)
        ctx.save_for_backward(U, s, Vh, tau)
        return (U * torch.relu(s - tau).unsqueeze(-2)) @ Vh

    @staticmethod
    def backward(ctx, G):
        U, s, Vh, tau = ctx.saved_tensors
        V = Vh.transpose(-1, -2)
        f = torch.relu(s - tau)
        fp = (s > tau).to(s.dtype)
        tiny = torch.finfo(s.dtype).eps * s.amax(-1, keepdim=True).clamp_min(torch.finfo(s.dtype).tiny)
        si, sj = s.unsqueeze(-1), s.unsqueeze(-2)
        fi, fj = f.unsqueeze(-1), f.unsqueeze(-2)
        d_minus, d_plus = si - sj, si + sj
        mean_fp = 0.5 * (fp.unsqueeze(-1) + fp.unsqueeze(-2))
        r_minus = torch.where(d_minus.abs() > tiny.unsqueeze(-1), (fi - fj) / torch.where(
            d_minus.abs() > tiny.unsqueeze(-1), d_minus, torch.ones_like(d_minus)), mean_fp)
        r_plus = torch.where(d_plus > tiny.unsqueeze(-1), (fi + fj) / torch.where(
            d_plus > tiny.unsqueeze(-1), d_plus, torch.ones_like(d_plus)), mean_fp)
        Gh = U.transpose(-1, -2) @ G @ V
        sym, skew = Gh + Gh.transpose(-1, -2), Gh - Gh.transpose(-1, -2)
        A = 0.5 * r_minus * sym + 0.5 * r_plus * skew
        eye = torch.eye(s.shape[-1], dtype=s.dtype, device=s.device)
        A = A * (1 - eye) + torch.diag_embed(fp * torch.diagonal(Gh, dim1=-2, dim2=-1))
        ratio = torch.where(s > tiny, f / torch.where(s > tiny, s, torch.ones_like(s)), fp)
        GV = G @ V
        UtG = U.transpose(-1, -2) @ G
        dX = U @ A @ Vh
        dX = dX + (GV - U @ (U.transpose(-1, -2) @ GV)) * ratio.unsqueeze(-2) @ Vh
        dX = dX + U @ (ratio.unsqueeze(-1) * (UtG - (UtG @ V) @ Vh))
        dtau = -(fp * torch.diagonal(Gh, dim1=-2, dim2=-1)).sum(-1)
        dtau = dtau.sum() if tau.dim() == 0 else dtau.reshape(tau.shape) if dtau.shape == tau.shape else \
            dtau.sum().reshape(tau.shape)
        return dX, dtau


def singular_value_threshold(X: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """Torch singular value thresholding on the last two axes, differentiable in ``X`` and ``tau`` with a
    backward pass that is finite on rank-deficient inputs (see :class:`_SVT`)."""
    tau = torch.as_tensor(tau, dtype=X.dtype, device=X.device)
    return _SVT.apply(X, tau)


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
