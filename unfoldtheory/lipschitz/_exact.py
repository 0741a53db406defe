r"""Exact Lipschitz constants of small unrolled networks by mixed-integer programming over activation regions.

Every supported activation is piecewise linear (soft threshold and clip: three pieces, ReLU and leaky ReLU:
two, identity: one), so :math:`f: y \mapsto x_K` is continuous and piecewise affine.  On a convex domain
:math:`D` its Lipschitz constant (operator norm :math:`\|\cdot\|_{p\to p}`) is the largest norm of the
Jacobian of a *region* (activation pattern) whose intersection with :math:`D` has nonempty interior
(``docs/theory/exact_lipschitz.md §1``).  The pattern is encoded with one binary per piece of every neuron
(big-M constraints on the pre-activation :math:`z`), the directional derivative :math:`J(y)v` by a second,
linear copy of the network whose slopes are switched by the same binaries (the product of a binary and a
bounded continuous variable is linearised exactly), and

* :math:`p = \infty`: :math:`\|J\|_{\infty\to\infty} = \max_i \max_{v\in[-1,1]^m} e_i^TJv`, one MILP
  (exact up to the solver's gap; ``§2``);
* :math:`p = 2`: a certified bracket: lower end = the spectral norm of an attained region Jacobian
  (alternating MILPs over fixed directions :math:`(c, v)`), upper end
  :math:`\sqrt{\|J\|_{\infty\to\infty}\|J\|_{1\to 1}}` maximised separately (``§3``).

The global domain (all of :math:`\mathbb{R}^m`) is handled by homogenisation: :math:`(y, t)` with
:math:`t \in [0, 1]`, thresholds and biases multiplied by :math:`t`, so every pattern reachable anywhere is
reachable in a bounded set (``§2``).  The witness pattern is certified by a linear program that finds a point
strictly inside its region and a float64 recomputation of the Jacobian there (``§4``).

Reference: M. Jordan, A. G. Dimakis, "Exactly computing the local Lipschitz constant of ReLU networks",
NeurIPS 2020 (LipMIP: mixed-integer formulation of the Jacobian norm over activation patterns).  The
formulation here is written for the analysis form (input injection, soft thresholds, clips, leaky ReLUs).
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..bounds import Bound
from ..errors import InvalidInputError, SolverError
from ..form import Clip, Form, Identity, LeakyReLU, ReLU, SoftThreshold

log = logging.getLogger(__name__)

_U = np.finfo(np.float64).eps / 2
_INF = math.inf


# ---------------------------------------------------------------------------------------------- pieces


@dataclass
class Pieces:
    """Per neuron: the list of linear pieces ``(s, c, glo, ghi)``: on ``glo*t <= z <= ghi*t`` the activation
    is ``w = s*z + c*t``."""

    pieces: list  # pieces[i] = [(s, c, glo, ghi), ...]


def neuron_pieces(form: Form) -> list:
    """The linear pieces of every neuron of ``form`` (see :class:`Pieces`); ``docs/theory/exact_lipschitz.md
    §1``."""
    out = []
    for blk in form.blocks:
        act = blk.activation
        for i in range(blk.size):
            if isinstance(act, SoftThreshold):
                th = float(act.theta[i])
                out.append([(1.0, th, -_INF, -th), (0.0, 0.0, -th, th), (1.0, -th, th, _INF)])
            elif isinstance(act, ReLU):
                out.append([(0.0, 0.0, -_INF, 0.0), (1.0, 0.0, 0.0, _INF)])
            elif isinstance(act, LeakyReLU):
                out.append([(float(act.negative_slope), 0.0, -_INF, 0.0), (1.0, 0.0, 0.0, _INF)])
            elif isinstance(act, Clip):
                lo, hi = float(act.lower[i]), float(act.upper[i])
                out.append([(0.0, lo, -_INF, lo), (1.0, 0.0, lo, hi), (0.0, hi, hi, _INF)])
            elif isinstance(act, Identity):
                out.append([(1.0, 0.0, -_INF, _INF)])
            else:  # pragma: no cover - Form refuses other activations
                raise InvalidInputError(f"unsupported activation {type(act).__name__}.")
    return out


def _tmul(g: float, tlo: float, thi: float) -> tuple[float, float]:
    """Range of ``g * t`` for ``t`` in ``[tlo, thi]`` (g finite)."""
    a, b = g * tlo, g * thi
    return min(a, b), max(a, b)


def _piece_possible(p, L: float, U: float, tlo: float, thi: float) -> bool:
    glo, ghi = p[2], p[3]
    if math.isfinite(glo) and U < _tmul(glo, tlo, thi)[0]:
        return False
    return not (math.isfinite(ghi) and L > _tmul(ghi, tlo, thi)[1])


def _act_range(p_list, L, U, tlo, thi) -> tuple[float, float]:
    """Sound range of ``w`` over ``z in [L, U]``, ``t in [tlo, thi]`` using the possible pieces (each piece's
    affine map evaluated at the corners of its domain box)."""
    lo, hi = _INF, -_INF
    for s, c, glo, ghi in p_list:
        for t in (tlo, thi):
            zl = L if not math.isfinite(glo) else max(L, glo * t)
            zh = U if not math.isfinite(ghi) else min(U, ghi * t)
            if zl > zh:
                continue
            for z in (zl, zh):
                val = s * z + c * t
                lo, hi = min(lo, val), max(hi, val)
    if lo > hi:  # no corner feasible (the piece was admitted by the coarse test): fall back to a wide range
        lo, hi = min(0.0, L), max(0.0, U)
    return lo, hi


def _widen(lo, hi):
    r = 1e-7 * (np.abs(lo) + np.abs(hi)) + 1e-9
    return lo - r, hi + r


def interval_propagation(d: dict, pieces: list, ylo, yhi, tlo: float, thi: float, Lcur=None, Ucur=None):
    """Pre-activation and activation intervals over ``y in [ylo, yhi]``, ``t in [tlo, thi]`` (neuron by
    neuron, widened by a relative 1e-7 so that rounding never cuts off a feasible point), and the pieces
    possible for every neuron."""
    A, B, b = d["A"], d["B"], d["b"]
    N = A.shape[0]
    L, U = np.zeros(N), np.zeros(N)
    WL, WU = np.zeros(N), np.zeros(N)
    possible = []
    Bp, Bn = np.maximum(B, 0), np.minimum(B, 0)
    for i in range(N):
        a = A[i, :i]
        ap, an = np.maximum(a, 0), np.minimum(a, 0)
        lo = ap @ WL[:i] + an @ WU[:i] + Bp[i] @ ylo + Bn[i] @ yhi + min(b[i] * tlo, b[i] * thi)
        hi = ap @ WU[:i] + an @ WL[:i] + Bp[i] @ yhi + Bn[i] @ ylo + max(b[i] * tlo, b[i] * thi)
        lo, hi = _widen(lo, hi)
        if Lcur is not None:
            lo, hi = max(lo, Lcur[i]), min(hi, Ucur[i])
        L[i], U[i] = lo, hi
        ps = [p for p in pieces[i] if _piece_possible(p, lo, hi, tlo, thi)]
        if not ps:  # cannot happen for a valid interval; keep all pieces to stay sound
            ps = list(pieces[i])
        possible.append(ps)
        wl, wh = _act_range(ps, lo, hi, tlo, thi)
        WL[i], WU[i] = _widen(wl, wh)
    return L, U, WL, WU, possible


def direction_intervals(T: np.ndarray, E: np.ndarray, slopes: list, vlo, vhi, order, cur=None) -> tuple:
    """Intervals of ``pre = T post + E v``, ``post = s * pre`` (s in the neuron's possible slopes) for
    ``v in [vlo, vhi]``, computed in the topological ``order`` of the strictly triangular ``T``."""
    N = T.shape[0]
    PL, PU, QL, QU = (np.zeros(N) for _ in range(4))
    Ep, En = np.maximum(E, 0), np.minimum(E, 0)
    Tp, Tn = np.maximum(T, 0), np.minimum(T, 0)
    for i in order:
        lo = Tp[i] @ QL + Tn[i] @ QU + Ep[i] @ vlo + En[i] @ vhi
        hi = Tp[i] @ QU + Tn[i] @ QL + Ep[i] @ vhi + En[i] @ vlo
        lo, hi = _widen(lo, hi)
        if cur is not None:
            lo, hi = max(lo, cur[0][i]), min(hi, cur[1][i])
        PL[i], PU[i] = lo, hi
        vals = [s * lo for s in slopes[i]] + [s * hi for s in slopes[i]]
        QL[i], QU[i] = _widen(min(vals), max(vals))
        if cur is not None:
            QL[i], QU[i] = max(QL[i], cur[2][i]), min(QU[i], cur[3][i])
    return PL, PU, QL, QU


# ---------------------------------------------------------------------------------------------- the MILP


class _Model:
    """A tiny row-wise builder for ``scipy.optimize.milp``."""

    def __init__(self):
        self.lb, self.ub, self.integ = [], [], []
        self.rows, self.cols, self.vals, self.rlo, self.rhi = [], [], [], [], []
        self.nrows = 0

    def var(self, lb, ub, integer=False) -> int:
        self.lb.append(lb)
        self.ub.append(ub)
        self.integ.append(1 if integer else 0)
        return len(self.lb) - 1

    def vars(self, lb, ub) -> np.ndarray:
        return np.array([self.var(float(a), float(b)) for a, b in zip(lb, ub)], dtype=int)

    def row(self, coefs: dict, lo: float, hi: float):
        for j, v in coefs.items():
            if v != 0.0:
                self.rows.append(self.nrows)
                self.cols.append(j)
                self.vals.append(float(v))
        self.rlo.append(lo)
        self.rhi.append(hi)
        self.nrows += 1

    def relaxed(self):
        """A HiGHS object holding the LP relaxation (integrality dropped), for bound tightening."""
        return self._highs(relax=True)

    def _highs(self, relax: bool = False):
        import os

        from highspy import _core
        from scipy.sparse import coo_matrix

        n = len(self.lb)
        A = coo_matrix((self.vals, (self.rows, self.cols)), shape=(self.nrows, n)).tocsc()
        h = _core._Highs()
        h.setOptionValue("output_flag", bool(os.environ.get("UT_MILP_DISP")) and not relax)
        # no "threads" option: HiGHS keeps one global scheduler per process, and asking a later model for a
        # different thread count than an earlier HiGHS user (e.g. generalized_coherence) makes run() fail
        h.setOptionValue("random_seed", 0)
        lp = _core.HighsLp()
        lp.num_col_, lp.num_row_ = n, self.nrows
        lp.col_cost_ = np.zeros(n)
        lp.col_lower_, lp.col_upper_ = np.array(self.lb, float), np.array(self.ub, float)
        lp.row_lower_, lp.row_upper_ = np.array(self.rlo, float), np.array(self.rhi, float)
        lp.a_matrix_.format_ = _core.MatrixFormat.kColwise
        lp.a_matrix_.start_ = A.indptr.astype(np.int32)
        lp.a_matrix_.index_ = A.indices.astype(np.int32)
        lp.a_matrix_.value_ = A.data.astype(float)
        lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n, self.nrows
        if not relax:
            lp.integrality_ = [_core.HighsVarType.kInteger if k else _core.HighsVarType.kContinuous
                               for k in self.integ]
        h.passModel(lp)
        return h

    def solve(self, objective: dict, *, node_limit: int | None, time_limit: float | None, gap: float,
              start: dict | None = None, cutoff: float | None = None) -> dict:
        """Maximise ``objective`` (dict var -> coefficient) with HiGHS (highspy), optionally from a partial
        start ``{var: value}`` (the integer variables of a known feasible point; HiGHS completes it).
        Returns ``{"x", "status", "message", "primal", "dual", "nodes"}`` (``dual``: the proven upper bound)."""
        from highspy import _core  # the C++ binding: highspy.Highs() prints a banner on construction

        n = len(self.lb)
        h = self._highs()
        c = np.zeros(n)
        for j, v in objective.items():
            c[j] -= v
        h.changeColsCost(n, np.arange(n, dtype=np.int32), c)
        h.setOptionValue("mip_rel_gap", float(gap))
        h.setOptionValue("mip_abs_gap", 1e-9)
        if node_limit is not None:
            h.setOptionValue("mip_max_nodes", int(node_limit))
        if time_limit is not None:
            h.setOptionValue("time_limit", float(time_limit))
        if cutoff is not None:
            h.setOptionValue("objective_bound", -float(cutoff))
        if start:
            idx = np.array(sorted(start), dtype=np.int32)
            h.setSolution(int(idx.size), idx, np.array([float(start[i]) for i in idx]))
        run_status = h.run()
        info = h.getInfo()
        status = h.getModelStatus()
        msg = h.modelStatusToString(status)
        if run_status == _core.HighsStatus.kError or status not in _trusted_statuses():
            # no proven bound comes out of a failed solve: never read mip_dual_bound from it
            raise SolverError(f"HiGHS could not solve the exact-Lipschitz MILP (model status: {msg}); the "
                              "problem may be too large or badly scaled. Use a smaller network, a bounded "
                              "domain, or lipschitz.upper_bound / lower_bound instead.")
        has_x = int(getattr(info, "primal_solution_status", 0)) >= 2
        x = np.array(h.getSolution().col_value) if has_x else None
        dual = float(info.mip_dual_bound)
        primal = float(info.objective_function_value) if has_x else math.inf
        optimal = status == _core.HighsModelStatus.kOptimal
        if cutoff is not None and status in (_core.HighsModelStatus.kInfeasible,
                                             _core.HighsModelStatus.kObjectiveBound):
            # nothing beats the cutoff: the optimum is at most the cutoff
            return {"x": None, "status": 0, "message": msg + " (nothing above the cutoff)", "primal": -_INF,
                    "dual": float(cutoff), "nodes": int(info.mip_node_count)}
        return {"x": x, "status": 0 if optimal else 1, "message": msg, "primal": -primal,
                "dual": -dual if math.isfinite(dual) else math.inf,
                "nodes": int(info.mip_node_count)}


def _trusted_statuses():
    from highspy import _core

    S = _core.HighsModelStatus
    # statuses after which HiGHS's dual bound is a proven bound (an optimum, or a search stopped by a limit)
    return (S.kOptimal, S.kTimeLimit, S.kIterationLimit, S.kSolutionLimit, S.kObjectiveBound, S.kInfeasible,
            S.kInterrupt)


@dataclass
class Problem:
    """The data of one exact-Lipschitz problem: dense form, pieces, domain, intervals."""

    d: dict
    pieces: list
    possible: list
    ylo: np.ndarray
    yhi: np.ndarray
    tlo: float
    thi: float
    L: np.ndarray
    U: np.ndarray
    WL: np.ndarray
    WU: np.ndarray
    homogeneous: bool
    sizes: list
    dbounds: dict | None = None   # mode -> (PL, PU, QL, QU) tightened direction intervals


def make_problem(form: Form, domain: Any, max_neurons: int) -> Problem:
    """Dense form, pieces and intervals for ``domain`` (None: global, homogenised; see
    ``docs/theory/exact_lipschitz.md §2``)."""
    N = form.num_neurons
    pieces = neuron_pieces(form)
    npw = sum(len(p) > 1 for p in pieces)
    if npw > max_neurons:
        raise InvalidInputError(
            f"exact() is for small networks: this one has {npw} piecewise-linear neurons > max_neurons="
            f"{max_neurons} (identity neurons are not counted; the MILP "
            "has a binary per activation piece and its branch and bound grows exponentially). Use "
            "upper_bound(method='lipsdp') and lower_bound() for a certified bracket, or raise max_neurons "
            "explicitly.")
    d = form.dense(max_neurons=max(N, 1))
    m = form.input_dim
    if domain is None:
        ylo, yhi, tlo, thi, homog = -np.ones(m), np.ones(m), 0.0, 1.0, True
    else:
        ylo, yhi = parse_domain(domain, m)
        tlo, thi, homog = 1.0, 1.0, False
    Lc = Uc = None
    if not homog:
        # linear bound propagation (docs/theory/exact_lipschitz.md §7) stays tight with depth where intervals
        # explode; both are sound, so the intersection is (interval_propagation intersects)
        from ._linear import linear_bounds

        pre = linear_bounds(form, (ylo + yhi) / 2, (yhi - ylo) / 2, "linf")
        Lc = np.concatenate([lb for lb, _ in pre]) if pre else np.zeros(0)
        Uc = np.concatenate([ub for _, ub in pre]) if pre else np.zeros(0)
    L, U, WL, WU, possible = interval_propagation(d, pieces, ylo, yhi, tlo, thi, Lc, Uc)
    return Problem(d, pieces, possible, ylo, yhi, tlo, thi, L, U, WL, WU, homog, form.sizes)


def parse_domain(domain: Any, m: int) -> tuple[np.ndarray, np.ndarray]:
    """A box ``(lower, upper)`` (arrays or scalars) or a dict ``{"center", "radius"}`` (an l-infinity ball)
    as ``(lower, upper)`` arrays of shape (m,)."""
    if isinstance(domain, dict):
        if set(domain) - {"center", "radius", "norm"} or "center" not in domain or "radius" not in domain:
            raise InvalidInputError(
                "domain as a dict must be {'center': (m,), 'radius': r} (an l-infinity ball); got keys "
                f"{sorted(domain)}.")
        if domain.get("norm", "linf") != "linf":
            raise InvalidInputError(
                "exact() supports box domains (an l-infinity ball); an l2 ball is not polyhedral. Pass the "
                "enclosing box {'center': c, 'radius': r} (norm 'linf'), which gives the constant on the box.")
        c = np.broadcast_to(np.asarray(domain["center"], dtype=float), (m,))
        r = float(domain["radius"])
        if not (math.isfinite(r) and r > 0):
            raise InvalidInputError(f"domain radius must be a positive finite number; got {domain['radius']!r}.")
        lo, hi = c - r, c + r
    else:
        try:
            lo, hi = domain
        except (TypeError, ValueError):
            raise InvalidInputError(
                "domain must be None (global), a box (lower, upper) or {'center': c, 'radius': r}; got "
                f"{type(domain).__name__}.") from None
        lo = np.broadcast_to(np.asarray(lo, dtype=float), (m,)).copy()
        hi = np.broadcast_to(np.asarray(hi, dtype=float), (m,)).copy()
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise InvalidInputError("domain bounds must be finite; for the whole space pass domain=None.")
    if np.any(lo >= hi):
        j = int(np.argmax(lo >= hi))
        raise InvalidInputError(
            f"domain box must have lower < upper in every coordinate (nonempty interior); coordinate {j} has "
            f"[{lo[j]:g}, {hi[j]:g}].")
    return lo, hi


def _big(x: float) -> float:
    return float(x) if math.isfinite(x) else 0.0


def build(prob: Problem, mode: str, direction: np.ndarray | None = None, weights: np.ndarray | None = None):
    """Build the MILP.

    ``mode="rows"``: maximise :math:`\\max_i e_i^TJ(y)v` over ``v in [-1,1]^m`` (the l-inf operator norm);
    ``mode="cols"``: maximise :math:`\\max_j c^TJ(y)e_j` over ``c in [-1,1]^out`` (the l1 operator norm,
    through the reverse-mode copy); ``mode="fixed"``: maximise ``weights^T J(y) direction``.
    Returns ``(model, objective, handles)``.
    """
    d, P = prob.d, prob.possible
    A, B, b, C = d["A"], d["B"], d["b"], d["C"]
    N, m = A.shape[0], B.shape[1]
    out = C.shape[0]
    M = _Model()
    y = M.vars(prob.ylo, prob.yhi)
    t = M.var(prob.tlo, prob.thi)
    z = M.vars(prob.L, prob.U)
    w = M.vars(prob.WL, prob.WU)
    delta = []
    for i in range(N):
        # z_i = A_i w + B_i y + b_i t
        co = {int(z[i]): -1.0, t: float(b[i])}
        for j in np.flatnonzero(A[i, :i]):
            co[int(w[j])] = float(A[i, j])
        for j in np.flatnonzero(B[i]):
            co[int(y[j])] = float(B[i, j])
        M.row(co, 0.0, 0.0)
        ps = P[i]
        if len(ps) == 1:
            s, c, _, _ = ps[0]
            M.row({int(w[i]): 1.0, int(z[i]): -s, t: -c}, 0.0, 0.0)
            delta.append([None])
            continue
        ds = [M.var(0.0, 1.0, integer=True) for _ in ps]
        delta.append(ds)
        M.row({dv: 1.0 for dv in ds}, 1.0, 1.0)
        for (s, c, glo, ghi), dv in zip(ps, ds):
            # e = w - s z - c t = 0 when delta = 1
            e_min = prob.WL[i] - max(s * prob.L[i], s * prob.U[i]) - _tmul(c, prob.tlo, prob.thi)[1]
            e_max = prob.WU[i] - min(s * prob.L[i], s * prob.U[i]) - _tmul(c, prob.tlo, prob.thi)[0]
            e_min, e_max = min(e_min, 0.0) * 1.01 - 1e-9, max(e_max, 0.0) * 1.01 + 1e-9
            M.row({int(w[i]): 1.0, int(z[i]): -s, t: -c, dv: e_max}, -_INF, e_max)
            M.row({int(w[i]): 1.0, int(z[i]): -s, t: -c, dv: e_min}, e_min, _INF)
            if math.isfinite(glo):  # z - glo t >= 0 when delta = 1
                h_min = min(prob.L[i] - _tmul(glo, prob.tlo, prob.thi)[1], 0.0) * 1.01 - 1e-9
                M.row({int(z[i]): 1.0, t: -glo, dv: h_min}, h_min, _INF)
            if math.isfinite(ghi):  # ghi t - z >= 0 when delta = 1
                g_min = min(_tmul(ghi, prob.tlo, prob.thi)[0] - prob.U[i], 0.0) * 1.01 - 1e-9
                M.row({int(z[i]): -1.0, t: ghi, dv: g_min}, g_min, _INF)
    if prob.homogeneous:
        # ||(y, t)||_inf = 1: the point lies on a face of the normalisation box (one binary per face), which
        # excludes the origin, where every closed pattern would be feasible (docs/theory/exact_lipschitz.md §2)
        faces = []
        for j in range(m):
            fp, fn = M.var(0.0, 1.0, integer=True), M.var(0.0, 1.0, integer=True)
            M.row({int(y[j]): 1.0, fp: -2.0}, -1.0, _INF)       # y_j >= 2 phi+ - 1
            M.row({int(y[j]): 1.0, fn: 2.0}, -_INF, 1.0)        # y_j <= 1 - 2 phi-
            faces += [fp, fn]
        ft = M.var(0.0, 1.0, integer=True)
        M.row({t: 1.0, ft: -1.0}, 0.0, _INF)                    # t >= phi_t
        faces.append(ft)
        M.row({f_: 1.0 for f_ in faces}, 1.0, 1.0)
    else:
        faces = []
    slopes = [[p[0] for p in ps] for ps in P]
    if mode in ("rows", "fixed"):
        T, E, F, order = A, B, C, range(N)
        if mode == "fixed":
            vlo = vhi = np.asarray(direction, dtype=float)
        else:
            vlo, vhi = -np.ones(m), np.ones(m)
    elif mode == "cols":
        T, E, F, order = A.T, C.T, B.T, range(N - 1, -1, -1)
        vlo, vhi = -np.ones(out), np.ones(out)
    else:  # pragma: no cover - internal
        raise ValueError(mode)
    key = mode if mode != "fixed" else ("fixed", tuple(np.round(np.asarray(direction, float), 15)))
    cur = prob.dbounds.get(key) if prob.dbounds else None
    PL, PU, QL, QU = direction_intervals(T, E, slopes, vlo, vhi, order, cur)
    fixed_v = mode == "fixed"
    v = None if fixed_v else M.vars(vlo, vhi)
    pre = M.vars(PL, PU)
    post = M.vars(QL, QU)
    for i in order:
        co = {int(pre[i]): -1.0}
        for j in np.flatnonzero(T[i]):
            co[int(post[j])] = float(T[i, j])
        const = 0.0
        if fixed_v:
            const = float(E[i] @ vlo)
        else:
            for j in np.flatnonzero(E[i]):
                co[int(v[j])] = float(E[i, j])
        M.row(co, -const, -const)
        ps = P[i]
        if len(ps) == 1:
            M.row({int(post[i]): 1.0, int(pre[i]): -ps[0][0]}, 0.0, 0.0)
            continue
        us = [M.var(min(PL[i], 0.0), max(PU[i], 0.0)) for _ in ps]
        M.row({**{u: 1.0 for u in us}, int(pre[i]): -1.0}, 0.0, 0.0)
        M.row({**{u: p[0] for u, p in zip(us, ps)}, int(post[i]): -1.0}, 0.0, 0.0)
        for u, dv in zip(us, delta[i]):
            lo_, hi_ = min(PL[i], 0.0), max(PU[i], 0.0)
            M.row({u: 1.0, dv: -hi_}, -_INF, 0.0)   # u <= hi * delta
            M.row({u: 1.0, dv: -lo_}, 0.0, _INF)    # u >= lo * delta
    # outputs: o = F post
    nout = F.shape[0]
    OB = np.abs(F) @ np.maximum(np.abs(QL), np.abs(QU))
    OB = OB * (1 + 1e-7) + 1e-9
    if mode == "fixed" or weights is not None:
        wts = np.asarray(weights, dtype=float)
        obj: dict = {}
        for k in range(nout):
            if wts[k] == 0.0:
                continue
            for j in np.flatnonzero(F[k]):
                obj[int(post[j])] = obj.get(int(post[j]), 0.0) + wts[k] * F[k, j]
        return M, obj, {"y": y, "t": t, "delta": delta, "faces": faces, "z": z, "pre": pre,
                        "bigM": float(np.abs(wts) @ OB),
                        "dir": (PL, PU, QL, QU), "key": key, "order": list(order)}
    sig = [M.var(0.0, 1.0, integer=True) for _ in range(nout)]
    q = [M.var(-OB[k], OB[k]) for k in range(nout)]
    M.row({s_: 1.0 for s_ in sig}, 1.0, 1.0)
    for k in range(nout):
        co = {q[k]: 1.0, sig[k]: OB[k]}
        for j in np.flatnonzero(F[k]):
            co[int(post[j])] = co.get(int(post[j]), 0.0) - float(F[k, j])
        M.row(co, -_INF, OB[k])                 # q_k <= o_k + OB (1 - sigma_k)
        M.row({q[k]: 1.0, sig[k]: -OB[k]}, -_INF, 0.0)  # q_k <= OB sigma_k
    return M, {qk: 1.0 for qk in q}, {"y": y, "t": t, "delta": delta, "bigM": float(np.sum(OB)),
                                      "faces": faces, "sigma": sig, "z": z, "pre": pre,
                                      "dir": (PL, PU, QL, QU), "key": key, "order": list(order)}


def _lp_range(h, n: int, j: int) -> tuple[float, float]:
    """min and max of variable ``j`` over the LP in ``h`` (-inf/inf when a solve fails)."""
    from highspy import _core

    out = []
    for sgn in (1.0, -1.0):
        c = np.zeros(n)
        c[j] = sgn
        h.changeColsCost(n, np.arange(n, dtype=np.int32), c)
        h.run()
        if h.getModelStatus() != _core.HighsModelStatus.kOptimal:
            out.append(-_INF if sgn > 0 else _INF)
            continue
        out.append(sgn * float(h.getInfo().objective_function_value))
    lo, hi = out
    # HiGHS's primal/dual feasibility tolerances are 1e-7: widen by much more than that
    r = 1e-6 * (abs(lo) + abs(hi)) + 1e-6
    return lo - r, hi + r


def _refresh(prob: Problem) -> None:
    """Re-derive activation ranges and possible pieces from the (tightened) pre-activation intervals, and
    re-propagate intervals forward, intersecting with the current ones."""
    L, U, WL, WU, possible = interval_propagation(prob.d, prob.pieces, prob.ylo, prob.yhi, prob.tlo, prob.thi,
                                                  Lcur=prob.L, Ucur=prob.U)
    prob.L, prob.U, prob.WL, prob.WU, prob.possible = L, U, WL, WU, possible


def tighten(prob: Problem, modes: list, deadline: float | None = None, directions: dict | None = None) -> dict:
    """Optimisation-based bound tightening (progressive LP bounds, as in MIPVerify: Tjeng, Xiao, Tedrake 2019):
    block by block, minimise and maximise every pre-activation ``z_i`` and every direction variable over the
    LP relaxation of the MILP built with the bounds found so far.  Tighter bounds give smaller big-M constants
    and fix pieces (``docs/theory/exact_lipschitz.md §2``).  Sound: each new bound is an LP optimum widened
    by far more than the LP tolerances, and only ever intersected with the old one."""
    offs = np.concatenate([[0], np.cumsum(prob.sizes)]).astype(int)
    stats = {"lps": 0, "fixed_before": sum(len(p) == 1 for p in prob.possible)}
    for k in range(len(prob.sizes)):
        if deadline is not None and time.perf_counter() > deadline:
            break
        M, _, h = build(prob, modes[0], (directions or {}).get(modes[0]))
        hl = M.relaxed()
        n = len(M.lb)
        for i in range(offs[k], offs[k + 1]):
            if len(prob.possible[i]) == 1 and k > 0:
                continue
            lo, hi = _lp_range(hl, n, int(h["z"][i]))
            stats["lps"] += 2
            prob.L[i], prob.U[i] = max(prob.L[i], lo), min(prob.U[i], hi)
        _refresh(prob)
    prob.dbounds = dict(prob.dbounds or {})
    for mode in modes:
        M, _, h = build(prob, mode, (directions or {}).get(mode))
        PL, PU, QL, QU = (v.copy() for v in h["dir"])
        order = h["order"]
        # the direction variables, in topological order, block by block (rebuild per block)
        blocks_in_order = []
        for i in order:
            kb = int(np.searchsorted(offs, i, side="right") - 1)
            if not blocks_in_order or blocks_in_order[-1] != kb:
                blocks_in_order.append(kb)
        for kb in blocks_in_order:
            if deadline is not None and time.perf_counter() > deadline:
                break
            prob.dbounds[h["key"]] = (PL, PU, QL, QU)
            M, _, h = build(prob, mode, (directions or {}).get(mode))
            PL, PU, QL, QU = (v.copy() for v in h["dir"])
            hl = M.relaxed()
            n = len(M.lb)
            for i in range(offs[kb], offs[kb + 1]):
                lo, hi = _lp_range(hl, n, int(h["pre"][i]))
                stats["lps"] += 2
                PL[i], PU[i] = max(PL[i], lo), min(PU[i], hi)
                sl = [p[0] for p in prob.possible[i]]
                vals = [sv * PL[i] for sv in sl] + [sv * PU[i] for sv in sl]
                QL[i], QU[i] = max(QL[i], min(vals)), min(QU[i], max(vals))
        prob.dbounds[h["key"]] = (PL, PU, QL, QU)
    stats["fixed_after"] = sum(len(p) == 1 for p in prob.possible)
    return stats


def pattern_of(prob: Problem, x: np.ndarray, delta: list) -> list:
    """The piece index (into ``prob.pieces[i]``) chosen by the MILP solution ``x`` for every neuron."""
    pat = []
    for i, ds in enumerate(delta):
        ps = prob.possible[i]
        k = 0 if ds[0] is None else int(np.argmax([x[dv] for dv in ds]))
        pat.append(prob.pieces[i].index(ps[k]))
    return pat


# ---------------------------------------------------------------------------------------------- witnesses


def region_rows(prob: Problem, pattern: list) -> tuple[np.ndarray, np.ndarray]:
    """Affine maps of the pre-activations and the Jacobian on the region of ``pattern``:
    ``Z`` (N, m+1) with ``z = Z @ (y, t)``, and ``J`` (out, m)."""
    d = prob.d
    A, B, b, C = d["A"], d["B"], d["b"], d["C"]
    N, m = A.shape[0], B.shape[1]
    Z = np.zeros((N, m + 1))
    W = np.zeros((N, m + 1))
    sc = np.array([prob.pieces[i][pattern[i]][:2] for i in range(N)], dtype=float).reshape(N, 2)
    # block by block (a block reads earlier blocks only, so A is zero inside a block's diagonal square)
    off = np.concatenate([[0], np.cumsum(prob.sizes)]).astype(int)
    for a, e in zip(off[:-1], off[1:]):
        Z[a:e, :m] = A[a:e, :a] @ W[:a, :m] + B[a:e]
        Z[a:e, m] = A[a:e, :a] @ W[:a, m] + b[a:e]
        W[a:e] = sc[a:e, :1] * Z[a:e]
        W[a:e, m] += sc[a:e, 1]
    return Z, C @ W[:, :m]


def interior_point(prob: Problem, pattern: list) -> tuple[np.ndarray | None, float]:
    """A point strictly inside the region of ``pattern`` (within the domain), by the LP
    ``max s`` s.t. every piece constraint holds with normalised margin ``s`` (``docs/theory/exact_lipschitz.md
    §4``).  Returns ``(y, s)``; ``y`` is None when the region has empty interior (``s <= 0``)."""
    from scipy.optimize import linprog

    Z, _ = region_rows(prob, pattern)
    m = prob.d["B"].shape[1]
    rows, rhs = [], []

    def add(coef):  # coef . (y, t) >= s * ||coef||  ->  -coef.(y,t) + ||coef|| s <= 0
        nrm = float(np.linalg.norm(coef))
        if nrm == 0.0:
            return
        rows.append(np.concatenate([-coef, [nrm]]))
        rhs.append(0.0)

    for i, k in enumerate(pattern):
        _, _, glo, ghi = prob.pieces[i][k]
        if math.isfinite(glo):
            coef = Z[i].copy()
            coef[m] -= glo
            add(coef)
        if math.isfinite(ghi):
            coef = -Z[i].copy()
            coef[m] += ghi
            add(coef)
    bounds = [(float(a), float(c)) for a, c in zip(prob.ylo, prob.yhi)]
    if prob.homogeneous:
        e = np.zeros(m + 1)
        e[m] = 1.0
        add(e)                                     # t >= s
        bounds.append((0.0, 1.0))
    else:
        for j in range(m):                         # strictly inside the box
            e = np.zeros(m + 1)
            e[j] = 1.0
            add(np.concatenate([e[:m], [-prob.ylo[j]]]))
            add(np.concatenate([-e[:m], [prob.yhi[j]]]))
        bounds.append((1.0, 1.0))
    bounds.append((None, 1.0))
    c = np.zeros(m + 2)
    c[-1] = -1.0
    if not rows:
        res_x = np.concatenate([(prob.ylo + prob.yhi) / 2, [1.0, 1.0]])
        s_opt = 1.0
    else:
        res = linprog(c, A_ub=np.array(rows), b_ub=np.array(rhs), bounds=bounds, method="highs")
        if res.status != 0:
            return None, -_INF
        res_x, s_opt = res.x, float(res.x[-1])
    if not s_opt > 1e-12:
        return None, s_opt
    yt = res_x[:m + 1]
    y = yt[:m] / yt[m]
    return y, s_opt


def _pattern_at(form: Form, pieces: list, y: np.ndarray):
    """Pre-activations at ``y`` in float64, their rounding-error bounds, and per neuron the set of pieces whose
    closed domain contains z within the error (a neuron is *strict* if that set has one element).

    Error model (``docs/theory/exact_lipschitz.md §4``): the float64 pre-activation of neuron ``i`` is an
    inner product of length ``n_i`` (its inputs, the input injection and the bias), so its own rounding is at
    most ``gamma_{n_i} (|A_i||w| + |B_i||y| + |b_i|)``; errors of the inputs propagate through ``|A_i|`` times
    the activation's error, which for a strict neuron is ``s |err z| + u |w|`` (slope ``s`` of its piece; a
    neuron in a flat piece outputs its constant exactly).  A neuron that is not strict propagates ``|err z|``
    plus the jump to the neighbouring pieces (it is reported as ambiguous anyway)."""
    zs, ws, _ = form.evaluate_blocks(y[None, :])
    z = np.concatenate([zz[0] for zz in zs])
    w = np.concatenate([ww[0] for ww in ws])
    d = form.dense(max_neurons=max(form.num_neurons, 1))
    A, B, b = np.abs(d["A"]), np.abs(d["B"]), np.abs(d["b"])
    N = A.shape[0]
    m = form.input_dim
    ay = np.abs(y)
    err = np.zeros(N)
    werr = np.zeros(N)
    cand = []
    for i in range(N):
        n_i = int(np.count_nonzero(A[i, :i])) + int(np.count_nonzero(B[i])) + 2
        gam = n_i * _U / (1 - n_i * _U)
        mag = A[i, :i] @ np.abs(w[:i]) + B[i] @ ay + b[i]
        e = gam * mag + A[i, :i] @ werr[:i]
        e = e * (1 + 4 * _U) + 2 * _U * abs(z[i]) + 1e-300
        err[i] = e
        ok = []
        for k, (_, _, glo, ghi) in enumerate(pieces[i]):
            if (not math.isfinite(glo) or z[i] >= glo - e) and (not math.isfinite(ghi) or z[i] <= ghi + e):
                ok.append(k)
        cand.append(ok)
        if len(ok) == 1:
            werr[i] = abs(pieces[i][ok[0]][0]) * e + 2 * _U * abs(w[i])
        else:
            werr[i] = e + 2 * _U * abs(w[i])
    del m
    return z, err, cand


def op_norm(J: np.ndarray, norm: str) -> float:
    if norm == "linf":
        return float(np.max(np.abs(J).sum(axis=1))) if J.size else 0.0
    if norm == "l1":
        return float(np.max(np.abs(J).sum(axis=0))) if J.size else 0.0
    return float(np.linalg.norm(J, 2)) if J.size else 0.0


def certify_witness(form: Form, prob: Problem, pattern: list, norm: str, point: np.ndarray | None = None
                    ) -> dict | None:
    """Certify that the region of ``pattern`` has nonempty interior and that the map is affine there with
    Jacobian ``J``: an interior point ``y`` by LP, then a float64 evaluation at ``y`` that places every neuron
    whose pre-activation depends on ``y`` strictly inside its piece (margins larger than the rounding-error
    bound), and the Jacobian recomputed from the form at ``y``.  Returns ``{"y", "pattern", "jacobian",
    "value"}`` with ``value`` = the operator norm minus its rounding-error bound (a true lower bound on the
    Lipschitz constant), or None.  A given ``point`` that already places every neuron strictly inside the
    pattern's pieces is used directly (no LP)."""
    Zrows, _ = region_rows(prob, pattern)
    m = form.input_dim

    def strict_at(y):
        if y is None or not np.all(np.isfinite(y)):
            return False
        if not prob.homogeneous and (np.any(y <= prob.ylo) or np.any(y >= prob.yhi)):
            return False
        cand = _pattern_at(form, prob.pieces, y)[2]
        # a neuron whose z_i does not depend on y here may sit anywhere: its slope is irrelevant
        return all(cand[i] == [k] or not np.any(Zrows[i, :m] != 0.0) for i, k in enumerate(pattern))

    y = None if point is None else np.asarray(point, float)
    if not strict_at(y):
        given = y
        y, s_lp = interior_point(prob, pattern)
        if not strict_at(y):
            if norm != "l2":
                return None
            return _secant_witness(form, prob, pattern, y, s_lp, given)
    # distance (in y) from y to the nearest kink of the region's affine pre-activations: a margin to step in
    z = _pattern_at(form, prob.pieces, y)[0]
    s = math.inf
    for i, k in enumerate(pattern):
        g = float(np.linalg.norm(Zrows[i, :m]))
        if g == 0.0:
            continue
        _, _, glo, ghi = prob.pieces[i][k]
        for kink in (glo, ghi):
            if math.isfinite(kink):
                s = min(s, abs(z[i] - kink) / g)
    if not prob.homogeneous:
        s = min(s, float(np.min(y - prob.ylo)), float(np.min(prob.yhi - y)))
    s = s if math.isfinite(s) else 1.0
    J = np.asarray(form.jacobian(y), dtype=float)
    # rounding-error bound of the Jacobian: |J - J_exact| <= gamma * |C||D||A|...|B| (abs propagation)
    d = prob.d
    A, B, C = np.abs(d["A"]), np.abs(d["B"]), np.abs(d["C"])
    N = A.shape[0]
    Wabs = np.zeros((N, m))
    for i in range(N):
        sl = abs(prob.pieces[i][pattern[i]][0])
        Wabs[i] = sl * (A[i, :i] @ Wabs[:i] + B[i])
    Jabs = C @ Wabs
    n_in = N + m + 2
    gam = 2 * len(form.blocks) * n_in * _U / (1 - n_in * _U)
    Eb = gam * Jabs
    val = op_norm(J, norm)
    if norm == "l2":
        e = float(np.sqrt(np.sum(Eb ** 2))) + 16 * max(J.shape) * _U * val
    else:
        e = op_norm(Eb, norm) + 4 * max(J.shape) * _U * val
    return {"y": y, "pattern": [int(k) for k in pattern], "jacobian": J, "value": max(val - e, 0.0),
            "value_float": val, "interior_margin": float(s)}


