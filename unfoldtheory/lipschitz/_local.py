r"""Local Lipschitz analysis on a ball: interval bounds, fixed activation patterns, refined slopes.

For the ball :math:`\mathcal{B} = \{y : \|y - y_0\|_p \le r\}` (:math:`p \in \{2, \infty\}`), interval bound
propagation (IBP) gives every pre-activation an interval :math:`[l_i, u_i] \ni z_i(y)` for all :math:`y \in
\mathcal{B}`:

.. math:: c_k = \sum_j A_{kj} c^w_j + B_k y_0 + b_k, \qquad r_k = \sum_j |A_{kj}| r^w_j + r\,\|B_{k,i:}\|_{q},
          \quad q = 2 \text{ for } p = 2,\ q = 1 \text{ for } p=\infty,

and :math:`w \in [\sigma(l), \sigma(u)]` (every supported activation is monotone).  A neuron whose interval
lies inside one linear piece has a *fixed* slope there (soft threshold: :math:`l \ge \theta` or :math:`u \le
-\theta` gives 1, :math:`[l,u] \subseteq [-\theta, \theta]` gives 0).  Every pair of points of the ball
satisfies the incremental constraints with these refined slopes, so any upper-bound method applied to the
refined network bounds the local constant on the ball.  When every neuron is fixed the network is linear on
the ball and the local constant is exactly the norm of that linear map (tight).  IBP is sound but loose for
large radii (then fewer neurons are fixed and the bound tends to the global one).
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError
from ..form import Clip, Form, Identity, LeakyReLU, ReLU, SoftThreshold

_U = np.finfo(np.float64).eps / 2


def _dense(M):
    return M.toarray() if hasattr(M, "toarray") else np.asarray(M, dtype=np.float64)


def interval_bounds(form: Form, y0: np.ndarray, radius, norm: str = "l2") -> list:
    """Sound pre-activation intervals ``[(l_k, u_k)]`` over the ball (outward-rounded).  For ``norm="linf"``
    ``radius`` may be a vector of per-coordinate half-widths: the domain is then the box ``y0 +- radius``."""
    if norm not in ("l2", "linf"):
        raise InvalidInputError(f"norm must be 'l2' or 'linf'; got {norm!r}.")
    inner = max([form.input_dim] + form.sizes) + 3
    gam = inner * _U / (1 - inner * _U)
    cw, rw, out = [], [], []
    for blk in form.blocks:
        c = np.zeros(blk.size)
        r = np.zeros(blk.size)
        cabs = np.zeros(blk.size)
        for j, M in blk.inputs.items():
            Md = _dense(M)
            c += Md @ cw[j]
            r += np.abs(Md) @ rw[j]
            cabs += np.abs(Md) @ np.abs(cw[j])
        if blk.B is not None:
            Bd = _dense(blk.B)
            c += Bd @ y0
            cabs += np.abs(Bd) @ np.abs(y0)
            if norm == "l2":
                r += radius * np.linalg.norm(Bd, axis=1) * (1 + gam)
            else:
                r += (np.abs(Bd) @ (np.broadcast_to(radius, y0.shape) * (1 + gam))) * (1 + gam)
        if blk.b is not None:
            c += blk.b
            cabs += np.abs(blk.b)
        # rounding of c and r, outward
        r = (r + 2 * gam * (cabs + r) + 2 * _U * np.abs(c)) * (1 + 4 * _U) + 1e-300
        lo, hi = c - r, c + r
        out.append((lo, hi))
        act = blk.activation
        wl, wh = act(lo), act(hi)
        wl, wh = np.minimum(wl, wh), np.maximum(wl, wh)
        cw.append((wl + wh) / 2)
        rw.append((wh - wl) / 2 * (1 + 4 * _U) + 2 * _U * np.abs((wl + wh) / 2))
    return out


def refined_slopes(form: Form, bounds: list) -> tuple[list, list]:
    """Per-neuron slope intervals valid on the ball, from the pre-activation intervals."""
    alpha, beta = [], []
    for blk, (lo, hi) in zip(form.blocks, bounds):
        a, b = (v.copy() for v in blk.activation.slope_bounds())
        act = blk.activation
        if isinstance(act, SoftThreshold):
            th = act.theta
            on = (lo >= th) | (hi <= -th)
            off = (lo >= -th) & (hi <= th)
            a[on], b[on] = 1.0, 1.0
            a[off], b[off] = 0.0, 0.0
        elif isinstance(act, ReLU):
            a[lo >= 0], b[lo >= 0] = 1.0, 1.0
            a[hi <= 0], b[hi <= 0] = 0.0, 0.0
        elif isinstance(act, LeakyReLU):
            a[lo >= 0], b[lo >= 0] = 1.0, 1.0
            neg = hi <= 0
            a[neg], b[neg] = act.negative_slope, act.negative_slope
        elif isinstance(act, Clip):
            inside = (lo >= act.lower) & (hi <= act.upper)
            flat = (hi <= act.lower) | (lo >= act.upper)
            a[inside], b[inside] = 1.0, 1.0
            a[flat], b[flat] = 0.0, 0.0
        elif isinstance(act, Identity):
            pass
        alpha.append(a)
        beta.append(b)
    return alpha, beta
