r"""Linear (symbolic) bound propagation over a box: CROWN / Fast-Lin-style pre-activation bounds for a form.

For a box :math:`D = [y_{lo}, y_{hi}]` (or an l2 ball) every pre-activation :math:`z_{k,i}(y)` gets an interval valid for all
:math:`y \in D` (``docs/theory/exact_lipschitz.md §7``).  Unlike interval propagation, which forgets the
correlation between neurons and explodes with depth, each bound is a *linear function of y* obtained by
back-substituting through every earlier block:

* every neuron of an earlier block :math:`j` with pre-activation interval :math:`[l, u]` is enclosed by a
  lower and an upper line :math:`s_{lo} z + b_{lo} \le \sigma(z) \le s_{hi} z + b_{hi}` on :math:`[l, u]`.
  Each slope is chosen among the chord slope :math:`(\sigma(u) - \sigma(l))/(u - l)` and the activation's
  extreme slopes (0 and 1 for a soft threshold, a ReLU or a clip) as the one whose line, pushed to touch
  :math:`\sigma`, encloses the least area over :math:`[l, u]` (the adaptive choice of CROWN; for a line of
  slope :math:`s` through :math:`[l, u]` the area against :math:`\sigma` is :math:`(u - l)` times its gap at the
  midpoint, so the slope minimising (upper) or maximising (lower) :math:`s (l + u)/2 + b(s)` wins).  The
  offset of slope :math:`s` is the max (upper) or min (lower) of :math:`\sigma(p) - s p` over the end points
  and the kinks inside :math:`[l, u]`, exact for a piecewise linear :math:`\sigma` (:math:`\sigma -
  s\,\mathrm{id}` is piecewise linear, its extremes lie at those points), so the enclosure is sound for every
  choice; a neuron inside one linear piece is exact (both lines are the piece);
* the rows :math:`\pm e_i^T z_k` are propagated backwards (:math:`z_j = \sum_i A_{ji} w_i + B_j y + b_j`),
  choosing the upper or lower line of each neuron by the sign of its coefficient, until only
  :math:`\Gamma y + c` is left, which is maximised over the box in closed form.

This is the Fast-Lin / CROWN relaxation (T.-W. Weng et al., "Towards fast computation of certified
robustness for ReLU networks", ICML 2018; H. Zhang et al., "Efficient neural network robustness certification
with general activation functions", NeurIPS 2018; G. Singh et al., "An abstract domain for certifying neural
networks" (DeepPoly), POPL 2019) written for the analysis form: input injection into every block, blocks that
read several earlier blocks, soft thresholds and clips.  Every interval is intersected with the interval-
propagation one (both are sound).

Rounding: the relaxation offsets are widened by a rounding bound of their own evaluation, and each propagated
bound by :math:`\gamma_n` times the same back-substitution run on absolute values (the standard a-priori bound
on a floating-point sum of products), so the returned intervals contain the exact ones.
"""

from __future__ import annotations

import numpy as np

from ..form import Clip, Form, Identity, LeakyReLU, ReLU, SoftThreshold
from ._local import interval_bounds

_U = np.finfo(np.float64).eps / 2


def _dense(M) -> np.ndarray:
    return M.toarray() if hasattr(M, "toarray") else np.asarray(M, dtype=np.float64)


def _kinks(act, size: int) -> np.ndarray:
    """(size, k) breakpoints of a supported activation (k = 0 for the identity)."""
    if isinstance(act, SoftThreshold):
        return np.stack([-act.theta, act.theta], axis=1)
    if isinstance(act, (ReLU, LeakyReLU)):
        return np.zeros((size, 1))
    if isinstance(act, Clip):
        return np.stack([act.lower, act.upper], axis=1)
    if isinstance(act, Identity):
        return np.zeros((size, 0))
    raise TypeError(f"unsupported activation {type(act).__name__}")  # pragma: no cover - Form refuses