_ERROR_MODELS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _error_model(form: Form):
    from ._torch import ErrorModel

    em = _ERROR_MODELS.get(form)
    if em is None:
        em = _ERROR_MODELS[form] = ErrorModel(form)
    return em


def _secant_witness(form: Form, prob: Problem, pattern: list, y: np.ndarray | None, margin: float,
                    given: np.ndarray | None) -> dict | None:
    r"""l2 fallback of :func:`certify_witness` for deep nets, where the forward rounding bound of the pattern
    check (which grows like the product of :math:`|A|`) no longer places every neuron strictly inside its
    piece: the region's Jacobian :math:`J_P` and its top right singular vector :math:`v`, and the secant
    :math:`\|f(y + \epsilon v) - f(y)\| / \epsilon` at the LP's interior point (a ball of radius ``margin``
    around it lies in the region, so the exact secant equals :math:`\|J_P v\|` for
    :math:`\epsilon < ` ``margin``), evaluated with the spectral-norm rounding bound of
    :class:`~._torch.ErrorModel`.  The value is that certified secant: a true lower bound on the Lipschitz
    constant whatever the region (``docs/theory/exact_lipschitz.md §8``)."""
    from ._torch import certified_secant

    _, J = region_rows(prob, pattern)
    if J.size == 0:
        return None
    _, _, Vt = np.linalg.svd(J)
    v = Vt[0]
    best = None
    pts = [(y, margin)] if y is not None and margin > 0 else []
    if given is not None:
        pts.append((given, None))
    em = _error_model(form)
    for yy, s in pts:
        scale = 1.0 + float(np.linalg.norm(yy))
        for eps in ([0.5 * s, 0.05 * s] if s is not None else []) + [1e-4 * scale, 1e-6 * scale]:
            for sgn in (1.0, -1.0):
                r, _ = certified_secant(em, None, yy, sgn * eps * v)
                if best is None or r > best[0]:
                    best = (r, yy, sgn * eps * v)
    if best is None or not best[0] > 0:
        return None
    r, yy, d = best
    return {"y": np.asarray(yy, float), "d": d, "pattern": [int(k) for k in pattern], "jacobian": J,
            "value": float(r), "value_float": float(np.linalg.norm(J, 2)), "certified_by": "secant",
            "interior_margin": float(margin)}


