r"""LipSDP-Neuron for the analysis form, solved through its block structure.

The LMI
-------
Write :math:`\xi = (\Delta w, \Delta y)` with :math:`\Delta z = A\Delta w + B\Delta y` and, for every neuron,
:math:`p_i = \Delta w_i - \alpha_i \Delta z_i`, :math:`r_i = \Delta w_i - \beta_i\Delta z_i`.  A
slope-restricted activation satisfies :math:`q_i = -p_i r_i \ge 0` (incremental quadratic constraint).  For
multipliers :math:`t \ge 0`, if

.. math:: M(\rho, t) \;:\; \xi^T M \xi = \rho\|\Delta y\|^2 - \|C\Delta w + D\Delta y\|^2 + \sum_i t_i p_i r_i
          \;\succeq\; 0,

then :math:`\|\Delta x\|^2 \le \rho \|\Delta y\|^2` (S-procedure; Fazlyab et al., NeurIPS 2019, Thm 2, with
the input injected into every layer).  Split :math:`M = [[X, Q], [Q^T, \rho I + R]]` over :math:`(\Delta w,
\Delta y)`. :math:`X(t)` inherits the block sparsity of the form (block tridiagonal for LISTA/ISTA chains), so
for :math:`X(t) \succ 0` the smallest feasible :math:`\rho` is the Schur complement value

.. math:: \rho^\star(t) = \lambda_{\max}\big(Q^T X^{-1} Q - R\big),

computed with one block Cholesky of :math:`X` (no fill for chains) and one :math:`m\times m` eigenproblem
(docs/theory/lipschitz.md §3).  :math:`\rho^\star` is convex in :math:`t` (its epigraph is the LMI's feasible set) and
:math:`Q^TX^{-1}Q` is jointly matrix-convex, so the smoothed objective :math:`f_\mu = \mu\log\sum_j
e^{\lambda_j/\mu}` is convex and differentiable; it is minimised by L-BFGS in :math:`s = \log t` with
continuation :math:`\mu \downarrow 0`.  The gradient is :math:`\partial\lambda_{\max}/\partial t_i = -p_i r_i`
evaluated at :math:`\xi = (-X^{-1}Qv, v)`, :math:`v` the top eigenvector.  The optimum can sit on the boundary
of :math:`\{X(t) \succ 0\}` (directions of :math:`X` that :math:`Q` does not see, e.g. the null space of
:math:`A` in ISTA), where a plain descent method gets stuck; for :math:`N < 3000` a barrier
:math:`-\nu\log\det(T^{-1/2}XT^{-1/2})` with :math:`\nu = \mu/N` keeps the iterates inside (its gradient needs
the entries of :math:`X^{-1}` on the pattern of the factor, computed by the Takahashi recurrence,
:meth:`StructuredLMI.selected_inverse`).

Certification
-------------
The final multipliers are re-checked in float64 (:func:`certify`): the whole matrix, diagonally scaled by
exact powers of two, minus a shift :math:`cI`, is factored by block Cholesky with the :math:`\Delta y` block
last; success, together with the a-posteriori backward-error bound :math:`\|\Delta\| \le \gamma_{4(n+1)}\|\hat
L\|_F^2` of the factorisation and an entrywise bound on the rounding errors made while assembling :math:`M`,
proves :math:`M(\rho, t) \succeq 0` for the reported :math:`\rho`.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
from scipy.linalg import blas as _blas
from scipy.linalg import lapack as _lapack

from ._net import Net
from ._optim import lbfgs

log = logging.getLogger(__name__)
_U = np.finfo(np.float64).eps / 2


def _gamma(k: int) -> float:
    return k * _U / (1 - k * _U)


class _Kernels:
    """BLAS/LAPACK kernels for one dtype."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        probe = np.zeros((1, 1), dtype=self.dtype)
        self.potrf = _lapack.get_lapack_funcs("potrf", (probe,))
        self.trsm = _blas.get_blas_funcs("trsm", (probe,))
        self.syrk = _blas.get_blas_funcs("syrk", (probe,))

    def chol(self, D: np.ndarray):
        L, info = self.potrf(D, lower=1, clean=1, overwrite_a=1)
        return L if info == 0 else None

    def right_solve_t(self, L: np.ndarray, S: np.ndarray) -> np.ndarray:
        """S @ L^{-T}."""
        return self.trsm(1.0, L, S, side=1, lower=1, trans_a=1)

    def left_solve(self, L: np.ndarray, S: np.ndarray) -> np.ndarray:
        """L^{-1} @ S."""
        return self.trsm(1.0, L, S, side=0, lower=1, trans_a=0)

    def left_solve_t(self, L: np.ndarray, S: np.ndarray) -> np.ndarray:
        """L^{-T} @ S."""
        return self.trsm(1.0, L, S, side=0, lower=1, trans_a=1)


