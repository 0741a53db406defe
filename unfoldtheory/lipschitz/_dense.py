r"""The plain dense LipSDP-Neuron formulation in cvxpy (reference for small forms).

One LMI of order :math:`N + m` in the variables :math:`\rho` and :math:`t \in \mathbb{R}^N_{\ge 0}`:

.. math:: \rho S_y - O^TO + \tfrac12(P^T T R + R^T T P) \succeq 0, \quad P = F - \mathrm{diag}(\alpha) E,\; R
          = F - \mathrm{diag}(\beta) E,

with :math:`E = [A, B]` (so :math:`\Delta z = E\xi`), :math:`F = [I, 0]` (so :math:`\Delta w = F\xi`) and
:math:`O = [C, D]` the readout.  The solver's multipliers are then re-certified in float64 by the same routine
as the structured method (:func:`~._lipsdp.certify`), so the reported value never relies on the solver's
accuracy.
"""

from __future__ import annotations

import numpy as np

from ..errors import SolverAttempt, SolverError
from ._net import Net


def dense_matrices(net: Net) -> dict:
    """Dense ``A`` (N, N), ``B`` (N, m), ``C`` (out, N), ``D`` (out, m), ``alpha``, ``beta`` of a Net."""
    off = net.offsets()
    N, m = net.num_neurons, net.m
    A = np.zeros((N, N))
    B = np.zeros((N, m))
    C = np.zeros((net.out_dim, N))
    for k in range(net.num_blocks):
        rows = slice(off[k], off[k + 1])
        for j, M in net.inputs[k].items():
            A[rows, off[j]:off[j + 1]] = M
        if net.B[k] is not None:
            B[rows] = net.B[k]
    for j, M in net.output.items():
        C[:, off[j]:off[j + 1]] = M
    D = np.zeros((net.out_dim, m)) if net.direct is None else net.direct
    return {"A": A, "B": B, "C": C, "D": D, "alpha": np.concatenate(net.alpha),
            "beta": np.concatenate(net.beta)}


def solve_dense(net: Net, solvers=("CLARABEL", "SCS"), verbose: bool = False) -> dict:
    """Solve the dense LMI with cvxpy; returns ``{"t", "rho", "solver", "status"}`` or raises SolverError."""
    import cvxpy as cp

    d = dense_matrices(net)
    N, m = net.num_neurons, net.m
    E = np.hstack([d["A"], d["B"]])
    F = np.hstack([np.eye(N), np.zeros((N, m))])
    P = F - d["alpha"][:, None] * E
    R = F - d["beta"][:, None] * E
    O = np.hstack([d["C"], d["D"]])
    Sy = np.zeros((N + m, N + m))
    Sy[N:, N:] = np.eye(m)
    t = cp.Variable(N, nonneg=True)
    rho = cp.Variable()
    PT = P.T @ cp.diag(t) @ R
    M = rho * Sy - O.T @ O + 0.5 * (PT + PT.T)
    prob = cp.Problem(cp.Minimize(rho), [0.5 * (M + M.T) >> 0])
    attempts = []
    for name in solvers:
        if name not in cp.installed_solvers():
            attempts.append(SolverAttempt(name, "not installed"))
            continue
        try:
            prob.solve(solver=name, verbose=verbose)
        except cp.error.SolverError as exc:  # pragma: no cover - solver specific
            attempts.append(SolverAttempt(name, "error", str(exc)[:200]))
            continue
        if prob.status in ("optimal", "optimal_inaccurate") and t.value is not None:
            return {"t": np.maximum(np.asarray(t.value, dtype=float), 0.0), "rho": float(rho.value),
                    "solver": name, "status": prob.status}
        attempts.append(SolverAttempt(name, str(prob.status)))
    raise SolverError("the dense LipSDP formulation could not be solved.", attempts)