def homogeneous_eval(prob: Problem, y: np.ndarray, t: float) -> np.ndarray:
    """Pre-activations at the (homogenised) point ``(y, t)``: thresholds and biases scaled by ``t``."""
    A, B, b = prob.d["A"], prob.d["B"], prob.d["b"]
    N = A.shape[0]
    z, w = np.zeros(N), np.zeros(N)
    for i in range(N):
        z[i] = A[i, :i] @ w[:i] + B[i] @ y + b[i] * t
        for s, c, glo, ghi in prob.pieces[i]:
            if (not math.isfinite(glo) or z[i] >= glo * t) and (not math.isfinite(ghi) or z[i] <= ghi * t):
                w[i] = s * z[i] + c * t
                break
    return z


def adjacent_patterns(prob: Problem, y: np.ndarray, t: float, pattern: list, norm: str,
                      max_patterns: int = 512) -> list:
    """Activation patterns of the regions whose closure contains the point ``(y, t)`` (every neuron takes a
    piece whose closed domain contains its pre-activation there, within a relative 1e-7), sorted by the norm
    of their Jacobian, largest first; ``pattern`` (the solver's) is always among them."""
    import itertools

    z = homogeneous_eval(prob, np.asarray(y, float), float(t))
    choices = []
    for i in range(len(z)):
        tol = 1e-7 * (1.0 + abs(z[i]) + abs(t))
        ok = [k for k, (_, _, glo, ghi) in enumerate(prob.pieces[i])
              if (not math.isfinite(glo) or z[i] >= glo * t - tol) and (not math.isfinite(ghi) or z[i] <= ghi * t + tol)]
        if pattern[i] not in ok:
            ok.append(pattern[i])
        choices.append(ok)
    pats = [list(pattern)]
    for combo in itertools.islice(itertools.product(*choices), max_patterns):
        if list(combo) != pats[0]:
            pats.append(list(combo))
    scored = [(op_norm(region_rows(prob, p)[1], norm), p) for p in pats]
    scored.sort(key=lambda e: -e[0])
    return [p for _, p in scored]