class StructuredLMI:
    """The LipSDP-Neuron LMI of a :class:`Net` whose neurons all have ``alpha < beta``.

    Parameters
    ----------
    net : Net
    max_fill_bytes : int
        Refuse (``MemoryError``-free, with a clear message at the caller) when the Cholesky factor with its
        fill would need more memory than this.
    """

    def __init__(self, net: Net, max_fill_bytes: int = 2 * 1024 ** 3):
        self.net = net
        nb = net.num_blocks
        self.nb = nb
        self.sizes = list(net.sizes)
        self.off = net.offsets()
        self.N = net.num_neurons
        self.m = net.m
        self.alpha = [np.asarray(a, float) for a in net.alpha]
        self.beta = [np.asarray(b, float) for b in net.beta]
        if any((a >= b).any() for a, b in zip(self.alpha, self.beta)):
            raise ValueError("StructuredLMI needs alpha < beta for every neuron; eliminate pinned neurons "
                             "first.")
        self.cc = [(a + b) / 2 for a, b in zip(self.alpha, self.beta)]
        self.dd = [a * b for a, b in zip(self.alpha, self.beta)]
        self.has_d = [bool(np.any(d != 0)) for d in self.dd]
        # structural pattern of X (lower blocks, i >= j)
        pairs = {(k, k) for k in range(nb)}
        for k in range(nb):
            for j in net.inputs[k]:
                pairs.add((k, j))
            if self.has_d[k]:
                js = sorted(net.inputs[k])
                for a in js:
                    for b in js:
                        if a >= b:
                            pairs.add((a, b))
        outs = sorted(net.output)
        for a in outs:
            for b in outs:
                if a >= b:
                    pairs.add((a, b))
        self.x_pairs = pairs
        # symbolic block Cholesky (fill)
        struct = [set() for _ in range(nb)]  # struct[j] = rows i > j of column j of L
        for (i, j) in pairs:
            if i > j:
                struct[j].add(i)
        for j in range(nb):
            for i in sorted(struct[j]):
                # column j's rows below i fill column i
                for r in struct[j]:
                    if r > i:
                        struct[i].add(r)
        self.rows_of_col = [sorted(s) for s in struct]
        cols = [[] for _ in range(nb)]
        for j in range(nb):
            for i in self.rows_of_col[j]:
                cols[i].append(j)
        self.cols_of_row = [sorted(c) for c in cols]
        fill_bytes = 8 * (sum(s * s for s in self.sizes)
                          + sum(self.sizes[i] * self.sizes[j]
                                for j in range(nb) for i in self.rows_of_col[j]))
        self.fill_bytes = fill_bytes
        self.max_fill_bytes = max_fill_bytes
        # constants: C^T C blocks, C^T D, D^T D
        self.CtC = {}
        for a in outs:
            for b in outs:
                if a >= b:
                    self.CtC[(a, b)] = net.output[a].T @ net.output[b]
        self.CtD = {}
        self.DtD = None
        if net.direct is not None:
            for a in outs:
                self.CtD[a] = net.output[a].T @ net.direct
            self.DtD = net.direct.T @ net.direct
        self.readers = net.readers()
        self._kern = {}

    # ------------------------------------------------------------------ helpers
    def kernels(self, dtype) -> _Kernels:
        key = np.dtype(dtype).str
        if key not in self._kern:
            self._kern[key] = _Kernels(dtype)
        return self._kern[key]

    def split(self, t: np.ndarray) -> list:
        return [t[self.off[k]:self.off[k + 1]] for k in range(self.nb)]

    def assemble(self, t: np.ndarray, dtype=np.float64, absolute: bool = False):
        """Blocks of X (dict), Q (list of (n_k, m) or None) and R ((m, m)) at multipliers ``t``.

        With ``absolute=True`` every term is accumulated in absolute value (used to bound assembly rounding
        errors in :func:`certify`).
        """
        net = self.net
        f = np.abs if absolute else (lambda v: v)
        sgn = 1.0 if absolute else -1.0
        ts = self.split(np.asarray(t, dtype=np.float64))
        X = {}
        for (i, j) in self.x_pairs:
            X[(i, j)] = np.zeros((self.sizes[i], self.sizes[j]))
        Q = [None] * self.nb
        R = np.zeros((self.m, self.m))
        for k in range(self.nb):
            tk = ts[k]
            X[(k, k)][np.diag_indices(self.sizes[k])] += np.abs(tk) if absolute else tk
            ck = f(tk * self.cc[k])
            for j, A in net.inputs[k].items():
                X[(k, j)] += sgn * (ck[:, None] * f(A))
            if net.B[k] is not None:
                Q[k] = sgn * (ck[:, None] * f(net.B[k]))
            if self.has_d[k]:
                dk = f(tk * self.dd[k])
                js = sorted(net.inputs[k])
                DA = {j: dk[:, None] * f(net.inputs[k][j]) for j in js}
                for a in js:
                    for b in js:
                        if a >= b:
                            X[(a, b)] += f(net.inputs[k][a]).T @ DA[b]
                if net.B[k] is not None:
                    DB = dk[:, None] * f(net.B[k])
                    for a in js:
                        term = f(net.inputs[k][a]).T @ DB
                        Q[a] = term if Q[a] is None else Q[a] + term
                    R += f(net.B[k]).T @ DB
        for (a, b), M in self.CtC.items():
            if absolute:
                M = np.abs(net.output[a]).T @ np.abs(net.output[b])
            X[(a, b)] += sgn * M
        for a, M in self.CtD.items():
            if absolute:
                M = np.abs(net.output[a]).T @ np.abs(net.direct)
            Q[a] = sgn * M if Q[a] is None else Q[a] + sgn * M
        if self.DtD is not None:
            R += sgn * (np.abs(net.direct).T @ np.abs(net.direct) if absolute else self.DtD)
        if dtype != np.float64:
            X = {key: v.astype(dtype) for key, v in X.items()}
            Q = [None if q is None else q.astype(dtype) for q in Q]
            R = R.astype(dtype)
        return X, Q, R

    def factor(self, X: dict, kern: _Kernels):
        """Block Cholesky of X (lower blocks); ``None`` if X is not numerically positive definite."""
        L = {}
        for k in range(self.nb):
            D = np.array(X[(k, k)], dtype=kern.dtype, order="F")
            for j in self.cols_of_row[k]:
                D = kern.syrk(-1.0, L[(k, j)], beta=1.0, c=D, lower=1, overwrite_c=1)
            Lkk = kern.chol(D)
            if Lkk is None:
                return None
            L[(k, k)] = Lkk
            for i in self.rows_of_col[k]:
                S = X.get((i, k))
                S = np.zeros((self.sizes[i], self.sizes[k]), dtype=kern.dtype) if S is None else S.copy()
                for j in self.cols_of_row[k]:
                    if (i, j) in L:
                        S -= L[(i, j)] @ L[(k, j)].T
                L[(i, k)] = kern.right_solve_t(Lkk, S)
        return L

    def forward(self, L: dict, Q: list, kern: _Kernels, ncols: int) -> list:
        """Z = L^{-1} Q blockwise."""
        Z = []
        for k in range(self.nb):
            rhs = Q[k]
            rhs = np.zeros((self.sizes[k], ncols), dtype=kern.dtype) if rhs is None else rhs.copy()
            for j in self.cols_of_row[k]:
                rhs -= L[(k, j)] @ Z[j]
            Z.append(kern.left_solve(L[(k, k)], rhs))
        return Z

    def backward(self, L: dict, Y: list, kern: _Kernels) -> list:
        """U = L^{-T} Y blockwise."""
        U = [None] * self.nb
        for k in range(self.nb - 1, -1, -1):
            rhs = Y[k].copy()
            for i in self.rows_of_col[k]:
                rhs -= L[(i, k)].T @ U[i]
            U[k] = kern.left_solve_t(L[(k, k)], rhs)
        return U

    def selected_inverse(self, L: dict, kern: _Kernels) -> dict:
        """Blocks of Z = X^{-1} on the pattern of L + L^T (Takahashi / Erisman-Tinney recurrence:
        Z_ik = (delta_ik L_kk^{-T} - sum_{j>k} Z_ij L_jk) L_kk^{-1}), lower blocks only."""
        Z = {}

        def get(i, j):
            return Z[(i, j)] if i >= j else Z[(j, i)].T

        for k in range(self.nb - 1, -1, -1):
            eye = np.eye(self.sizes[k], dtype=kern.dtype)
            Linv = kern.left_solve(L[(k, k)], eye)
            rows = self.rows_of_col[k]
            P = {j: L[(j, k)] @ Linv for j in rows}
            for i in rows:
                acc = np.zeros((self.sizes[i], self.sizes[k]), dtype=kern.dtype)
                for j in rows:
                    acc -= get(i, j) @ P[j]
                Z[(i, k)] = acc
            Zkk = Linv.T @ Linv
            for j in rows:
                Zkk -= P[j].T @ Z[(j, k)]
            Z[(k, k)] = Zkk
        return Z

    def _barrier_grad(self, Z: dict) -> np.ndarray:
        """d/dt_i log det X(t) = Z_ii - 2 c_i (A Z)_ii + d_i (A Z A^T)_ii."""
        g = np.empty(self.N)

        def get(i, j):
            return Z[(i, j)] if i >= j else Z[(j, i)].T

        for k in range(self.nb):
            val = np.diag(Z[(k, k)]).astype(np.float64).copy()
            az = np.zeros(self.sizes[k])
            for j, A in self.net.inputs[k].items():
                az += np.sum(A * Z[(k, j)].astype(np.float64), axis=1)
            val -= 2 * self.cc[k] * az
            if self.has_d[k]:
                aza = np.zeros(self.sizes[k])
                for j, A in self.net.inputs[k].items():
                    for j2, A2 in self.net.inputs[k].items():
                        aza += np.sum((A @ get(j, j2).astype(np.float64)) * A2, axis=1)
                val += self.dd[k] * aza
            g[self.off[k]:self.off[k + 1]] = val
        return g

    # ------------------------------------------------------------------ objective
    def margin(self) -> float:
        """Relative margin kept by the optimiser, ``X(t) - margin * T > 0``: a few times the shift that
        :func:`certify` needs (~40 u (N+m)^2 in the scaled matrix), so optimised multipliers certify."""
        n = self.N + self.m
        return min(64 * _U * n * n, 1e-4)

    def evaluate(self, t: np.ndarray, mu: float = 0.0, grad: bool = True, dtype=np.float64, nu: float = 0.0,
                 shift: float = 0.0):
        """Smoothed objective at ``t`` for the matrix ``X(t) - shift * T`` (``shift = 0``: the LMI itself; a
        positive shift only makes the value larger, so it stays a valid bound), plus the barrier ``-nu log
        det`` of the normalised matrix when ``nu > 0``.

        Returns ``(f, lambda_max, grad_t)``; ``(inf, inf, None)`` when the matrix is not positive definite.
        """
        kern = self.kernels(dtype)
        X, Q, R = self.assemble(t, dtype)
        if shift > 0:
            for k, tk in enumerate(self.split(np.asarray(t, dtype=np.float64))):
                X[(k, k)][np.diag_indices(self.sizes[k])] -= (shift * tk).astype(X[(k, k)].dtype)
        L = self.factor(X, kern)
        if L is None:
            return math.inf, math.inf, None
        bar = 0.0
        t = np.asarray(t, dtype=np.float64)
        if nu > 0:
            # barrier on the normalised matrix T^{-1/2} X T^{-1/2}: bounded below (Hadamard), so neurons
            # that do not affect rho (zero-weight padding, say) are not pushed to t = inf
            logdet = 2.0 * sum(float(np.sum(np.log(np.diag(L[(k, k)]).astype(np.float64))))
                               for k in range(self.nb))
            bar = -nu * (logdet - float(np.sum(np.log(t))))
        Z = self.forward(L, Q, kern, self.m)
        S = -R.astype(np.float64)
        for Zk in Z:
            S += (Zk.T @ Zk).astype(np.float64)
        S = (S + S.T) / 2
        if not grad:
            lam = np.linalg.eigvalsh(S)
            lmax = float(lam[-1])
            if mu > 0:
                return lmax + mu * math.log(float(np.sum(np.exp((lam - lmax) / mu)))) + bar, lmax, None
            return lmax + bar, lmax, None
        lam, Uv = np.linalg.eigh(S)
        lmax = float(lam[-1])
        if mu > 0:
            wts = np.exp((lam - lmax) / mu)
            tot = float(wts.sum())
            fval = lmax + mu * math.log(tot)
            p = wts / tot
        else:
            fval = lmax
            p = np.zeros_like(lam)
            p[-1] = 1.0
        keep = np.flatnonzero(p > 1e-12)
        V = Uv[:, keep] * np.sqrt(p[keep])
        Vk = V.astype(kern.dtype)
        Y = [Zk @ Vk for Zk in Z]
        Uw = self.backward(L, Y, kern)   # X^{-1} Q V
        w = [-u.astype(np.float64) for u in Uw]
        g = np.empty(self.N)
        for k in range(self.nb):
            z = np.zeros_like(w[k])
            for j, A in self.net.inputs[k].items():
                z += A @ w[j]
            if self.net.B[k] is not None:
                z += self.net.B[k] @ V
            p_ = w[k] - self.alpha[k][:, None] * z
            r_ = w[k] - self.beta[k][:, None] * z
            g[self.off[k]:self.off[k + 1]] = -np.sum(p_ * r_, axis=1) + shift * np.sum(w[k] * w[k], axis=1)
        if nu > 0:
            Z = self.selected_inverse(L, kern)
            corr = np.concatenate([np.diag(Z[(k, k)]).astype(np.float64) for k in range(self.nb)])
            g -= nu * (self._barrier_grad(Z) - shift * corr - 1.0 / t)
        return fval + bar, lmax, g