def relaxation(act, lo: np.ndarray, hi: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Linear enclosure of a piecewise-linear activation on ``[lo, hi]`` (per neuron).

    Returns ``(s_lo, b_lo, s_hi, b_hi)`` with :math:`s_{lo} z + b_{lo} \le \sigma(z) \le s_{hi} z + b_{hi}`
    for every :math:`z \in [lo, hi]` (offsets outward rounded), each slope the least-area choice among the
    chord and the activation's extreme slopes; see the module docstring.
    """
    n = lo.shape[0]
    if isinstance(act, Identity):
        return np.ones(n), np.zeros(n), np.ones(n), np.zeros(n)
    K = _kinks(act, n)
    pts = np.concatenate([lo[:, None], hi[:, None], np.clip(K, lo[:, None], hi[:, None])], axis=1)
    vals = np.stack([act(pts[:, c]) for c in range(pts.shape[1])], axis=1)
    width = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        chord = np.where(width > 0, (vals[:, 1] - vals[:, 0]) / np.where(width > 0, width, 1.0), 0.0)
    a, b = (np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)) for v in act.slope_bounds())
    slopes = np.stack([chord, a, b], axis=1)                      # candidate slopes (n, 3)
    mid = (lo + hi) / 2
    rows = np.arange(n)
    lines = []
    for upper in (False, True):
        offs = []
        for c in range(slopes.shape[1]):
            s = slopes[:, c]
            off = vals - s[:, None] * pts
            err = 8 * _U * np.max(np.abs(vals) + np.abs(pts) + np.abs(s[:, None] * pts), axis=1) + 1e-300
            offs.append(off.max(axis=1) + err if upper else off.min(axis=1) - err)
        offs = np.stack(offs, axis=1)
        at_mid = slopes * mid[:, None] + offs
        best = np.argmin(at_mid, axis=1) if upper else np.argmax(at_mid, axis=1)
        lines += [slopes[rows, best], offs[rows, best]]
    return tuple(lines)


def _backward(form: Form, k: int, rows: np.ndarray, relax: list, dense: list, absolute: bool
              ) -> tuple[np.ndarray, np.ndarray]:
    """Back-substitute ``rows @ z_k`` (r, n_k) through blocks ``k-1, ..., 0``: returns ``(Gamma (r, m), c
    (r,))`` with ``rows @ z_k <= Gamma y + c`` for y in the box (upper lines for positive coefficients, lower
    lines for negative ones).  ``absolute=True`` runs the same recursion on absolute values (the magnitude
    used for the rounding bound)."""
    m = form.input_dim
    r = rows.shape[0]
    lam: dict = {k: rows}
    Gam = np.zeros((r, m))
    c = np.zeros(r)
    for j in range(k, -1, -1):
        L = lam.pop(j, None)
        if L is None:
            continue
        if j < k:  # L multiplies w_j: replace it by the relaxation lines in z_j
            slo, blo, shi, bhi = relax[j]
            if absolute:
                c += L @ np.maximum(np.abs(blo), np.abs(bhi))
                L = L * np.maximum(np.abs(slo), np.abs(shi))[None, :]
            else:
                Lp, Ln = np.maximum(L, 0.0), np.minimum(L, 0.0)
                c += Lp @ bhi + Ln @ blo
                L = Lp * shi[None, :] + Ln * slo[None, :]
        # L multiplies z_j = sum_i A_ji w_i + B_j y + b_j
        Bj, bj, inp = dense[j]
        if Bj is not None:
            Gam += L @ Bj
        if bj is not None:
            c += L @ bj
        for i, Aji in inp.items():
            lam[i] = lam[i] + L @ Aji if i in lam else L @ Aji
    return Gam, c


def linear_bounds(form: Form, center: np.ndarray, radius, norm: str = "linf") -> list:
    r"""Sound pre-activation intervals ``[(l_k, u_k)]`` of every block over the ball
    :math:`\{y : \|y - c\|_p \le r\}` (``norm="linf"``: ``radius`` may be a vector of half-widths, i.e. a box;
    ``norm="l2"``: a scalar) by linear bound propagation (module docstring), intersected with interval
    propagation.  Same format as :func:`._local.interval_bounds`.  A linear function :math:`\Gamma y + c_0`
    is maximised over the box by :math:`\Gamma c + |\Gamma| r + c_0` and over the l2 ball by
    :math:`\Gamma c + r \|\Gamma_{i,:}\|_2 + c_0`."""
    center = np.asarray(center, dtype=np.float64)
    if norm == "l2":
        r2 = float(radius) * (1 + 4 * _U)
        ibp = interval_bounds(form, center, r2, "l2")
        yabs = np.abs(center) + r2
    else:
        rad = (np.broadcast_to(np.asarray(radius, dtype=np.float64), center.shape) * (1 + 4 * _U)
               + 4 * _U * np.abs(center))
        ibp = interval_bounds(form, center, rad, "linf")
        yabs = np.abs(center) + rad
    dense, dense_abs = [], []
    for blk in form.blocks:
        Bd = None if blk.B is None else _dense(blk.B)
        inp = {int(j): _dense(M) for j, M in blk.inputs.items()}
        dense.append((Bd, None if blk.b is None else np.asarray(blk.b, float), inp))
        dense_abs.append((None if Bd is None else np.abs(Bd), None if blk.b is None else np.abs(blk.b),
                          {j: np.abs(M) for j, M in inp.items()}))
    n_ops = 2 * (form.num_blocks + 2) * (max([form.input_dim] + form.sizes) + 4)
    gam = n_ops * _U / (1 - n_ops * _U)
    relax, out = [], []
    for k, blk in enumerate(form.blocks):
        n = blk.size
        rows = np.concatenate([np.eye(n), -np.eye(n)])
        G, c = _backward(form, k, rows, relax, dense, absolute=False)
        Ga, ca = _backward(form, k, np.abs(rows), relax, dense_abs, absolute=True)
        spread = r2 * np.linalg.norm(G, axis=1) if norm == "l2" else np.abs(G) @ rad
        val = G @ center + spread + c
        err = gam * (Ga @ yabs + ca) * (1 + 8 * _U) + 1e-300
        up = val + err
        ub, lb = up[:n], -up[n:]
        li, ui = ibp[k]
        lb, ub = np.maximum(lb, li), np.minimum(ub, ui)
        out.append((lb, ub))
        relax.append(relaxation(blk.activation, lb, ub))
    return out