def best_adjacent_witness(form: Form, prob: Problem, y, t, pattern, norm: str, max_certify: int = 64):
    """The certified witness of largest norm among the regions adjacent to the solver's point."""
    for k, pat in enumerate(adjacent_patterns(prob, y, t, pattern, norm)):
        if k >= max_certify:
            break
        wt = certify_witness(form, prob, pat, norm)
        if wt is not None:
            return wt
    return None


def sample_witness(form: Form, prob: Problem, center: np.ndarray, norm: str, seed: int, num: int = 64):
    """Fallback lower end: the best certified region Jacobian at random points near ``center``."""
    rng = np.random.default_rng(seed)
    m = form.input_dim
    best = None
    scale = 1e-3 * (1.0 + float(np.max(np.abs(center))))
    for s in (1.0, 10.0, 100.0):
        Y = center + s * scale * rng.standard_normal((num, m))
        if not prob.homogeneous:
            Y = np.clip(Y, prob.ylo + 1e-9 * (prob.yhi - prob.ylo), prob.yhi - 1e-9 * (prob.yhi - prob.ylo))
        for yy in Y:
            _, _, cand = _pattern_at(form, prob.pieces, yy)
            if any(len(c) != 1 for c in cand):
                continue
            pat = [c[0] for c in cand]
            w = certify_witness(form, prob, pat, norm, point=yy)
            if w is not None and (best is None or w["value"] > best["value"]):
                best = w
    return best