def optimize(lmi: StructuredLMI, t0: np.ndarray, *, layer: bool = False, max_iter: int = 400,
             time_limit: float = 120.0, dtype="auto", mu_schedule=(3e-2, 3e-3, 3e-4, 3e-5, 3e-6, 1e-7),
             rel_tol: float = 1e-9, max_restarts: int = 3, pull: float = 0.05,
             barrier: bool | str = "auto") -> dict:
    """Minimise :math:`\\rho^\\star(t)` from ``t0`` (feasible) by smoothed L-BFGS in log-multipliers.

    ``layer=True`` restricts to one scale per block (LipSDP-Layer): :math:`t = t_0 \\odot e^{s_k}`.  Each
    smoothing level ``mu_schedule`` (relative to the current value) is one L-BFGS run; ``barrier`` ("auto":
    below 3000 neurons) adds the log-det barrier with weight ``mu / N``; a run stuck at the boundary of the
    domain restarts (``max_restarts``) from its best point pulled towards ``t0`` by ``pull``.  Returns the
    best multipliers found (by the unsmoothed :math:`\\lambda_{\\max}`) and a log of the run.
    """
    start = time.perf_counter()
    deadline = start + time_limit
    if dtype == "auto":
        dtype = np.float32 if lmi.N >= 3000 else np.float64
    dtype = np.dtype(dtype)
    t0 = np.asarray(t0, dtype=np.float64)
    if layer:
        idx = np.concatenate([np.full(s, k) for k, s in enumerate(lmi.sizes)])
        nvar = lmi.nb

        def expand(s):
            return t0 * np.exp(s[idx])

        def reduce(g_t, t):
            return np.bincount(idx, weights=g_t * t, minlength=lmi.nb)
    else:
        nvar = lmi.N

        def expand(s):
            return t0 * np.exp(s)

        def reduce(g_t, t):
            return g_t * t

    def _pull_in(sv, theta):
        # log of (1 - theta) * t + theta * t0 in the parametrisation t = t0 * exp(s)
        return np.log((1 - theta) * np.exp(sv) + theta)

    best = {"lmax": math.inf, "s": np.zeros(nvar)}
    counter = {"evals": 0}
    # float32 cannot resolve the smallest smoothing levels
    floor_mu = 3e-6 if dtype == np.float32 else 0.0

    if barrier == "auto":
        barrier = lmi.N < 3000
    shift = lmi.margin()

    def make_fun(mu):
        nu = mu / lmi.N if barrier else 0.0

        def fun(s):
            t = expand(s)
            counter["evals"] += 1
            f, lmax, g = lmi.evaluate(t, mu, grad=True, dtype=dtype, nu=nu, shift=shift)
            if not math.isfinite(f):
                return math.inf, None
            if lmax < best["lmax"]:
                best["lmax"], best["s"] = lmax, s.copy()
            return f, reduce(g, t)
        return fun

    s = np.zeros(nvar)
    f0, lmax0, _ = lmi.evaluate(expand(s), 0.0, grad=False, dtype=dtype, shift=shift)
    if not math.isfinite(f0):
        raise FloatingPointError("the starting multipliers are not feasible (X(t) is not positive definite).")
    best["lmax"], best["s"] = lmax0, s.copy()
    history = [("start", lmax0)]
    stages = []
    timed_out = False
    for mu_rel in mu_schedule:
        if counter["evals"] >= max_iter:
            break
        if time.perf_counter() > deadline:
            timed_out = True  # the safety cap, not the work budget, ended the run
            break
        mu = max(mu_rel, floor_mu) * max(abs(best["lmax"]), 1e-300)
        fun = make_fun(mu)
        s = best["s"].copy()
        for restart in range(max_restarts + 1):
            fs, gs = fun(s)
            if not math.isfinite(fs):
                break
            s, f, g, info = lbfgs(fun, s, f0=fs, g0=gs, max_iter=max(1, max_iter - counter["evals"]),
                                  deadline=deadline, rel_tol=max(rel_tol, mu_rel * 1e-3))
            if info["stop"] != "line_search" or restart == max_restarts:
                break
            # stuck at the boundary of {X(t) > 0}: pull the best point towards the strictly feasible start
            # (the domain is convex) and continue from there
            s = _pull_in(best["s"], pull)
        stages.append({"mu_rel": mu_rel, **info, "best": best["lmax"], "restarts": restart})
        history.append((f"mu={mu_rel:g}", best["lmax"]))
        if max(mu_rel, floor_mu) == floor_mu and floor_mu > 0:
            break
    timed_out = timed_out or any(st["stop"] == "time" for st in stages)
    return {"t": expand(best["s"]), "lmax": best["lmax"], "lmax0": lmax0, "stages": stages,
            "evaluations": counter["evals"], "seconds": time.perf_counter() - start, "dtype": dtype.name,
            "history": history, "timed_out": timed_out}


