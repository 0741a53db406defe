r"""Newton barrier polish of the LipSDP-Neuron multipliers for small forms (own solver, no cvxpy).

L-BFGS on the smoothed :math:`\lambda_{\max}` stalls at a relative accuracy of about
:math:`10^{-5}` to :math:`10^{-4}` (the optimum of an eigenvalue problem is nonsmooth).  For forms whose LMI
has
order :math:`N + m` up to about 1500, a primal path-following barrier method finishes the job: minimise

.. math:: \phi_\nu(\rho, t) = \rho - \nu \log\det M(\rho, t) - \nu \sum_i \log t_i

by Newton's method for a decreasing sequence of :math:`\nu`, from the L-BFGS point.  With :math:`M_i =
\partial M/\partial t_i = \tfrac12(p_ir_i^T + r_ip_i^T)` and :math:`G = M^{-1}`:

.. math:: \partial_{t_i}\phi = -\nu\, p_i^TGr_i - \nu/t_i, \qquad \partial^2_{t_it_j}\phi =
          \tfrac{\nu}{2}\big[(p_i^TGp_j)(r_i^TGr_j) + (p_i^TGr_j)(r_i^TGp_j)\big] + \delta_{ij}\nu/t_i^2,

and :math:`\partial_\rho\phi = 1 - \nu\,\mathrm{tr}\,G_{yy}`, :math:`\partial^2_{\rho\rho}\phi =
\nu\|G_{yy}\|_F^2`, :math:`\partial^2_{\rho t_i}\phi = \nu\,(PG_{:y})_{i:}\cdot(RG_{:y})_{i:}`.  The barrier
problem's value is within :math:`\nu(2N + m)` of the SDP optimum.  The returned multipliers are only a
candidate: they are certified in float64 by :func:`~._lipsdp.certify` like any other.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import scipy.linalg as sla

from ._dense import dense_matrices
from ._net import Net


def polish(net: Net, t_init: np.ndarray, rho_init: float, *, tol: float = 1e-9, max_newton: int = 200,
           deadline: float | None = None) -> dict:
    """Path-following barrier Newton from a strictly feasible ``(rho_init, t_init)``; returns ``{"t", "rho",
    "newton_steps", "stop"}`` (the best feasible point reached)."""
    d = dense_matrices(net)
    N, m = net.num_neurons, net.m
    n = N + m
    E = np.hstack([d["A"], d["B"]])
    F = np.hstack([np.eye(N), np.zeros((N, m))])
    P = F - d["alpha"][:, None] * E
    R = F - d["beta"][:, None] * E
    O = np.hstack([d["C"], d["D"]])
    M0 = -(O.T @ O)
    vsl = slice(N, n)

    def build(rho, t):
        M = M0 + 0.5 * ((P.T * t) @ R + (R.T * t) @ P)
        M[vsl, vsl] += rho * np.eye(m)
        return M

    def chol(M):
        try:
            return sla.cholesky(M, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            return None

    t = np.asarray(t_init, dtype=float).copy()
    rho = float(rho_init)
    M = build(rho, t)
    Lc = chol(M)
    if Lc is None or np.any(t <= 0):
        return {"t": t, "rho": math.inf, "newton_steps": 0, "stop": "infeasible start"}
    nu = 1e-3 * abs(rho) / (2 * N + m)
    steps = 0
    stop = "max_newton"

    def phi(rho_, t_, Lc_):
        return rho_ - nu * (2.0 * float(np.sum(np.log(np.diag(Lc_)))) + float(np.sum(np.log(t_))))

    while steps < max_newton:
        if deadline is not None and time.perf_counter() > deadline:
            stop = "time"
            break
        G = sla.cho_solve((Lc, True), np.eye(n), check_finite=False)
        GP, GR = G @ P.T, G @ R.T                        # (n, N)
        Gpp, Grr, Gpr = P @ GP, R @ GR, P @ GR           # (N, N)
        Gv = G[:, vsl]
        PGv, RGv = P @ Gv, R @ Gv                       # (N, m)
        g_t = -nu * np.diag(Gpr) - nu / t
        g_r = 1.0 - nu * float(np.trace(G[vsl, vsl]))
        H = np.empty((N + 1, N + 1))
        H[:N, :N] = 0.5 * nu * (Gpp * Grr + Gpr * Gpr.T)
        H[np.diag_indices(N)] += nu / t ** 2
        H[N, N] = nu * float(np.sum(G[vsl, vsl] ** 2))
        h_rt = nu * np.sum(PGv * RGv, axis=1)
        H[:N, N] = h_rt
        H[N, :N] = h_rt
        g = np.concatenate([g_t, [g_r]])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", sla.LinAlgWarning)  # expected close to the optimum
                step = -sla.solve(H, g, assume_a="pos", check_finite=False)
            if not np.all(np.isfinite(step)):
                raise ValueError
        except (np.linalg.LinAlgError, ValueError):
            stop = "singular Hessian"
            break
        dec2 = float(-g @ step)
        steps += 1
        if dec2 < 1e-10:
            # centred: decrease the barrier weight, stop when the gap bound nu (2N + m) is small enough
            if nu * (2 * N + m) <= tol * abs(rho):
                stop = "converged"
                break
            nu /= 8.0
            continue
        f0 = phi(rho, t, Lc)
        s = 1.0
        dt, dr = step[:N], float(step[N])
        neg = dt < 0
        if np.any(neg):
            s = min(1.0, 0.99 * float(np.min(-t[neg] / dt[neg])))
        accepted = False
        while s > 1e-12:
            t_new, r_new = t + s * dt, rho + s * dr
            L_new = chol(build(r_new, t_new)) if np.all(t_new > 0) else None
            if L_new is not None and phi(r_new, t_new, L_new) <= f0 - 0.25 * s * dec2:
                accepted = True
                break
            s *= 0.5
        if not accepted:
            stop = "line search"
            break
        t, rho, Lc = t_new, r_new, L_new
    return {"t": t, "rho": rho, "newton_steps": steps, "stop": stop}