# ---------------------------------------------------------------------------------------------- driver


def solve_norm(prob: Problem, mode: str, *, node_limit, time_limit, gap, direction=None, weights=None,
               start_witness: dict | None = None, cutoff: float | None = None):
    """Solve one MILP; returns a dict with the primal value, the dual (upper) bound, the pattern and the
    solver's status.  ``start_witness`` (a certified witness) seeds the branch and bound with its pattern."""
    M, obj, h = build(prob, mode, direction, weights)
    t0 = time.perf_counter()
    start = None if start_witness is None else start_values(prob, h, mode, start_witness)
    res = M.solve(obj, node_limit=node_limit, time_limit=time_limit, gap=gap, start=start, cutoff=cutoff)
    info = {"status": res["status"], "message": res["message"], "seconds": time.perf_counter() - t0,
            "variables": len(M.lb), "binaries": int(sum(M.integ)), "rows": M.nrows, "nodes": res["nodes"],
            "bigM": h.get("bigM", 0.0), "seeded": start is not None}
    x = res["x"]
    info.update(primal=res["primal"], dual=max(res["dual"], res["primal"]))
    if x is None:
        info.update(pattern=None, y=None, t=None)
        return info
    info.update(pattern=pattern_of(prob, x, h["delta"]), y=x[h["y"]], t=float(x[h["t"]]))
    return info