def _pow2_scale(diag: np.ndarray) -> np.ndarray:
    """Powers of two d_i with d_i^2 * diag_i in [0.5, 2) (1 where diag_i <= 0)."""
    out = np.ones_like(diag)
    pos = diag > 0
    out[pos] = np.exp2(-np.round(np.log2(diag[pos]) / 2))
    return out


def certify(lmi: StructuredLMI, t: np.ndarray, rho_hint: float | None = None, max_tries: int = 6) -> dict:
    r"""Verify in float64 that :math:`M(\rho, t) \succeq 0` for a :math:`\rho` close to :math:`\rho^\star(t)`.

    Steps: scale by powers of two :math:`\tilde M = DMD` (exact in floating point), factor :math:`\tilde X -
    cI` by block Cholesky, compute the Schur complement of the :math:`\Delta y` block and choose :math:`\rho`
    from its largest eigenvalue plus a margin, finish the factorisation of the whole :math:`\tilde M(\rho) -
    cI` with the :math:`\Delta y` block, and check a posteriori that the shift :math:`c` dominates the
    backward error of the factorisation (:math:`\gamma_{4(n+1)}\|\hat L\|_F^2`, Higham, *Accuracy and
    Stability of Numerical Algorithms*, Thm 10.3, with a factor 4 for the blocked variant), the rounding of
    the shift and the rounding errors of assembling :math:`M` (:math:`\gamma_{q}\|D|M|D\|_F`). Then
    :math:`M(\rho,t) \succeq 0` holds exactly, so :math:`\sqrt{\rho}` (rounded up) is a certified bound.
    Nothing computed by the optimiser is trusted: ``rho_hint`` is ignored except for logging.

    Returns a dict with ``certified``, ``rho``, ``reason`` and the checks.
    """
    t = np.asarray(t, dtype=np.float64)
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        return {"certified": False, "rho": math.inf, "reason": "multipliers must be finite and >= 0"}
    kern = lmi.kernels(np.float64)
    X, Q, R = lmi.assemble(t, np.float64)
    Xa, Qa, Ra = lmi.assemble(t, np.float64, absolute=True)
    ntot = lmi.N + lmi.m
    inner = max([lmi.m] + list(lmi.sizes) + [lmi.net.out_dim]) + 4
    gam_asm = _gamma(inner)
    gam_chol = _gamma(4 * (ntot + 1))
    dw = _pow2_scale(np.concatenate([np.diag(X[(k, k)]) for k in range(lmi.nb)]))
    dws = lmi.split(dw)
    Xs = {(i, j): dws[i][:, None] * v * dws[j][None, :] for (i, j), v in X.items()}
    Qw = [None if q is None else dws[k][:, None] * q for k, q in enumerate(Q)]
    fro2_x = sum((2.0 if i != j else 1.0) * float(np.sum((dws[i][:, None] * v * dws[j][None, :]) ** 2))
                 for (i, j), v in Xa.items())
    Qaw = [None if q is None else dws[k][:, None] * q for k, q in enumerate(Qa)]
    c = 4 * gam_chol * ntot * 2.5
    last_reason = ""
    for attempt in range(max_tries):
        Xc = {key: v.copy() for key, v in Xs.items()}
        for k in range(lmi.nb):
            Xc[(k, k)][np.diag_indices(lmi.sizes[k])] -= c
        L = lmi.factor(Xc, kern)
        if L is None:
            return {"certified": False, "rho": math.inf, "shift": c,
                    "reason": f"X(t) - cI (scaled, c={c:.2e}) is not positive definite: the multipliers are "
                              "infeasible or have no margin"}
        Z0 = lmi.forward(L, Qw, kern, lmi.m)          # v unscaled; scaling columns by powers of 2 is exact
        G0 = -R.copy()
        for Zk in Z0:
            G0 += Zk.T @ Zk
        G0 = (G0 + G0.T) / 2
        lam0 = float(np.linalg.eigvalsh(G0)[-1])
        dv = _pow2_scale(np.maximum(abs(lam0) + np.diag(R), 1e-300))
        # need rho * dv^2 - c - dv G0 dv >= 0  <=>  rho >= lambda_max(G0 + c * diag(dv^-2))
        Hm = G0 + np.diag(c / (dv * dv))
        lam = float(np.linalg.eigvalsh(Hm)[-1])
        margin = (1e-10 * 10 ** attempt) * max(abs(lam), 1e-300) + 8 * lmi.m * _U * float(np.linalg.norm(Hm))
        rho = float(np.nextafter(lam + margin, np.inf))
        Gs = dv[:, None] * G0 * dv[None, :]
        Fv = rho * (dv * dv) - c
        Sv = -Gs
        Sv[np.diag_indices(lmi.m)] += Fv
        Lv = kern.chol(np.array(Sv, order="F"))
        if Lv is None:
            last_reason = "final Schur block not positive definite"
            continue
        # assembly error bound in the scaled coordinates (Frobenius norm of gamma * D|M|D)
        fro2 = fro2_x
        for q in Qaw:
            if q is not None:
                fro2 += 2.0 * float(np.sum((q * dv[None, :]) ** 2))
        ras = dv[:, None] * (Ra + np.eye(lmi.m) * abs(rho) * 2) * dv[None, :]
        fro2 += float(np.sum(ras * ras))
        e_asm = gam_asm * math.sqrt(fro2) * 1.01
        lfro2 = sum(float(np.sum(v * v)) for v in L.values()) \
            + sum(float(np.sum((z * dv[None, :]) ** 2)) for z in Z0) + float(np.sum(Lv * Lv))
        diag_max = max(max(float(np.max(np.diag(Xs[(k, k)]))) for k in range(lmi.nb)), float(np.max(Fv)), 1.0)
        e_chol = gam_chol * lfro2
        e_shift = 2 * _U * (diag_max + c)
        need = e_chol + e_shift + e_asm
        if c > need:
            return {"certified": True, "rho": rho, "reason": "", "shift": c, "margin_needed": need,
                    "e_chol": e_chol, "e_asm": e_asm, "lfro2": lfro2, "attempts": attempt + 1,
                    "rho_hint": rho_hint}
        c = 2 * need
        last_reason = f"shift too small for the a-posteriori error bound (needed {need:.2e})"
    return {"certified": False, "rho": math.inf, "shift": c, "reason": last_reason or "certification failed"}