def start_values(prob: Problem, h: dict, mode: str, wt: dict) -> dict:
    """Integer variables of the feasible point given by a witness: its pattern, the face of the
    normalisation box it lies on (global domain) and the output (or input) of the largest row (column)."""
    start: dict = {}
    for i, ds in enumerate(h["delta"]):
        if ds[0] is None:
            continue
        k = prob.possible[i].index(prob.pieces[i][wt["pattern"][i]]) if prob.pieces[i][wt["pattern"][i]] in \
            prob.possible[i] else None
        if k is None:
            return {}
        for kk, dv in enumerate(ds):
            start[dv] = 1.0 if kk == k else 0.0
    if prob.homogeneous:
        y = np.asarray(wt["y"], float)
        nrm = float(np.max(np.abs(y)))
        faces = h["faces"]
        for f_ in faces:
            start[f_] = 0.0
        if nrm <= 1.0:
            start[faces[-1]] = 1.0
        else:
            j = int(np.argmax(np.abs(y)))
            start[faces[2 * j + (0 if y[j] > 0 else 1)]] = 1.0
    if "sigma" in h:
        J = wt["jacobian"]
        k = int(np.argmax(np.abs(J).sum(axis=1))) if mode == "rows" else int(np.argmax(np.abs(J).sum(axis=0)))
        for kk, sv in enumerate(h["sigma"]):
            start[sv] = 1.0 if kk == k else 0.0
    return start


def inflate(dual: float, bigM: float, scale: float) -> float:
    """Outward margin on the solver's dual bound for its feasibility / integrality tolerances
    (``docs/theory/exact_lipschitz.md §4``)."""
    if not math.isfinite(dual):
        return _INF
    return float(np.nextafter(dual + 1e-6 * abs(dual) + 1e-7 * bigM + 1e-9 * scale, np.inf))


def seed_witness(form: Form, prob: Problem, norm: str, seed: int, num: int = 2048,
                 data: np.ndarray | None = None) -> dict | None:
    """A certified witness to seed the branch and bound: the largest region-Jacobian norm among random points
    (several scales for the global domain, uniform in a box) and ``data``, certified by
    :func:`certify_witness` (largest first, a few tries)."""
    rng = np.random.default_rng(seed)
    m = form.input_dim
    if prob.homogeneous:
        scales = rng.choice([0.1, 1.0, 10.0, 100.0, 1e4], size=(num, 1))
        Y = rng.standard_normal((num, m)) * scales
    else:
        Y = rng.uniform(prob.ylo, prob.yhi, size=(num, m))
    if data is not None:
        D = np.asarray(data, float).reshape(-1, m)
        if not prob.homogeneous:
            D = D[np.all((D > prob.ylo) & (D < prob.yhi), axis=1)]
        Y = np.vstack([D, Y])
    J = np.asarray(form.jacobian(Y))
    if norm == "linf":
        vals = np.abs(J).sum(axis=2).max(axis=1)
    elif norm == "l1":
        vals = np.abs(J).sum(axis=1).max(axis=1)
    else:
        vals = np.linalg.norm(J, 2, axis=(1, 2))
    best = None
    for idx in np.argsort(-vals)[:16]:
        cand = _pattern_at(form, prob.pieces, Y[idx])[2]
        if any(len(c) != 1 for c in cand):
            continue
        wt = certify_witness(form, prob, [c[0] for c in cand], norm, point=Y[idx])
        if wt is not None and (best is None or wt["value"] > best["value"]):
            best = wt
            break
    return best


def maximize_norm(form: Form, prob: Problem, mode: str, seed_wt: dict | None, *, node_limit, deadline, gap,
                  runs: list) -> tuple[float, float, dict | None, bool]:
    """Maximise the l-inf (``mode="rows"``) or l1 (``"cols"``) operator norm of the region Jacobian: one MILP
    per output (input) coordinate, largest first by the seed witness, each cut off at the best certified value
    so far (a coordinate that cannot beat it is closed as soon as its LP bounds fall below; ``§2``).  Returns
    ``(upper end, raw upper end, best witness for this norm, all MILPs finished)``."""
    nrm = "linf" if mode == "rows" else "l1"
    d = prob.d
    K = d["C"].shape[0] if mode == "rows" else d["B"].shape[1]
    best = seed_wt
    if best is not None:
        J = best["jacobian"]
        score = np.abs(J).sum(axis=1) if mode == "rows" else np.abs(J).sum(axis=0)
        order = list(np.argsort(-score))
    else:
        order = list(range(K))
    scale = float(np.max(np.abs(d["C"]))) if d["C"].size else 1.0
    hi, raw, ok = 0.0, 0.0, True
    for pos, k in enumerate(order):
        w = np.zeros(K)
        w[k] = 1.0
        tl = None
        if deadline is not None:
            tl = max((deadline - time.perf_counter()) / (len(order) - pos), 0.5)
        cutoff = None if best is None else best["value"]
        r = solve_norm(prob, mode, node_limit=node_limit, time_limit=tl, gap=gap, weights=w, cutoff=cutoff,
                       start_witness=None)
        runs.append((f"{mode}[{k}]", r))
        ok = ok and r["status"] == 0
        raw = max(raw, r["dual"])
        hi = max(hi, inflate(r["dual"], r.get("bigM", 0.0), scale))
        if r["pattern"] is not None:
            wt = best_adjacent_witness(form, prob, r["y"], r["t"], r["pattern"], nrm)
            if wt is not None and (best is None or wt["value"] > best["value"]):
                best = wt
    return hi, raw, best, ok


_UPPER_END_REASON = ("the upper end is HiGHS's branch-and-bound dual bound, inflated for its tolerances but not "
                     "re-verified independently (the lower end, interval[0], is certified by its witness region)")


def exact_impl(form: Form, norm: str, domain: Any, max_neurons: int, node_limit: int | None,
               time_limit: float | None, gap: float, l2_rounds: int, seed: int,
               tighten_bounds: bool = True, starts: Any = None) -> Bound:
    start = time.perf_counter()
    deadline = None if time_limit is None else start + time_limit

    def left():
        return None if deadline is None else max(deadline - time.perf_counter(), 0.5)

    prob = make_problem(form, domain, max_neurons)
    m, out = form.input_dim, form.output_dim
    label = "global (all of R^m)" if domain is None else (
        f"box [{np.array2string(prob.ylo, precision=4)}, {np.array2string(prob.yhi, precision=4)}]")
    pnorm = {"linf": "l-inf -> l-inf", "l2": "l2 -> l2"}[norm]
    quantity = (f"Lipschitz constant of y -> x ({pnorm})" if domain is None
                else f"Lipschitz constant of y -> x ({pnorm}) on the domain {label}")
    checks: dict = {"neurons": form.num_neurons, "domain": label,
                    "uncertain_neurons": sum(len(p) > 1 for p in prob.possible)}
    scale = float(np.max(np.abs(prob.d["C"]))) if prob.d["C"].size else 1.0
    solver = "HiGHS branch and bound (highspy), float64 witness re-verification"
    if tighten_bounds:
        checks["tightening"] = tighten(prob, ["rows"],
                                       deadline=None if deadline is None else start + 0.2 * time_limit)
        checks["uncertain_neurons_after_tightening"] = sum(len(p) > 1 for p in prob.possible)
    runs: list = []
    data = None if starts is None else np.asarray(starts, float).reshape(-1, m)
    if norm == "linf":
        seed_linf = seed_witness(form, prob, "linf", seed, data=data)
        checks["seed_value"] = None if seed_linf is None else seed_linf["value"]
        hi, raw, best, budget_ok = maximize_norm(form, prob, "rows", seed_linf, node_limit=node_limit,
                                                 deadline=deadline, gap=gap, runs=runs)
    else:
        best = seed_witness(form, prob, "l2", seed, data=data)
        checks["seed_value"] = None if best is None else best["value"]
        # lower end first: alternating MILPs over fixed directions (u, v), each solving max_y u^T J(y) v
        # exactly from the current witness's top singular pair (docs/theory/exact_lipschitz.md §3)
        adead = None if deadline is None else start + 0.5 * time_limit
        pool = [] if best is None else [_pair(best["jacobian"], "l2")]
        if best is not None:
            rng = np.random.default_rng(seed)
            pts = rng.standard_normal((512, m)) * rng.choice([0.1, 1.0, 10.0, 100.0], size=(512, 1))
            if not prob.homogeneous:
                pts = rng.uniform(prob.ylo, prob.yhi, size=(512, m))
            pool += direction_pool(form, pts if data is None else np.vstack([data, pts]), "l2", 4, seed)
        for rnd in range(l2_rounds if best is not None else 0):
            if (adead is not None and time.perf_counter() > adead) or not pool:
                break
            u, v = pool.pop(0)
            tl = None if adead is None else max(adead - time.perf_counter(), 0.5)
            fx = solve_norm(prob, "fixed", node_limit=node_limit, time_limit=tl, gap=gap, direction=v,
                            weights=u, cutoff=float(best["value"]) * (1 + 1e-9))
            runs.append((f"fixed{rnd}", fx))
            if fx["pattern"] is None:
                continue
            wt = best_adjacent_witness(form, prob, fx["y"], fx["t"], fx["pattern"], norm)
            if wt is not None and wt["value"] > best["value"] * (1 + 1e-9):
                best = wt
                pool.insert(0, _pair(best["jacobian"], "l2"))
        # upper end: the l-inf and l1 operator norms
        seed_linf = seed_witness(form, prob, "linf", seed, data=data)
        mdead = None if deadline is None else start + 0.75 * time_limit
        linf_hi, raw, _, budget_ok = maximize_norm(form, prob, "rows", seed_linf, node_limit=node_limit,
                                                   deadline=mdead, gap=gap, runs=runs)
        seed_l1 = seed_witness(form, prob, "l1", seed, data=data)
        l1_hi, l1_raw, _, ok1 = maximize_norm(form, prob, "cols", seed_l1, node_limit=node_limit,
                                              deadline=deadline, gap=gap, runs=runs)
        cands = [math.sqrt(out) * linf_hi, math.sqrt(m) * l1_hi]
        if math.isfinite(l1_hi) and math.isfinite(linf_hi):
            cands.append(math.sqrt(linf_hi * l1_hi))
        hi = min(cands)
        hi = float(np.nextafter(hi * (1 + 4 * _U), np.inf)) if math.isfinite(hi) else _INF
        raw = math.sqrt(max(raw, 0.0) * max(l1_raw, 0.0))
        checks["linf_upper"], checks["l1_upper"] = linf_hi, l1_hi
        budget_ok = budget_ok and ok1
        for r in [rr for _, rr in runs]:
            if r["pattern"] is not None:
                wt = best_adjacent_witness(form, prob, r["y"], r["t"], r["pattern"], "l2")
                if wt is not None and (best is None or wt["value"] > best["value"]):
                    best = wt
    checks["milps"] = [{"kind": k, **{kk: r[kk] for kk in ("status", "message", "nodes", "binaries", "variables",
                                                            "rows", "seconds", "primal", "dual", "seeded")}}
                       for k, r in runs]
    checks["nodes"] = int(sum(r["nodes"] for _, r in runs))
    seconds = time.perf_counter() - start
    if best is None:
        checks["lower_end_certified"] = False
        return Bound(value=hi, side="upper", certified=False, method="exact_milp",
                     quantity=quantity, solver=solver,
                     status="no witness region with nonempty interior was certified", converged=False,
                     checks=checks, seconds=seconds,
                     reason=_UPPER_END_REASON if math.isfinite(hi) else "the MILP gave no finite dual bound")
    lo = min(best["value"], hi)
    tol = max(gap, 1e-6)
    # converged: the attained lower end meets the solver's (uninflated) upper end within the gap
    converged = bool(budget_ok and lo >= raw - tol * max(abs(raw), 1e-12) - 1e-9 * scale)
    if norm == "l2":
        status = ("bracket: lower end attained by a region Jacobian, upper end sqrt(||J||_inf * ||J||_1) maxima"
                  if budget_ok else "MILP budget reached: bracket from the incumbent and the dual bound")
    else:
        status = "optimal (gap closed)" if converged else (
            "MILP budget reached (node or time limit): bracket" if not budget_ok else "gap left open")
    witness = {"y": best["y"], "pattern": best["pattern"], "jacobian": best["jacobian"],
               "interior_margin": best["interior_margin"]}
    # the lower end is re-verified in float64 (checks["lower_end_certified"]); the upper end is HiGHS's dual
    # bound, inflated for its tolerances but not re-derived independently, so the Bound (whose value is the
    # upper end) is not called certified
    checks["lower_end_certified"] = True
    return Bound(value=hi, side="upper", certified=False, method="exact_milp",
                 quantity=quantity, solver=solver, status=status, checks=checks, witness=witness,
                 seconds=seconds, converged=converged, interval=(lo, hi), reason=_UPPER_END_REASON
                 if math.isfinite(hi) else "the MILP gave no finite dual bound")


def direction_pool(form: Form, Y: np.ndarray, norm: str, k: int, seed: int) -> list:
    """Candidate direction pairs ``(u, v)`` for fixed-direction MILPs: the top singular pairs (l2) or largest
    rows (l-inf) of the Jacobians at the ``k`` points of ``Y`` with the largest norm, then random unit pairs.
    Any unit pair with ``u^T J' v`` above the current best proves ``||J'||`` larger, so every pair is a valid
    search direction (``docs/theory/exact_lipschitz.md §3``)."""
    rng = np.random.default_rng(seed)
    J = np.asarray(form.jacobian(Y))
    vals = np.linalg.norm(J, 2, axis=(1, 2)) if norm == "l2" else np.abs(J).sum(axis=2).max(axis=1)
    pool = []
    for i in np.argsort(-vals)[:k]:
        pool.append(_pair(J[i], norm))
    n_out, m = J.shape[1], J.shape[2]
    for _ in range(k):
        if norm == "l2":
            u, v = rng.standard_normal(n_out), rng.standard_normal(m)
            pool.append((u / np.linalg.norm(u), v / np.linalg.norm(v)))
        else:
            pool.append((np.eye(n_out)[rng.integers(n_out)], rng.choice([-1.0, 1.0], size=m)))
    return pool


def _pair(J: np.ndarray, norm: str):
    if norm == "l2":
        U_, _, Vt = np.linalg.svd(J)
        return U_[:, 0], Vt[0]
    k = int(np.argmax(np.abs(J).sum(axis=1)))
    return np.eye(J.shape[0])[k], np.sign(J[k]) + (J[k] == 0)


# ---------------------------------------------------------------------------------------------- region search


def _box_problem(form: Form, y: np.ndarray, radius: float, max_neurons: int) -> Problem:
    return make_problem(form, (y - radius, y + radius), max_neurons)


def _certified_start(form: Form, glob: Problem, yy: np.ndarray, norm: str, seed: int) -> dict | None:
    """The certified region of a start point (or the best one sampled next to it when it sits on a kink)."""
    import itertools

    cand = _pattern_at(form, glob.pieces, yy)[2]
    if all(len(c) == 1 for c in cand):
        return certify_witness(form, glob, [c[0] for c in cand], norm, point=yy)
    if sum(len(c) > 1 for c in cand) <= 12:
        # a point on a few kinks (where ascents end): the regions adjacent to it, largest Jacobian first, each
        # certified by an interior point (LP) and a float64 re-evaluation
        pats = [list(p) for p in itertools.islice(itertools.product(*cand), 256)]
        pats.sort(key=lambda p: -op_norm(region_rows(glob, p)[1], norm))
        for pat in pats[:16]:
            wt = certify_witness(form, glob, pat, norm)
            if wt is not None:
                return wt
    # many neurons within the (depth-amplified) rounding bound of a kink: the pattern the float64 evaluation
    # sees, certified through the point itself (l2: a secant there, §8), or random points next to it
    z = _pattern_at(form, glob.pieces, yy)[0]
    pat = []
    for i, c in enumerate(cand):
        inside = [k for k in c if (not math.isfinite(glob.pieces[i][k][2]) or z[i] >= glob.pieces[i][k][2])
                  and (not math.isfinite(glob.pieces[i][k][3]) or z[i] <= glob.pieces[i][k][3])]
        pat.append((inside or c)[0])
    wt = certify_witness(form, glob, pat, norm, point=yy)
    alt = sample_witness(form, glob, yy, norm, seed, num=8)
    if wt is None or (alt is not None and alt["value"] > wt["value"]):
        return alt
    return wt


def _pairs(J: np.ndarray, norm: str, k: int) -> list:
    """The top ``k`` singular pairs of ``J`` (l2; the first is the one of ``_pair``) or its ``k`` largest
    rows with their sign vectors (l-inf): search directions from the current region."""
    if norm != "l2":
        rows = np.argsort(-np.abs(J).sum(axis=1))[:k]
        return [(np.eye(J.shape[0])[i], np.sign(J[i]) + (J[i] == 0)) for i in rows]
    U_, _, Vt = np.linalg.svd(J)
    return [(U_[:, i], Vt[i]) for i in range(min(k, U_.shape[1], Vt.shape[0]))]


def _climb(form: Form, glob: Problem, best: dict, Y: np.ndarray, norm: str, rounds: int, max_uncertain: int,
           node_limit: int | None, deadline: float | None, seed: int, log_: list, tag: int,
           flips: int = 0, patience: int = 0, jumps: int = 0) -> dict:
    """One trajectory of the neighbourhood search from the certified region ``best`` (see
    ``docs/theory/exact_lipschitz.md §6``): a greedy walk over adjacent regions (at most ``flips`` moves in
    all), then ``rounds`` neighbourhood MILPs, each improvement followed by the walk again; appends to
    ``log_`` and returns the best certified region."""
    from ._flip import flip_walk, line_jump

    budget = [flips, jumps]

    def walk(b):
        while budget[0] > 0 and (deadline is None or time.perf_counter() <= deadline):
            wlog: list = []
            b = flip_walk(form, glob, b, norm, budget[0], log_=wlog, deadline=deadline, patience=patience)
            moves = sum(1 for e in wlog if e["moved"])
            budget[0] -= moves
            log_.append({"start": tag, "flip_moves": moves, "value": float(b["value"])})
            # the walk is stuck: jump along lines through the witness (§11), then walk on from there
            jb = None
            while jb is None and budget[1] > 0 and (deadline is None or time.perf_counter() <= deadline):
                budget[1] -= 1
                jb = line_jump(form, glob, b, norm, seed + 7919 * budget[1])
                log_.append({"start": tag, "jump": jb is not None,
                             "value": float(b["value"] if jb is None else jb["value"])})
            if jb is None:
                break
            b = jb
        return b

    best = walk(best)
    m = form.input_dim
    big = form.num_neurons + 1
    radius = 1e-3 * (1.0 + float(np.max(np.abs(best["y"]))))
    rng = np.random.default_rng(seed)
    scale_y = 1.0 + float(np.max(np.abs(Y)))
    pool_pts = np.vstack([Y, best["y"] + scale_y * rng.standard_normal((256, m))])
    pool = _pairs(best["jacobian"], norm, 3) + direction_pool(form, pool_pts, norm, 8, seed)
    pieces_all = glob.possible
    for rnd in range(rounds):
        if deadline is not None and time.perf_counter() > deadline or not pool:
            break
        y = best["y"]
        # the largest radius (x4 steps) whose box leaves at most max_uncertain neurons undecided
        rmax = 1e3 * scale_y     # beyond this the box's big-M constants lose the kinks: use the global problem
        prob = _box_problem(form, y, min(radius, rmax), big)
        while sum(len(p) > 1 for p in prob.possible) <= max_uncertain and radius < rmax:
            nxt = _box_problem(form, y, radius * 4, big)
            if sum(len(p) > 1 for p in nxt.possible) > max_uncertain:
                break
            prob, radius = nxt, radius * 4
        while sum(len(p) > 1 for p in prob.possible) > max_uncertain and radius > 1e-12:
            radius /= 4
            prob = _box_problem(form, y, radius, big)
        if radius >= rmax and sum(len(p) > 1 for p in pieces_all) <= max_uncertain:
            prob = glob
        u, v = pool.pop(0)
        tl = None if deadline is None else max(deadline - time.perf_counter(), 0.5)
        # any unit pair with u^T J' v > best proves ||J'|| > best: the cut-off is the best value itself
        fx = solve_norm(prob, "fixed", node_limit=node_limit, time_limit=tl, gap=1e-6, direction=v, weights=u,
                        cutoff=float(best["value"]) * (1 + 1e-9))
        step = {"start": tag, "round": rnd, "radius": radius,
                "uncertain": sum(len(p) > 1 for p in prob.possible), "status": fx["message"],
                "nodes": fx["nodes"]}
        improved = False
        if fx["pattern"] is not None:
            wt = best_adjacent_witness(form, prob, fx["y"], fx["t"], fx["pattern"], norm)
            if wt is not None and wt["value"] > best["value"] * (1 + 1e-9):
                best, improved = wt, True
        step["value"] = float(best["value"])
        log_.append(step)
        if improved:
            best = walk(best)
            # the new region's top singular pairs first (its power-iteration directions)
            pool[:0] = _pairs(best["jacobian"], norm, 3)
        elif radius < rmax:
            radius *= 4      # the neighbourhood holds nothing better in this direction: look wider
            max_uncertain = int(max_uncertain * 1.5)
    return best


def _jac_norms(form: Form, Y: np.ndarray, norm: str, chunk: int = 256) -> np.ndarray:
    """Operator norms of the (float64, Clarke) Jacobians at the rows of ``Y``: estimates used to rank starts."""
    out = []
    for i in range(0, Y.shape[0], chunk):
        J = np.asarray(form.jacobian(Y[i:i + chunk]))
        out.append(np.linalg.norm(J, 2, axis=(1, 2)) if norm == "l2" else np.abs(J).sum(axis=2).max(axis=1))
    return np.concatenate(out) if out else np.zeros(0)


def sample_starts(Y: np.ndarray, num: int, seed: int) -> np.ndarray:
    """``num`` extra start points (``docs/theory/exact_lipschitz.md §11``): half are the given points scaled,
    ``t y`` with ``t`` log-uniform in [1e-2, 1e2] (a soft threshold's piece depends on the scale of its input:
    small ``y`` switches neurons off, large ``y`` on), half random directions with log-uniform norms in
    [1e-2, 1e3] times the median norm of the given points."""
    rng = np.random.default_rng(seed)
    m = Y.shape[1]
    nrm = np.linalg.norm(Y, axis=1)
    base = float(np.median(nrm)) if np.any(nrm > 0) else 1.0
    base = base if base > 0 else 1.0
    k1 = num // 2
    rows = Y[rng.integers(0, Y.shape[0], size=k1)] * 10 ** rng.uniform(-2, 2, size=(k1, 1))
    D = rng.standard_normal((num - k1, m))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    D *= base * 10 ** rng.uniform(-2, 3, size=(num - k1, 1))
    return np.vstack([rows, D])


def region_search_impl(form: Form, start: np.ndarray, norm: str, rounds: int, max_uncertain: int,
                       node_limit: int | None, time_limit: float | None, seed: int, restarts: int = 1,
                       flips: int = 0, patience: int = 0, samples: int = 0, jumps: int = 0) -> Bound:
    """Large-neighbourhood search over reachable activation regions (``docs/theory/exact_lipschitz.md §6``):
    ``restarts`` trajectories of ``rounds`` MILPs each, from the start points of largest Jacobian norm in
    distinct regions."""
    t0 = time.perf_counter()
    deadline = None if time_limit is None else t0 + time_limit
    m = form.input_dim
    big = form.num_neurons + 1
    Y = np.asarray(start, float).reshape(-1, m)
    log_ = []
    glob = make_problem(form, None, big)
    vals = _jac_norms(form, Y, norm)
    if samples > 0:
        S = sample_starts(Y, samples, seed)
        sv = _jac_norms(form, S, norm)
        Y, vals = np.vstack([Y, S]), np.concatenate([vals, sv])
    starts, seen = [], set()
    for idx in np.argsort(-vals):                  # the starts with the largest Jacobians, distinct regions
        if len(starts) >= max(4, restarts) or (len(seen) >= 4 and len(starts) >= restarts):
            break
        if starts and deadline is not None and time.perf_counter() > deadline:
            break
        wt = _certified_start(form, glob, Y[idx], norm, seed)
        if wt is None or tuple(wt["pattern"]) in seen:
            continue
        seen.add(tuple(wt["pattern"]))
        starts.append(wt)
    if not starts:
        raise InvalidInputError("region_search: no start point lies strictly inside an activation region; pass "
                                "other start points (e.g. data or the witness of lower_bound).")
    starts.sort(key=lambda w: -w["value"])
    start_value = starts[0]["value"]
    best = None
    for r, wt in enumerate(starts[:restarts]):
        if r > 0 and deadline is not None and time.perf_counter() > deadline:
            break
        got = _climb(form, glob, wt, Y, norm, rounds, max_uncertain, node_limit, deadline, seed + r, log_, r,
                     flips, patience, jumps)
        if best is None or got["value"] > best["value"]:
            best = got
    pn = "l2 -> l2" if norm == "l2" else "l-inf -> l-inf"
    return Bound(value=best["value"], side="lower", certified=True, method="region_search",
                 quantity=f"Lipschitz constant of y -> x ({pn})",
                 solver="HiGHS MILP over activation regions in a box around the witness (highspy)",
                 status=f"{len(log_)} rounds from {min(restarts, len(starts))} start(s)",
                 checks={"start_value": start_value, "rounds": log_, "restarts": min(restarts, len(starts))},
                 witness={"y": best["y"], "pattern": best["pattern"], "jacobian": best["jacobian"]},
                 seconds=time.perf_counter() - t0)
