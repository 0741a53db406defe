r"""Performance estimation (PEP) of gradient descent, proximal gradient, their momentum variants and ADMM /
Douglas-Rachford with any step, momentum or penalty schedule (``docs/theory/pep.md``).

The worst case of ``N`` steps of a first-order method over a function class is the optimal value of a
semidefinite program in the Gram matrix of the iterates and (sub)gradients (Drori & Teboulle, Math.
Program. 2014; Taylor, Hendrickx & Glineur, Math. Program. 2017, "Smooth strongly convex interpolation and
exact worst-case performance of first-order methods").  This module builds that SDP in a structured form
and certifies its answer in float64.

Normalisation
-------------
``L = 1`` internally (objective values scale with ``L``, distances do not).  With :math:`x_\star = 0` and
:math:`\nabla f(x_\star) = 0` (for the composite case the linear shift
:math:`f \to f - \langle g_\star, \cdot\rangle`, :math:`h \to h + \langle g_\star, \cdot\rangle` keeps
:math:`F` and the iterates, so it is free), the Gram basis is the minimal one: :math:`x_0`, the gradients
:math:`g_k` and (proximal gradient) the subgradients :math:`s_k \in \partial h(x_k)`, with
:math:`x_{k+1} = x_k - \gamma_k (g_k + s_{k+1})`.  Every basis vector ``b`` is scaled by an a-priori bound
:math:`\|b\| \le \beta_b` that holds for *every* function of the class (from the contraction factor
:math:`\max(|1 - \gamma\mu|, |1 - \gamma L|)` of a gradient step and the nonexpansiveness of the prox), and
every function value by a bound of the same kind.

Structure exploited (docs/theory/pep.md §7)
---------------------------------------------
* **Constraint generation.**  The SDP with only the interpolation inequalities between consecutive points
  and between each point and the optimum is a relaxation, so its value is already a valid upper bound.
  Its worst case is checked against *every* interpolation inequality; violated ones are added and the SDP
  solved again until none is violated (then the value is the exact worst case).
* **A chain of small blocks.**  With local inequalities only, the SDP decomposes along the iterations:
  stage ``k`` holds the Gram matrix of the few vectors it needs (``x_k, g_k, s_k, s_{k+1}, g_{k+1}``), with
  :math:`x_{k+1}` expressed through them, and consecutive stages agree on the Gram matrix of the vectors
  they share.  Realisations glue along a chain, so this is exact for the relaxation (the same argument as
  the chordal completion theorem), and Clarabel factors ``N`` blocks of size 5 instead of an
  :math:`O(N^2) \times O(N^2)` dense one.  Iterates are never written as differences of other vectors, so
  the blocks are well conditioned.  Once non-local inequalities are needed, the SDP is solved in the dense
  gradient basis (the plain PEP with the chosen inequalities).

Certification
-------------
The solver's multipliers :math:`(\lambda, \tau)` define the dual matrix
:math:`S = \tau\, e_{x_0} e_{x_0}^T + \sum_k \lambda_k M_k - C` in the normalised gradient basis.  In float64:
negative multipliers are set to 0; the linear (function-value) equations are repaired exactly by raising the
multipliers of the inequalities with the optimum; :math:`\tau` is recomputed as the smallest value making
:math:`S` PSD for these multipliers (a Schur complement on :math:`x_0`), plus a margin covering the rounding
errors of forming :math:`S` and of the eigensolver; and :math:`\lambda_{\min}(S)` is computed.  Weak duality
then gives, for every function of the class, ``performance <= tau + residuals`` when
:math:`\lambda_{\min}(S)` exceeds the rounding bound, and
``performance <= tau + n * (rounding - lambda_min) + residuals`` otherwise (because every normalised Gram
entry is at most 1); the result is rounded outward.  That value is what :func:`worst_case` returns.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import as_float_array, check_int, check_scalar
from ..bounds import Bound
from ..errors import InvalidInputError, SolverAttempt, SolverError

logger = logging.getLogger("unfoldtheory.convergence")

__all__ = ["ALL_METHODS", "METHODS", "METRICS", "MOMENTUM_METHODS", "SPLITTING_METHODS",
           "check_nested_classes", "quadratic_lower_bound", "worst_case"]

METHODS = ("gd", "prox_grad")
#: Methods with a momentum schedule (``momentum=[beta_1, ..., beta_N]``).
MOMENTUM_METHODS = ("momentum_gd", "momentum_prox_grad")
#: Splitting methods: ``admm`` is UnfoldedADMM's recursion (Douglas-Rachford on the dual), steps = L / rho_k.
SPLITTING_METHODS = ("admm",)
ALL_METHODS = METHODS + MOMENTUM_METHODS + SPLITTING_METHODS
METRICS = ("objective", "distance")
STRATEGIES = ("generate", "full")
#: Default cvxpy solvers, in order.
PEP_SOLVERS = ("CLARABEL", "SCS")
#: Solver options (tight: the certified value is only as good as the multipliers).
SOLVER_OPTIONS: dict[str, dict] = {
    "CLARABEL": {"tol_gap_abs": 1e-11, "tol_gap_rel": 1e-11, "tol_feas": 1e-11, "tol_ktratio": 1e-9,
                 "max_iter": 400},
    "SCS": {"eps_abs": 1e-10, "eps_rel": 1e-10, "max_iters": 200_000},
}
#: Relative eigenvalue cut-off when gluing the chain's blocks into one worst case.
_RANK_RTOL = 1e-7
_EPS = np.finfo(np.float64).eps
#: Smallest unit of a vector or value in the rescaled chain solve, relative to the largest.
_UNIT_FLOOR = 1e-3
#: Solve the chain a second time in the units of the first worst case (keeps the better certificate).
_RESCALE = True
#: Call Clarabel directly for the chain relaxation (cvxpy's compilation dominated the time at N >= 200).
_DIRECT_CLARABEL = True

Pair = tuple[int, int, int]          # (function index, point index i, point index j); point 0 is the optimum


# ============================================================================================ model
@dataclass
class _Func:
    """One function of the PEP: its points (optimum first) as coefficient rows in the scaled basis."""

    name: str                   # "f" (smooth) or "h" (convex, nonsmooth)
    labels: list                # "*" then iterate indices
    syms: list                  # per point: (position symbol, (sub)gradient symbol); None for the optimum
    X: np.ndarray               # (k, n) unscaled points in the scaled basis (x_* = 0)
    Gr: np.ndarray              # (k, n) unscaled (sub)gradients in the scaled basis
    Fidx: np.ndarray            # (k,) index into the value vector, -1 for the optimum (value 0)
    c1: float                   # coefficient of ||g_i - g_j||^2
    c2: float                   # coefficient of ||x_i - x_j||^2
    c3: float                   # coefficient of <g_i - g_j, x_i - x_j>


@dataclass
class _Stage:
    base: list                  # independent symbols of the block (its coordinates)
    coef: dict                  # symbol -> coefficients of the unscaled vector in the block's scaled coords


@dataclass
class _Model:
    n: int
    basis: list                 # gradient basis: ("x", 0), ("g", k), ("s", k)
    beta: np.ndarray            # a-priori bounds on the basis vectors (the scaling)
    sym: dict                   # symbol -> unscaled vector in the scaled basis
    bound: dict                 # symbol -> a-priori bound on its norm
    funcs: list[_Func]
    nF: int
    F_bound: np.ndarray         # |F_i| <= F_bound_i (scaling of the values)
    F_labels: list[str]
    C: np.ndarray               # quadratic part of the objective (scaled basis)
    c: np.ndarray               # linear part of the objective on the scaled values
    stages: list[_Stage]
    steps: np.ndarray
    prox: bool
    init: tuple = (0,)          # initial condition: sum of G_pp over these scaled basis vectors <= 1
    final: Any = None           # the symbol of the last iterate (distance metric)
    #: valid bounds on sqrt(G_pp) in the scaled basis for every function of the class (None: all 1, i.e. the
    #: scaling is itself an a-priori bound); inf where no finite bound is known
    apriori: np.ndarray | None = None
    #: every value F_i is >= 0 for every function of the class (the optimum's (sub)gradients are 0)
    values_nonneg: bool = False
    #: the interpolation pairs with |i - j| <= band (in iteration index) are local (chain stages)
    band: int = 1
    #: ``stage_maker(units, band)`` builds the chain's stages (None: :func:`_make_stages`)
    stage_maker: Any = None
    #: iteration index of each point of each function (for the band), None: its position in ``labels``
    times: list | None = None

    def make_stages(self, units: dict, band: int | None = None) -> list[_Stage]:
        """The chain's stages with block coordinates in ``units`` (any positive choice)."""
        if self.stage_maker is None:
            return _make_stages(self.steps, self.prox, set(self.basis), units)
        return self.stage_maker(units, self.band if band is None else band)

    def widen(self, band: int) -> None:
        """Make every pair within ``band`` iterations local (rebuilds the chain's stages)."""
        self.band = band
        self.stages = self.make_stages(self.bound, band)
        self.__dict__.pop("_stage_cache", None)
        self.__dict__.pop("_stages_with", None)

    def pair_span(self, pair: Pair) -> int:
        """How many iterations apart the two points of a pair are (0 for a pair with the optimum)."""
        fi, i, j = pair
        if i == 0 or j == 0:
            return 0
        t = self.times[fi] if self.times is not None else None
        return abs(t[i] - t[j]) if t is not None else abs(i - j)

    def all_pairs(self) -> list[Pair]:
        out = []
        for fi, fn in enumerate(self.funcs):
            k = len(fn.labels)
            out += [(fi, i, j) for i in range(k) for j in range(k) if i != j]
        return out

    def local_pairs(self) -> list[Pair]:
        """The pairs with the optimum and between consecutive points."""
        out = []
        for fi, fn in enumerate(self.funcs):
            k = len(fn.labels)
            for i in range(1, k):
                out += [(fi, 0, i), (fi, i, 0)]
                if i + 1 < k:
                    out += [(fi, i, i + 1), (fi, i + 1, i)]
        return out

    def pair_name(self, pair: Pair) -> tuple[str, Any, Any]:
        fi, i, j = pair
        fn = self.funcs[fi]
        return fn.name, fn.labels[i], fn.labels[j]

    def stage_of(self, pair: Pair) -> int | None:
        """A stage whose block holds every vector of the pair (None for a non-local pair)."""
        cache = self.__dict__.setdefault("_stage_cache", {})
        if pair in cache:
            return cache[pair]
        if "_stages_with" not in self.__dict__:
            where: dict = {}
            for k, st in enumerate(self.stages):
                for sym in st.coef:
                    where.setdefault(sym, set()).add(k)
            self.__dict__["_stages_with"] = where
        where = self.__dict__["_stages_with"]
        fi, i, j = pair
        fn = self.funcs[fi]
        need = {s for p in (i, j) if fn.syms[p] is not None for s in fn.syms[p]}
        common = set(range(len(self.stages)))
        for sym in need:
            common &= where.get(sym, set())
        out = min(common) if common and self.stages else None
        cache[pair] = out
        return out


def _contraction_factors(steps: np.ndarray, q: float) -> np.ndarray:
    """``max(|1 - s q|, |1 - s|)``: Lipschitz constant of ``x -> x - s grad f(x)`` on F_{q,1}."""
    return np.maximum(np.abs(1.0 - steps * q), np.abs(1.0 - steps))


def _scaled_basis(basis: list, bound: dict) -> tuple[int, np.ndarray, dict]:
    """The Gram basis scaled by the a-priori bounds: its size, the scales ``beta`` and, for each basis symbol,
    its coordinate vector (``bound[b]`` at its own position, zero elsewhere)."""
    n = len(basis)
    beta = np.array([bound[b] for b in basis])
    sym: dict = {}
    for p, b in enumerate(basis):
        v = np.zeros(n)
        v[p] = bound[b]
        sym[b] = v
    return n, beta, sym


def _h_function(labels: list[str], syms: list, points: list, subgrads: list, star_subgrad: np.ndarray,
                nf: int) -> _Func:
    """The closed convex part h (or g) of the composite: its interpolation points ``*`` and ``labels``, with
    symbols ``syms`` (None at ``*``), point and subgradient vectors, and its function values stored after the
    ``nf`` values of f."""
    return _Func("h", ["*"] + labels, [None] + syms, np.array([np.zeros_like(star_subgrad)] + points),
                 np.array([star_subgrad] + subgrads), np.concatenate([[-1], nf + np.arange(len(labels))]),
                 0.0, 0.0, 0.0)


def _performance(F_bound: list, nf: int, n: int, objective: bool, composite: bool,
                 final: np.ndarray) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """Scaled function-value bounds, their count, the metric matrix ``C`` and the objective vector ``c``:
    ``F(x_N) - F*`` (the last value of f, plus the last of h for a composite) or ``||x_N - x*||^2``."""
    F_bound = np.maximum(np.array(F_bound), 1e-300)
    nF = len(F_bound)
    cF = np.zeros(nF)
    C = np.zeros((n, n))
    if objective:
        cF[nf - 1] = 1.0
        if composite:
            cF[nF - 1] = 1.0
    else:
        C = np.outer(final, final)
    return F_bound, nF, C, cF * F_bound


def _build_model(steps: np.ndarray, q: float, method: str, metric: str) -> _Model:
    """The PEP with L = 1 and mu = q < 1 (see the module docstring)."""
    N = len(steps)
    prox = method == "prox_grad"
    objective = metric == "objective"
    fac = _contraction_factors(steps, q)
    R = np.maximum(np.concatenate([[1.0], np.cumprod(fac)]), 1e-300)      # ||x_k - x*|| <= R_k
    fpts = list(range(N + 1 if objective else N))                          # points where grad f is used
    hpts = list(range(1, N + 1)) if prox else []
    basis = [("x", 0)] + [("g", k) for k in fpts] + [("s", k) for k in hpts]
    bound = {("x", k): R[k] for k in range(N + 1)}
    bound.update({("g", k): R[k] for k in fpts})                          # ||g_k|| <= L ||x_k - x*||
    bound.update({("s", k): max(fac[k - 1] * R[k - 1] / steps[k - 1], 1e-300) for k in hpts})
    n, beta, sym = _scaled_basis(basis, bound)  # unscaled vector b = bound_b * (scaled basis vector)
    for k in range(N):                          # x_{k+1} = x_k - s_k (g_k + s_{k+1})
        step = sym[("g", k)] + (sym[("s", k + 1)] if prox else 0.0)
        sym[("x", k + 1)] = sym[("x", k)] - steps[k] * step

    c = 1.0 / (2.0 * (1.0 - q))
    funcs = []
    fsyms = [None] + [(("x", k), ("g", k)) for k in fpts]
    nf = len(fpts)
    funcs.append(_Func("f", ["*"] + fpts, fsyms,
                       np.array([np.zeros(n)] + [sym[("x", k)] for k in fpts]),
                       np.array([np.zeros(n)] + [sym[("g", k)] for k in fpts]),
                       np.arange(-1, nf), c, c * q, -2.0 * c * q))
    F_bound = [R[k] ** 2 / 2 for k in fpts]                               # 0 <= f_k - f* <= L/2 R_k^2
    F_labels = [f"f(x{k})" for k in fpts]
    if prox:
        funcs.append(_h_function(hpts, [(("x", k), ("s", k)) for k in hpts], [sym[("x", k)] for k in hpts],
                                 [sym[("s", k)] for k in hpts], np.zeros(n), nf))
        F_bound += [R[k] * bound[("s", k)] for k in hpts]                 # 0 <= h_k - h* <= <s_k, x_k>
        F_labels += [f"h(x{k})" for k in hpts]
    F_bound, nF, C, c = _performance(F_bound, nf, n, objective, prox, sym[("x", N)])
    stages = _make_stages(steps, prox, set(basis), bound)
    return _Model(n=n, basis=basis, beta=beta, sym=sym, bound=bound, funcs=funcs, nF=nF, F_bound=F_bound,
                  F_labels=F_labels, C=C, c=c, stages=stages, steps=steps, prox=prox, final=("x", N))


def _momentum_apriori(steps: np.ndarray, betas: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    r"""A-priori bounds of the momentum recursion valid for every function of the class (L = 1,
    :math:`\|x_0\| \le 1`): :math:`\|v_k\| \le (1 + |\beta_k|) R_{k-1} + |\beta_k| R_{k-2}` and
    :math:`\|x_k\| \le R_k = \max(|1 - \gamma_k q|, |1 - \gamma_k|) \|v_k\|` (a gradient step, then the
    nonexpansive prox).  They grow like :math:`(1 + 2\beta)^k` and may overflow to ``inf`` (no finite bound:
    the certificate then does without them).  Returns ``(Rv, R)`` (``R[0] = 1``)."""
    N = len(steps)
    fac = _contraction_factors(steps, q)
    R = np.ones(N + 1)
    Rv = np.ones(N)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, N + 1):
            b = abs(betas[k - 1])
            Rv[k - 1] = R[0] if k == 1 else (1 + b) * R[k - 1] + b * R[max(k - 2, 0)]
            R[k] = fac[k - 1] * Rv[k - 1]
    return np.nan_to_num(Rv, nan=math.inf), np.nan_to_num(R, nan=math.inf)


def _momentum_units(steps: np.ndarray, betas: np.ndarray, q: float) -> dict:
    """Units of the momentum PEP's vectors and values: their largest size over the 1-D quadratic worst cases
    ``f = (c/2) x^2`` (``c`` on a grid of ``[q, 1]``, ``h = 0``, ``x_0 = 1``), floored.  Only a change of
    variables that conditions the SDP (``docs/theory/pep.md §4``); the certificate does not rely on it.

    Returns arrays ``x`` (``||x_k||``, k = 0..N), ``d`` (``||x_k - x_{k-1}||``), ``v`` and ``g`` (k = 1..N).
    """
    N = len(steps)
    c = np.linspace(q, 1.0, 65)
    xs = np.zeros((N + 1, c.size))
    vs = np.zeros((N, c.size))
    xs[0] = 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, N + 1):
            prev2 = xs[max(k - 2, 0)]
            vs[k - 1] = xs[k - 1] + betas[k - 1] * (xs[k - 1] - prev2)
            xs[k] = (1.0 - steps[k - 1] * c) * vs[k - 1]
        ds = np.vstack([np.zeros((1, c.size)), np.diff(xs, axis=0)])
        gs = c[None, :] * vs
    big = 1e150

    def size(a: np.ndarray, floor: np.ndarray) -> np.ndarray:
        m = np.nan_to_num(np.max(np.abs(a), axis=1), nan=big, posinf=big)
        return np.clip(np.maximum(m, floor), 1e-150, big)

    x = size(xs, np.full(N + 1, 1e-6))
    v = size(vs, 1e-6 * x[:-1])
    g = size(gs, 1e-3 * v)
    d = size(ds, 1e-3 * x)
    return {"x": x, "d": d, "v": v, "g": g}


def _build_momentum_model(steps: np.ndarray, betas: np.ndarray, q: float, prox: bool, metric: str) -> _Model:
    r"""The PEP of the momentum recursion (``docs/theory/pep.md §4``), L = 1, mu = q < 1, x_* = 0:
    :math:`v_k = x_{k-1} + \beta_k (x_{k-1} - x_{k-2})`, :math:`x_k = v_k - \gamma_k (g_k + s_k)` with
    :math:`g_k = \nabla f(v_k)`, :math:`s_k \in \partial h(x_k)` (prox step), :math:`x_{-1} = x_0`.

    Basis: ``x_0``, ``g_k`` (k = 1..N), ``s_k`` (k = 1..N, prox only) and ``g_N'`` = grad f(x_N) for the
    objective metric, each in the unit of its size in the 1-D quadratic worst cases
    (:func:`_momentum_units`; ``x_0`` in unit 1).  The a-priori bounds of :func:`_momentum_apriori`, relative
    to these units, are ``apriori`` (used by the certificate only in the fallback of a failed PSD test);
    every value is ``>= 0`` (``values_nonneg``).  The chain's stages hold ``x_{k-1}``,
    ``d_{k-1} = x_{k-1} - x_{k-2}`` and the (sub)gradients of ``band + 1`` steps
    (:func:`_momentum_stages`).
    """
    N = len(steps)
    objective = metric == "objective"
    Rv, R = _momentum_apriori(steps, betas, q)
    un = _momentum_units(steps, betas, q)
    basis = [("x", 0)] + [("g", k) for k in range(1, N + 1)]
    if objective:
        basis.append(("g", "N"))
    if prox:
        basis += [("s", k) for k in range(1, N + 1)]
    unit = {("x", 0): 1.0}
    unit.update({("g", k): un["g"][k - 1] for k in range(1, N + 1)})
    if objective:
        unit[("g", "N")] = max(un["x"][N], 1e-150)
    if prox:
        unit.update({("s", k): un["g"][k - 1] for k in range(1, N + 1)})
    with np.errstate(over="ignore", invalid="ignore"):
        bnd = {("x", 0): 1.0}                   # a-priori bounds: ||g_k|| <= ||v_k||, ||s_k|| <= R'_k / gamma_k
        bnd.update({("g", k): Rv[k - 1] for k in range(1, N + 1)})
        if objective:
            bnd[("g", "N")] = R[N]
        if prox:
            fac = _contraction_factors(steps, q)
            bnd.update({("s", k): fac[k - 1] * Rv[k - 1] / steps[k - 1] for k in range(1, N + 1)})
        apriori = np.array([bnd[b] / unit[b] for b in basis])
    apriori = np.where(np.isfinite(apriori), apriori, math.inf)
    n, beta, sym = _scaled_basis(basis, unit)
    xs = [sym[("x", 0)]]
    for k in range(1, N + 1):
        prev2 = xs[max(k - 2, 0)]
        v = xs[k - 1] + betas[k - 1] * (xs[k - 1] - prev2)
        sym[("v", k)] = v
        step = sym[("g", k)] + (sym[("s", k)] if prox else 0.0)
        xs.append(v - steps[k - 1] * step)
        sym[("x", k)] = xs[k]
    # units of the chain's derived base vectors (x_k, d_k): the same quadratic sizes
    unit.update({("x", k): un["x"][k] for k in range(1, N + 1)})
    unit.update({("d", k): un["d"][k] for k in range(1, N + 1)})
    c = 1.0 / (2.0 * (1.0 - q))
    fl = ["*"] + [f"v{k}" for k in range(1, N + 1)] + (["xN"] if objective else [])
    fX = [np.zeros(n)] + [sym[("v", k)] for k in range(1, N + 1)] + ([xs[N]] if objective else [])
    fG = [np.zeros(n)] + [sym[("g", k)] for k in range(1, N + 1)] + ([sym[("g", "N")]] if objective else [])
    nf = len(fl) - 1
    fsyms = [None] + [(("v", k), ("g", k)) for k in range(1, N + 1)] + ([(("x", N), ("g", "N"))]
                                                                       if objective else [])
    funcs = [_Func("f", fl, fsyms, np.array(fX), np.array(fG), np.arange(-1, nf), c, c * q, -2.0 * c * q)]
    # value units: 0 <= f(v_k) - f* <= ||g_k|| ||v_k|| (convexity, grad f(x*) = 0), likewise for h
    F_unit = [un["g"][k - 1] * un["v"][k - 1] for k in range(1, N + 1)]
    F_unit += [unit[("g", "N")] * un["x"][N]] if objective else []
    F_labels = [f"f(v{k})" for k in range(1, N + 1)] + ([f"f(x{N})"] if objective else [])
    times = [[0] + list(range(1, N + 1)) + ([N] if objective else [])]
    if prox:
        ks = range(1, N + 1)
        funcs.append(_h_function([f"x{k}" for k in ks], [(("x", k), ("s", k)) for k in ks], xs[1:],
                                 [sym[("s", k)] for k in ks], np.zeros(n), nf))
        F_unit += [un["g"][k - 1] * un["x"][k] for k in ks]
        F_labels += [f"h(x{k})" for k in ks]
        times.append([0] + list(ks))
    F_bound, nF, C, c = _performance(F_unit, nf, n, objective, prox, xs[N])

    def maker(units: dict, band: int) -> list[_Stage]:
        return _momentum_stages(steps, betas, prox, objective, band, units)

    return _Model(n=n, basis=basis, beta=beta, sym=sym, bound=unit, funcs=funcs, nF=nF, F_bound=F_bound,
                  F_labels=F_labels, C=C, c=c, stages=maker(unit, 1), steps=steps, prox=prox, final=("x", N),
                  apriori=apriori, values_nonneg=True, band=1, stage_maker=maker, times=times)


def _momentum_stages(steps: np.ndarray, betas: np.ndarray, prox: bool, objective: bool, band: int,
                     scale: dict) -> list[_Stage]:
    """The chain of the momentum PEP: stage ``k`` (k = 1..max(1, N - band)) holds ``x_{k-1}``,
    ``d_{k-1} = x_{k-1} - x_{k-2}`` (absent for k = 1: ``x_{-1} = x_0``) and ``g_j`` (and ``s_j``) for
    ``j = k..k + band``, and derives ``v_j = x_{j-1} + beta_j d_{j-1}``, ``x_j = v_j - gamma_j (g_j + s_j)``,
    ``d_j = x_j - x_{j-1}``; the last one also holds ``grad f(x_N)`` (objective).  Consecutive stages share
    ``x_k``, ``d_k`` and the (sub)gradients of their common steps, and a stage's vectors that reappear later
    are all in the next stage (running intersection), so gluing the blocks along the chain is exact
    (``docs/theory/pep.md §4``).  ``scale[b]`` is the unit of symbol ``b`` in the blocks.
    """
    N = len(steps)
    K = max(1, N - band)
    stages = []
    for k in range(1, K + 1):
        last = min(k + band, N) if k < K else N
        base = [("x", k - 1)] + ([("d", k - 1)] if k > 1 else [])
        for j in range(k, last + 1):
            base.append(("g", j))
            if prox:
                base.append(("s", j))
        if objective and k == K:
            base.append(("g", "N"))
        coef = _unit_coefficients(base, scale)
        dim = len(base)
        if k == 1:
            coef[("d", 0)] = np.zeros(dim)
        for j in range(k, last + 1):
            v = coef[("x", j - 1)] + betas[j - 1] * coef[("d", j - 1)]
            coef[("v", j)] = v
            coef[("x", j)] = v - steps[j - 1] * (coef[("g", j)] + (coef[("s", j)] if prox else 0.0))
            coef[("d", j)] = coef[("x", j)] - coef[("x", j - 1)]
        stages.append(_Stage(base, coef))
    return stages


def _momentum_quadratic_xN(steps: np.ndarray, betas: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``x_N`` of the momentum recursion on ``f = (c/2) x^2``, ``h = 0``, ``x_0 = 1`` (one per ``c``)."""
    xm2 = np.ones_like(c)
    xm1 = np.ones_like(c)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(len(steps)):
            v = xm1 + betas[k] * (xm1 - xm2) if k > 0 else xm1
            xm2, xm1 = xm1, (1.0 - steps[k] * c) * v
    return xm1


def _build_admm_model(steps: np.ndarray, q: float, metric: str) -> _Model:
    r"""The PEP of ADMM with per-step penalties as :class:`~unfoldtheory.models.UnfoldedADMM` runs it
    (``docs/theory/pep.md §5``), L = 1, mu = q < 1, x_* = 0, :math:`\gamma_k = 1/\rho_k` = ``steps[k-1]``:

    :math:`x_k = z_{k-1} - u_{k-1} - \gamma_k a_k` (:math:`a_k = \nabla f(x_k)`: the prox of f),
    :math:`z_k = x_k + u_{k-1} - \gamma_k b_k` (:math:`b_k \in \partial g(z_k)`: the prox of g),
    :math:`u_k = u_{k-1} + x_k - z_k = \gamma_k b_k`, :math:`u_0 = 0`.

    The optimum has :math:`-b_\star = \nabla f(x_\star)`, :math:`b_\star \in \partial g(x_\star)` (a basis
    vector: with varying penalties the recursion is not invariant under the linear shift that removes
    it).  Initial condition :math:`\|z_0 - x_\star\|^2 + \|u_0 - u_\star\|^2 \le 1` with
    :math:`u_\star = \gamma_1 b_\star` (the fixed point of the first iteration), i.e.
    :math:`\|z_0\|^2 + \gamma_1^2 \|b_\star\|^2 \le 1`.  A-priori bounds: both proxes and their
    complements are nonexpansive around the points they fix.
    """
    N = len(steps)
    objective = metric == "objective"
    g1 = steps[0]
    Bs = 1.0 / g1                              # ||b*|| <= 1 / gamma_1
    Zb, Ub, Xb, Ab, Bb = [1.0], [0.0], [], [], []
    for k in range(1, N + 1):
        gk = steps[k - 1]
        X = Zb[k - 1] + Ub[k - 1] + gk * Bs    # ||x_k - x*|| <= ||w_k - (x* - gamma b*)||
        Xb.append(X)
        Ab.append(Bs + min(1.0, 1.0 / gk) * X)
        Zt = X + Ub[k - 1] + gk * Bs           # ||z_k - x*|| <= ||zeta_k - (x* + gamma b*)||
        Zb.append(Zt)
        Bb.append(Bs + Zt / gk)
        Ub.append(gk * Bb[-1])
    basis = [("z", 0), ("b", "*")] + [("a", k) for k in range(1, N + 1)] + [("b", k) for k in range(1, N + 1)]
    bound = {("z", 0): 1.0, ("b", "*"): Bs}
    bound.update({("a", k): Ab[k - 1] for k in range(1, N + 1)})
    bound.update({("b", k): Bb[k - 1] for k in range(1, N + 1)})
    if objective:
        basis.append(("a", "N"))
        bound[("a", "N")] = Bs + Zb[N]
    bound = {b: max(v, 1e-300) for b, v in bound.items()}
    n, beta, sym = _scaled_basis(basis, bound)
    z, u = sym[("z", 0)], np.zeros(n)
    xs, zs = [], []
    for k in range(1, N + 1):
        gk = steps[k - 1]
        x = z - u - gk * sym[("a", k)]
        zeta = x + u
        z = zeta - gk * sym[("b", k)]
        u = gk * sym[("b", k)]
        sym[("x", k)], sym[("z", k)] = x, z
        xs.append(x)
        zs.append(z)
    c = 1.0 / (2.0 * (1.0 - q))
    zero = np.zeros(n)
    fl = ["*"] + [f"x{k}" for k in range(1, N + 1)] + (["zN"] if objective else [])
    fX = [zero] + xs + ([zs[-1]] if objective else [])
    fG = ([-sym[("b", "*")]] + [sym[("a", k)] for k in range(1, N + 1)]
          + ([sym[("a", "N")]] if objective else []))
    fsyms = [None] + [(("x", k), ("a", k)) for k in range(1, N + 1)] + ([(("z", N), ("a", "N"))]
                                                                       if objective else [])
    nf = len(fl) - 1
    funcs = [_Func("f", fl, fsyms, np.array(fX), np.array(fG), np.arange(-1, nf), c, c * q, -2.0 * c * q)]
    F_bound = [Bs * r + r * r / 2 for r in Xb] + ([Bs * Zb[N] + Zb[N] ** 2 / 2] if objective else [])
    F_labels = [f"f(x{k})" for k in range(1, N + 1)] + ([f"f(z{N})"] if objective else [])
    ks = range(1, N + 1)
    funcs.append(_h_function([f"z{k}" for k in ks], [(("z", k), ("b", k)) for k in ks], zs,
                             [sym[("b", k)] for k in ks], sym[("b", "*")], nf))
    F_bound += [max(Bs, Bb[k - 1]) * Zb[k] for k in ks]
    F_labels += [f"g(z{k})" for k in ks]
    F_bound, nF, C, c = _performance(F_bound, nf, n, objective, True, zs[-1])
    return _Model(n=n, basis=basis, beta=beta, sym=sym, bound=bound, funcs=funcs, nF=nF, F_bound=F_bound,
                  F_labels=F_labels, C=C, c=c, stages=[], steps=steps, prox=True, init=(0, 1),
                  final=("z", N))


def _admm_quadratic_zN(steps: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``z_N`` of the ADMM recursion on ``f = (a/2) x^2``, ``g = (b/2) x^2`` (so ``x_* = b_* = 0``),
    ``z_0 = 1``, ``u_0 = 0``; elementwise in ``a``, ``b``."""
    z = np.ones(np.broadcast(a, b).shape)
    u = np.zeros_like(z)
    for gk in steps:
        x = (z - u) / (1.0 + gk * a)
        zeta = x + u
        z = zeta / (1.0 + gk * b)
        u = zeta - z
    return z


def _admm_lower(steps: np.ndarray, q: float, metric: str) -> tuple[float, float, float]:
    """The largest value over a grid of 1-D quadratic pairs ``f = (a/2) x^2`` (``a`` in ``[q, 1]``),
    ``g = (b/2) x^2`` (``b >= 0``), each a member of the class: an attained lower bound (rounded down).
    Returns ``(value, a, b)``."""
    a = np.linspace(q, 1.0, 81)
    b = np.concatenate([[0.0], np.geomspace(1e-3, 1e3, 120)])
    A_, B_ = np.meshgrid(a, b, indexing="ij")
    zN = _admm_quadratic_zN(steps, A_, B_)
    v = zN ** 2 * ((A_ + B_) / 2.0 if metric == "objective" else 1.0)
    k = np.unravel_index(int(np.argmax(v)), v.shape)
    val = float(v[k]) * (1.0 - 16.0 * (len(steps) + 4) * _EPS)
    return val, float(A_[k]), float(B_[k])


def _unit_coefficients(base: list, scale: dict) -> dict:
    """The coefficient vector of every basis element of a stage in the stage's own scaled basis:
    ``scale[b]`` times the unit vector of its position."""
    coef = {}
    for a, b in enumerate(base):
        e = np.zeros(len(base))
        e[a] = scale[b]
        coef[b] = e
    return coef


def _make_stages(steps: np.ndarray, prox: bool, basis: set, scale: dict) -> list[_Stage]:
    """The chain: stage k holds x_k, the (sub)gradients around step k, and x_{k+1} (derived).

    ``scale[b]`` is the unit of symbol ``b`` in the blocks (the block coordinate times ``scale[b]`` is the
    vector); any positive choice describes the same problem.
    """
    stages = []
    for k in range(len(steps)):
        base = [("x", k)]
        if prox and k >= 1:
            base.append(("s", k))
        if ("g", k) in basis:
            base.append(("g", k))
        if prox:
            base.append(("s", k + 1))
        if ("g", k + 1) in basis:
            base.append(("g", k + 1))
        coef = _unit_coefficients(base, scale)
        nxt = coef[("x", k)] - steps[k] * (coef[("g", k)] + (coef[("s", k + 1)] if prox else 0.0))
        coef[("x", k + 1)] = nxt
        stages.append(_Stage(base, coef))
    return stages


# ====================================================================================== dual data
@dataclass
class _Dual:
    """The inequalities of a set of pairs in the scaled basis (dense, float64).

    ``M_k = U_k^T B_k U_k`` with ``U_k = [g_j; x_i - x_j; g_i - g_j]`` (3 x n) and ``B_k`` (3 x 3); ``E`` the
    coefficients on the scaled values.  Inequality ``k`` reads ``<M_k, G> + E[:, k] . F <= 0``; the dual
    matrix is ``S = tau e_0 e_0^T + sum_k lam_k M_k - C`` (``x_0`` is basis vector 0, with bound 1).
    """

    pairs: list
    U: np.ndarray               # (m, 3, n)
    B: np.ndarray               # (m, 3, 3)
    E: np.ndarray               # (nF, m)
    c: np.ndarray               # (nF,)
    C: np.ndarray               # (n, n)
    star: dict                  # value node -> [index of pair (*, i), index of pair (i, *)]
    F_bound: np.ndarray
    init: tuple = (0,)          # basis vectors of the initial condition sum_p G_pp <= 1
    apriori: np.ndarray | None = None    # valid bounds on sqrt(G_pp) (None: 1)
    nonneg: bool = False        # every value F_i >= 0 on the class (residuals need no bound on F)

    @property
    def n(self) -> int:
        return self.C.shape[0]

    def S0(self, lam: np.ndarray) -> np.ndarray:
        """``sum_k lam_k M_k - C`` (one matrix product over the 3m stacked rows)."""
        m, n = self.U.shape[0], self.n
        W = np.einsum("kab,kbn->kan", lam[:, None, None] * self.B, self.U)
        S = self.U.reshape(3 * m, n).T @ W.reshape(3 * m, n) - self.C
        return 0.5 * (S + S.T)

    def S0abs(self, lam: np.ndarray) -> np.ndarray:
        """``sum_k lam_k |U_k|^T |B_k| |U_k| + |C|`` (entrywise bound on the terms summed into ``S``)."""
        m, n = self.U.shape[0], self.n
        aU = np.abs(self.U)
        W = np.einsum("kab,kbn->kan", lam[:, None, None] * np.abs(self.B), aU)
        return aU.reshape(3 * m, n).T @ W.reshape(3 * m, n) + np.abs(self.C)

    def quad(self, z: np.ndarray) -> np.ndarray:
        """``z^T M_k z`` for every pair."""
        P = self.U @ z                                              # (m, 3)
        return np.einsum("ka,kab,kb->k", P, self.B, P)

    def Mz(self, z: np.ndarray) -> np.ndarray:
        """``M_k z`` for every pair, shape (m, n)."""
        P = self.U @ z
        return np.einsum("kan,ka->kn", self.U, np.einsum("kab,kb->ka", self.B, P))

    def values(self, G: np.ndarray, Fh: np.ndarray) -> np.ndarray:
        """``<M_k, G> + E[:, k] . Fh`` for every pair (positive: violated)."""
        P = np.einsum("kan,nm->kam", self.U, G)
        return np.einsum("kam,kbm,kab->k", P, self.U, self.B) + self.E.T @ Fh

    def dominate(self, lam: np.ndarray) -> np.ndarray:
        """Raise the multipliers of the pairs ``(*, i)`` so that ``E lam - c >= 0`` holds in exact arithmetic
        (the computed residual exceeds its rounding bound); with ``F >= 0`` the value equations then need no
        bound on ``F`` (:func:`_certify`)."""
        lam = lam.copy()
        aE, nnz = np.abs(self.E), np.count_nonzero(self.E, axis=1)
        for _ in range(3):
            r = self.E @ lam - self.c
            rb = (nnz + 4) * _EPS * (aE @ lam + np.abs(self.c))
            low = np.flatnonzero(r < 2.0 * rb)
            if not low.size:
                break
            for node in low:
                kp = self.star.get(int(node), [None, None])[0]
                if kp is not None:
                    lam[kp] += (4.0 * rb[node] - r[node]) / self.F_bound[node]
        return lam

    def repair_flow(self, lam: np.ndarray) -> tuple[np.ndarray, float]:
        """Make ``E lam = c`` hold by raising the multipliers of the pairs with the optimum."""
        lam = lam.copy()
        r = self.E @ lam - self.c
        eq0 = float(np.max(np.abs(r))) if r.size else 0.0
        for node, (kp, km) in self.star.items():
            if r[node] < 0 and kp is not None:
                lam[kp] += -r[node] / self.F_bound[node]
            elif r[node] > 0 and km is not None:
                lam[km] += r[node] / self.F_bound[node]
        return lam, eq0


def _pair_vectors(fn: _Func, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    U = np.array([fn.Gr[j], fn.X[i] - fn.X[j], fn.Gr[i] - fn.Gr[j]])
    B = np.array([[0.0, 0.5, 0.0], [0.5, fn.c2, 0.5 * fn.c3], [0.0, 0.5 * fn.c3, fn.c1]])
    return U, B


def _dual_data(model: _Model, pairs: list) -> _Dual:
    m, n = len(pairs), model.n
    U = np.zeros((m, 3, n))
    B = np.zeros((m, 3, 3))
    E = np.zeros((model.nF, m))
    star: dict[int, list] = {}
    for k, (fi, i, j) in enumerate(pairs):
        fn = model.funcs[fi]
        U[k], B[k] = _pair_vectors(fn, i, j)
        if fn.Fidx[j] >= 0:
            E[fn.Fidx[j], k] += model.F_bound[fn.Fidx[j]]
        if fn.Fidx[i] >= 0:
            E[fn.Fidx[i], k] -= model.F_bound[fn.Fidx[i]]
        if i == 0:
            star.setdefault(int(fn.Fidx[j]), [None, None])[0] = k
        elif j == 0:
            star.setdefault(int(fn.Fidx[i]), [None, None])[1] = k
    return _Dual(list(pairs), U, B, E, model.c, model.C, star, model.F_bound, tuple(model.init),
                 model.apriori, model.values_nonneg)


# ========================================================================================== solve
@dataclass
class _Relaxation:
    value: float                # the solver's objective (internal units)
    G: np.ndarray               # worst-case Gram matrix in the scaled basis (glued for the chain)
    Fh: np.ndarray              # scaled values
    lam: np.ndarray             # multipliers of the pairs
    tau: float
    status: str
    solver: str
    form: str                   # "chain" or "dense"
    max_block: int
    n_blocks: int
    seconds: float


def _run(prob, order: list[str], attempts: list, what: str):
    import cvxpy as cp

    for name in order:
        try:
            prob.solve(solver=name, **SOLVER_OPTIONS.get(name, {}))
        except (cp.error.SolverError, ValueError, ArithmeticError, MemoryError) as exc:
            # (SCS raises ValueError when it cannot allocate its workspace)
            attempts.append(SolverAttempt(name, "error", (str(exc).splitlines() or [""])[0][:100]))
            continue
        status = str(prob.status)
        if status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            return name, status
        attempts.append(SolverAttempt(name, status))
    raise SolverError(f"the PEP ({what}) could not be solved.", attempts)


def _solve_dense(model: _Model, pairs: list, order: list[str], attempts: list,
                 hint: _Relaxation | None = None) -> _Relaxation:
    """The PEP with the given inequalities, one dense PSD Gram matrix in the scaled gradient basis.

    ``hint`` (the previous round's worst case) sets the units of the basis vectors and of the values, as in
    :func:`_solve_chain` (a diagonal rescaling; the multipliers keep their meaning).
    """
    import cvxpy as cp

    t0 = time.perf_counter()
    n = model.n
    dd = _dual_data(model, pairs)
    d = np.ones(n)
    fu = np.ones(model.nF)
    if hint is not None:
        g = np.sqrt(np.maximum(np.diag(hint.G), 0.0))
        d = np.maximum(g, _UNIT_FLOOR * max(float(np.max(g)), 1e-300))
        d[list(model.init)] = 1.0
        fa = np.abs(hint.Fh)
        fu = np.maximum(fa, _UNIT_FLOOR * max(float(np.max(fa)), 1e-300))
    U = dd.U * d[None, None, :]
    Ms = np.einsum("kan,kab,kbm->knm", U, dd.B, U).reshape(len(pairs), n * n)
    G = cp.Variable((n, n), PSD=True)
    Fh = cp.Variable(model.nF)
    interp = Ms @ cp.vec(G, order="F") + (dd.E * fu[:, None]).T @ Fh <= 0
    init = sum(G[p, p] for p in model.init) <= 1.0
    cF, CG = model.c * fu, model.C * np.outer(d, d)
    alpha = max(float(np.max(np.abs(cF))), float(np.max(np.abs(CG))), 1e-300)   # unit-size objective
    obj = (cF / alpha) @ Fh
    if np.any(CG):
        obj = obj + cp.sum(cp.multiply(CG / alpha, G))
    prob = cp.Problem(cp.Maximize(obj), [interp, init])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Solution may be inaccurate")
        name, status = _run(prob, order, attempts, f"dense, {len(pairs)} inequalities, Gram dimension {n}")
    if interp.dual_value is None or G.value is None:
        raise SolverError("the PEP solver returned no multipliers.", attempts)
    Gv = np.asarray(G.value, dtype=np.float64) * np.outer(d, d)
    return _Relaxation(float(prob.value) * alpha, Gv, np.asarray(Fh.value, float) * fu,
                       np.asarray(interp.dual_value, dtype=np.float64).ravel() * alpha,
                       float(np.asarray(init.dual_value)) * alpha, status, name, "dense", n, 1,
                       time.perf_counter() - t0)


def _chain_data(model: _Model, pairs: list, stages: list[_Stage], F_unit: np.ndarray) -> dict:
    """The chain relaxation as sparse data over the stacked column-major ``vec`` of the blocks and the values
    (in units ``F_unit``): interpolation rows ``Bm y + E F <= 0``, the initial condition ``init . y <= 1``,
    agreement rows ``Eq y = 0`` and the objective ``(cF . F + cY . y) * alpha`` (normalised to unit size)."""
    import scipy.sparse as sps

    K = len(stages)
    dims = [len(st.base) for st in stages]
    offs = np.concatenate([[0], np.cumsum([d * d for d in dims])]).astype(int)
    nY = int(offs[-1])
    ri, ci, vi = [], [], []
    E = np.zeros((len(pairs), model.nF))
    for r, pair in enumerate(pairs):
        k = model.stage_of(pair)
        if k is None:
            raise AssertionError("non-local pair in the chain relaxation")
        fi, i, j = pair
        fn = model.funcs[fi]
        st = stages[k]
        zero = np.zeros(dims[k])

        def loc(p: int, which: int, fn=fn, st=st, zero=zero) -> np.ndarray:
            if fn.syms[p] is not None:
                return st.coef[fn.syms[p][which]]
            if which == 1 and np.any(fn.Gr[0]):
                raise AssertionError("the chain relaxation needs a zero (sub)gradient at the optimum")
            return zero

        U = np.array([loc(j, 1), loc(i, 0) - loc(j, 0), loc(i, 1) - loc(j, 1)])
        _, B = _pair_vectors(fn, i, j)
        v = (U.T @ B @ U).ravel(order="F")
        nz = np.flatnonzero(v)
        ri += [r] * nz.size
        ci += (offs[k] + nz).tolist()
        vi += v[nz].tolist()
        if fn.Fidx[j] >= 0:
            E[r, fn.Fidx[j]] += F_unit[fn.Fidx[j]]
        if fn.Fidx[i] >= 0:
            E[r, fn.Fidx[i]] -= F_unit[fn.Fidx[i]]
    Bm = sps.csr_matrix((vi, (ri, ci)), shape=(len(pairs), nY))
    init = np.zeros(nY)
    for p in model.init:
        cx0 = stages[0].coef[model.basis[p]]
        init[:offs[1]] += np.outer(cx0, cx0).ravel(order="F")
    # consecutive blocks agree on the Gram matrix of the vectors they share
    ei, ec, ev = [], [], []
    row = 0
    for k in range(K - 1):
        a, b = stages[k], stages[k + 1]
        shared = [t for t in b.base if t in a.coef]
        for u in range(len(shared)):
            for v in range(u, len(shared)):
                for blk, st, sign in ((k, a, 1.0), (k + 1, b, -1.0)):
                    cu, cv = st.coef[shared[u]], st.coef[shared[v]]
                    m = (0.5 * (np.outer(cu, cv) + np.outer(cv, cu))).ravel(order="F")
                    nz = np.flatnonzero(m)
                    ei += [row] * nz.size
                    ec += (offs[blk] + nz).tolist()
                    ev += (sign * m[nz]).tolist()
                row += 1
    Eq = sps.csr_matrix((ev, (ei, ec)), shape=(row, nY))
    cF = model.c / model.F_bound * F_unit
    cY = np.zeros(nY)
    if np.any(model.C):
        cx = stages[-1].coef[model.final]
        cY[offs[-2]:] = np.outer(cx, cx).ravel(order="F")
    alpha = max(float(np.max(np.abs(cF))) if cF.size else 0.0, float(np.max(np.abs(cY))), 1e-300)
    return {"dims": dims, "offs": offs, "Bm": Bm, "E": E, "init": init, "Eq": Eq, "cF": cF / alpha,
            "cY": cY / alpha, "alpha": alpha}


def _chain_clarabel(data: dict, nF: int) -> dict | None:
    """The chain relaxation solved by Clarabel directly (no cvxpy compilation: the cost of building the
    problem was most of the time at N >= 200).  PSD blocks in Clarabel's scaled upper-triangular ``svec``
    (off-diagonal entries times sqrt 2).  Returns None when Clarabel is unavailable or does not solve it."""
    import scipy.sparse as sps

    try:
        import clarabel
    except ImportError:                    # pragma: no cover - cvxpy ships Clarabel
        return None
    dims, offs = data["dims"], data["offs"]
    # P maps coefficients on the full column-major vec to the svec coordinates of each block
    pr, pc, pv, soffs = [], [], [], [0]
    r2 = math.sqrt(2.0)
    for k, d in enumerate(dims):
        col = soffs[-1]
        for j in range(d):
            for i in range(j + 1):
                if i == j:
                    pr.append(offs[k] + i + j * d)
                    pc.append(col)
                    pv.append(1.0)
                else:               # <M, Y> gets (M_ij + M_ji) Y_ij = (M_ij + M_ji) y_ij / sqrt 2
                    pr += [offs[k] + i + j * d, offs[k] + j + i * d]
                    pc += [col, col]
                    pv += [1.0 / r2, 1.0 / r2]
                col += 1
        soffs.append(col)
    nS = soffs[-1]
    P = sps.csr_matrix((pv, (pr, pc)), shape=(int(offs[-1]), nS))
    nx = nS + nF
    Bs = (data["Bm"] @ P).tocsc()
    rows_eq = sps.hstack([(data["Eq"] @ P), sps.csr_matrix((data["Eq"].shape[0], nF))]).tocsc()
    rows_in = sps.vstack([sps.hstack([Bs, sps.csc_matrix(data["E"])]),
                          sps.hstack([sps.csr_matrix(data["init"] @ P), sps.csr_matrix((1, nF))])])
    psd = sps.hstack([-sps.identity(nS, format="csc"), sps.csc_matrix((nS, nF))])
    A = sps.vstack([rows_eq, rows_in, psd]).tocsc()
    m_eq, m_in = rows_eq.shape[0], rows_in.shape[0]
    b = np.zeros(A.shape[0])
    b[m_eq + m_in - 1] = 1.0
    q = -np.concatenate([data["cY"] @ P, data["cF"]])
    cones = ([clarabel.ZeroConeT(m_eq)] if m_eq else []) + [clarabel.NonnegativeConeT(m_in)]
    cones += [clarabel.PSDTriangleConeT(d) for d in dims]
    st = clarabel.DefaultSettings()
    st.verbose = False
    for key, val in SOLVER_OPTIONS["CLARABEL"].items():
        setattr(st, key, val)
    st.max_threads = 1
    sol = clarabel.DefaultSolver(sps.csc_matrix((nx, nx)), q, A, b, cones, st).solve()
    status = str(sol.status)
    if not status.endswith("Solved"):
        return None
    x, z = np.asarray(sol.x), np.asarray(sol.z)
    Ys = []
    for k, d in enumerate(dims):
        v = x[soffs[k]:soffs[k + 1]]
        Yk = np.zeros((d, d))
        c = 0
        for j in range(d):
            for i in range(j + 1):
                Yk[i, j] = Yk[j, i] = v[c] if i == j else v[c] / r2
                c += 1
        Ys.append(Yk)
    lam = z[m_eq:m_eq + m_in - 1]
    return {"value": -float(sol.obj_val), "lam": lam, "tau": float(z[m_eq + m_in - 1]), "Ys": Ys,
            "F": x[nS:], "status": "optimal" if status == "Solved" else "optimal_inaccurate"}


def _chain_once(model: _Model, pairs: list, order: list[str], attempts: list, stages: list[_Stage],
                F_unit: np.ndarray) -> dict:
    """One solve of the chain relaxation with the given units of the block coordinates and of the values.

    Clarabel directly when it is the first solver (:func:`_chain_clarabel`); otherwise, or when that fails,
    through cvxpy with all blocks stacked into one vector (three sparse matrices instead of one expression
    per block).
    """
    data = _chain_data(model, pairs, stages, F_unit)
    alpha = data["alpha"]
    if order and order[0] == "CLARABEL" and _DIRECT_CLARABEL:
        out = _chain_clarabel(data, model.nF)
        if out is not None:
            return {"value": out["value"] * alpha, "lam": out["lam"] * alpha, "tau": out["tau"] * alpha,
                    "Ys": out["Ys"], "F": out["F"] * F_unit, "status": out["status"], "solver": "CLARABEL"}
        attempts.append(SolverAttempt("CLARABEL", "direct call not solved; retrying through cvxpy"))
    import cvxpy as cp

    dims, offs = data["dims"], data["offs"]
    Y = [cp.Variable((d, d), PSD=True) for d in dims]
    yall = cp.hstack([cp.vec(y, order="F") for y in Y])
    Fv = cp.Variable(model.nF)                     # values in units F_unit
    import scipy.sparse as sps

    interp = data["Bm"] @ yall + sps.csr_matrix(data["E"]) @ Fv <= 0
    init = data["init"][:offs[1]] @ yall[:offs[1]] <= 1.0
    cons = [interp, init]
    if data["Eq"].shape[0]:
        cons.append(data["Eq"] @ yall == 0)
    obj = data["cF"] @ Fv
    if np.any(data["cY"]):
        obj = obj + data["cY"][offs[-2]:] @ yall[offs[-2]:]
    prob = cp.Problem(cp.Maximize(obj), cons)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Solution may be inaccurate")
        name, status = _run(prob, order, attempts, f"chain of {len(dims)} blocks, {len(pairs)} inequalities")
    if interp.dual_value is None or init.dual_value is None or any(y.value is None for y in Y):
        raise SolverError("the PEP solver returned no multipliers.", attempts)
    return {"value": float(prob.value) * alpha,
            "lam": np.asarray(interp.dual_value, dtype=np.float64).ravel() * alpha,
            "tau": float(np.asarray(init.dual_value)) * alpha,
            "Ys": [np.asarray(y.value, dtype=np.float64) for y in Y],
            "F": np.asarray(Fv.value, dtype=np.float64) * F_unit, "status": status, "solver": name}


def _solve_chain(model: _Model, pairs: list, order: list[str], attempts: list) -> _Relaxation:
    """The relaxation with local inequalities only, as a chain of small PSD blocks (module docstring).

    Solved twice: first in the a-priori units, then with every vector and value measured in units of its
    size in the first worst case (a diagonal rescaling that the interior-point solver does not do itself;
    worst cases mix vectors of very different sizes, e.g. gradients ~ 1/N beside iterates ~ 1).  The pass
    with the better certificate is kept.
    """
    t0 = time.perf_counter()
    dd = _dual_data(model, pairs)
    first = _chain_once(model, pairs, order, attempts, model.stages, model.F_bound)
    runs = [first]
    # units from the first worst case (floored, so that a vector that vanishes keeps a sensible unit)
    size: dict = {}
    for st, Yk in zip(model.stages, first["Ys"]):
        for a, b in enumerate(st.base):
            size[b] = max(size.get(b, 0.0), math.sqrt(max(Yk[a, a], 0.0)) * model.bound[b])
    top = max(size.values())
    unit = {b: max(v, _UNIT_FLOOR * top, 1e-300) for b, v in size.items()}
    unit[("x", 0)] = model.bound[("x", 0)]
    F_abs = np.abs(first["F"])
    F_unit = np.maximum(F_abs, _UNIT_FLOOR * max(float(np.max(F_abs)), 1e-300))
    try:
        if _RESCALE:
            stages2 = model.make_stages(unit)
            runs.append(_chain_once(model, pairs, order, [], stages2, F_unit))
    except SolverError:
        pass
    best = None
    for run in runs:
        cert = _certify(dd, run["lam"], run["tau"])
        if best is None or cert.value < best[0].value:
            best = (cert, run)
    run = best[1]
    stages = model.stages if run is first else model.make_stages(unit)
    G = _glue(stages, run["Ys"], model)
    return _Relaxation(run["value"], G, run["F"] / model.F_bound, run["lam"], run["tau"], run["status"],
                       run["solver"], "chain", max(len(st.base) for st in stages), len(stages),
                       time.perf_counter() - t0)


def _glue(stages: list[_Stage], Ys: list[np.ndarray], model: _Model) -> np.ndarray:
    """Realise the chain's blocks as one set of vectors (orthogonal Procrustes on the shared vectors) and
    return their Gram matrix in the scaled gradient basis.  Any exact gluing is a valid completion."""
    factors: list = [None] * len(Ys)
    for d in {Yk.shape[0] for Yk in Ys}:                # one batched eigensolve per block size
        idx = [k for k, Yk in enumerate(Ys) if Yk.shape[0] == d]
        stack = np.array([Ys[k] for k in idx])
        W, V = np.linalg.eigh(0.5 * (stack + np.swapaxes(stack, 1, 2)))
        for k, w, v in zip(idx, W, V):
            keep = w > _RANK_RTOL * max(float(w[-1]), 1e-300)
            factors[k] = v[:, keep] * np.sqrt(w[keep])
    D = max(1, sum(f.shape[1] for f in factors))
    vec: dict = {}                                     # symbol -> realised unscaled vector in R^D
    for st, Fk in zip(stages, factors):
        local = {s: c @ Fk for s, c in st.coef.items()}   # in the block's own coordinates (R^rank)
        shared = [s for s in st.coef if s in vec]
        if not shared:
            local = {s: np.concatenate([v, np.zeros(D - v.size)]) for s, v in local.items()}
        else:
            P = np.array([vec[s] for s in shared])
            Q = np.array([local[s] for s in shared])
            U_, _, Vt = np.linalg.svd(Q.T @ P, full_matrices=False)
            Rm = U_ @ Vt                                # orthonormal rows: an isometry, Q Rm ~ P
            local = {s: v @ Rm for s, v in local.items()}
        for s, v in local.items():
            vec.setdefault(s, v)
    Z = np.array([vec[b] / model.bound[b] for b in model.basis])       # scaled basis vectors
    return Z @ Z.T


# =================================================================================== certificate
@dataclass
class _Certificate:
    value: float                # certified upper bound (internal units, L = 1)
    tau: float
    lam: np.ndarray
    min_eig: float              # smallest eigenvalue of the normalised dual matrix
    eq_residual: float          # max |residual| of the value equations before the repair


def _certify(dd: _Dual, lam: np.ndarray, tau: float, units: np.ndarray | None = None) -> _Certificate:
    """Verify (and repair outward) a dual certificate in float64.

    Every feasible point of the *full* PEP (every function of the class) has ``G_pp <= a_p^2`` and
    ``|Fh_i| <= 1`` in the scaled basis (``a = dd.apriori``, 1 by default), so weak duality gives
    ``perf = <C, G> + c.Fh <= tau + eps sum_p a_p^2 + sum |r_i|`` where ``-eps`` bounds the smallest
    eigenvalue of ``S`` (rounding included) and ``r`` is the residual of the value equations.  When every
    value is nonnegative on the class (``dd.nonneg``: the momentum PEP, whose scaling is not an a-priori
    bound), the multipliers of the pairs with the optimum are raised until ``E lam - c >= 0`` holds exactly,
    and ``-(E lam - c) . F <= 0`` needs no bound on the values (``docs/theory/pep.md §4``).

    ``units`` (optional, e.g. the sizes of the basis vectors in the solver's worst case): the PSD test is
    also done on ``D S D`` with ``D = diag(units)`` rounded to powers of two (an exact congruence, so the
    same matrix is tested, with rounding error bounds that scale with ``D``: much smaller margins when the
    a-priori scaling is loose, as at long horizons).  A failing test there falls back on
    ``tr(D^-1 G D^-1) <= sum_p a_p^2/d_p^2``.  With a-priori bounds ``a`` (finite), the test is also done
    in the a-priori scaled basis ``D = diag(a)``.  The smallest certified value is kept.
    """
    n, m = dd.n, len(dd.pairs)
    lam = np.where(np.isfinite(lam), np.maximum(lam, 0.0), 0.0).astype(np.float64)
    tau = max(float(tau), 0.0) if math.isfinite(tau) else 0.0
    lam, eq0 = dd.repair_flow(lam)
    if dd.nonneg:
        lam = dd.dominate(lam)
    r = dd.E @ lam - dd.c
    S0 = dd.S0(lam)
    if not np.isfinite(S0).all():
        return _Certificate(math.inf, tau, lam, -math.inf, eq0)
    # rounding: forming S (sums of 3m products, in any order, each of a 3-term product) and the symmetric
    # eigensolver (backward stable); the value equations: row i sums nnz_i products (adding exact zeros is
    # exact)
    S0abs = dd.S0abs(lam)
    aE = np.abs(dd.E)
    nnz = np.count_nonzero(dd.E, axis=1)
    r_err = (nnz + 4) * _EPS * (aE @ lam + np.abs(dd.c))
    if dd.nonneg:
        # perf <= tau - (E lam - c) . F with F >= 0: no term when E lam - c >= 0 exactly (computed value
        # above its rounding bound); otherwise no bound on F is known
        res_term = 0.0 if bool(np.all(r >= r_err)) else math.inf
    else:
        res_term = float(np.sum(np.abs(r))) + float(np.sum(r_err))
    P = list(dd.init)
    apriori = np.ones(n) if dd.apriori is None else np.asarray(dd.apriori, dtype=np.float64)
    scalings = [np.ones(n)]
    if units is not None and np.all(np.isfinite(units)) and np.all(units > 0):
        d = 2.0 ** np.round(np.log2(np.asarray(units, dtype=np.float64)))
        d[P] = 1.0
        if not np.all(d == 1.0):
            scalings.append(d)
    if dd.apriori is not None and np.all(np.isfinite(apriori)) and float(np.max(apriori)) < 1e100:
        # the a-priori scaling itself (where the scaled basis is not one): the fallback's weight is then ~ n
        d = 2.0 ** np.round(np.log2(np.maximum(apriori, 1e-100)))
        d[P] = 1.0
        scalings.append(d)
    best = None
    for d in scalings:
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            Sd = S0 * np.outer(d, d)
        if not np.isfinite(Sd).all():
            continue
        form_err = (3 * m + 16) * _EPS * float(np.linalg.norm(S0abs * np.outer(d, d)))
        with np.errstate(over="ignore", invalid="ignore"):
            weight = float(np.sum(apriori ** 2 / d ** 2))  # bound on tr(D^-1 G D^-1) (inf: none known)
        cert = _tau_search(Sd, form_err, P, tau, weight, res_term, lam, eq0)
        if best is None or cert.value < best.value:
            best = cert
    return best


def _units(model: _Model, G: np.ndarray) -> np.ndarray:
    """Sizes of the scaled basis vectors in a worst case (floored), for the rescaled PSD test."""
    g = np.sqrt(np.maximum(np.diag(G), 0.0))
    d = np.maximum(g, _UNIT_FLOOR * max(float(np.max(g)), 1e-300))
    d[list(model.init)] = 1.0
    return d


def _tau_search(S0: np.ndarray, form_err: float, P: list, tau: float, weight: float, res_term: float,
                lam: np.ndarray, eq0: float) -> _Certificate:
    """The smallest certified value over candidate multipliers ``t`` of the initial condition for the dual
    matrix ``S0 + t sum_{p in P} e_p e_p^T`` (see :func:`_certify`)."""
    n = S0.shape[0]
    # candidates for tau: the solver's; the smallest one making S PSD for these multipliers (Schur complement
    # on the initial vectors, when the rest of S is definite); and that one plus a margin covering the
    # rounding errors, so that S is PSD with room to spare
    candidates = [tau]
    Rr = [i for i in range(n) if i not in P]
    if Rr:                     # (always: the initial vectors and at least one gradient)
        w, V = np.linalg.eigh(S0[np.ix_(Rr, Rr)])
        if w[0] > 0:
            sv = S0[np.ix_(Rr, P)]
            u = V @ ((V.T @ sv) / w[:, None])
            schur = S0[np.ix_(P, P)] - sv.T @ u
            t_min = max(-float(np.linalg.eigvalsh(0.5 * (schur + schur.T))[0]), 0.0)
            zz = 1.0 + float(np.linalg.norm(u, 2)) ** 2
            big = float(np.max(np.abs(np.diag(S0)[P])))
            pad0 = form_err + 4 * (n + 1) * _EPS * (float(np.max(np.abs(w))) + t_min + big)
            # the margin candidate first: when it passes, no other candidate can be much better
            candidates = [t_min + 4.0 * pad0 * zz, t_min + 64.0 * pad0 * zz, t_min, tau]
    best = None
    for t in candidates:
        S = S0.copy()
        S[P, P] += t
        w_all = np.linalg.eigvalsh(S)
        lmin = float(w_all[0])
        pad = form_err + 4 * (n + 1) * _EPS * (float(np.max(np.abs(w_all))) + t)
        if lmin >= pad:
            value = t + res_term                                    # S is PSD despite the rounding
        else:
            value = t + weight * (pad - lmin) + res_term             # lambda_min(S) >= lmin - pad
        value = float(np.nextafter(value * (1.0 + 4 * _EPS), math.inf))
        if best is None or value < best.value:
            best = _Certificate(value, t, lam, lmin, eq0)
        if lmin >= pad:        # candidates come in increasing order of the value they can certify
            break
    return best


def _ineq_values(model: _Model, G: np.ndarray, Fh: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Every interpolation inequality at ``(G, Fh)`` (scaled basis): per function, the matrix ``V[i, j]``
    (inequality ``(i, j)`` reads ``V[i, j] <= 0``; ``-inf`` on the diagonal) and the size of its terms."""
    parts = []
    F = Fh * model.F_bound
    for fi, fn in enumerate(model.funcs):
        X, Gr = fn.X, fn.Gr
        XX = X @ G @ X.T
        XG = X @ G @ Gr.T                   # <x_a, g_b>
        GG = Gr @ G @ Gr.T
        fv = np.where(fn.Fidx >= 0, F[np.maximum(fn.Fidx, 0)], 0.0)
        dXX, dXG, dGG = np.diag(XX), np.diag(XG), np.diag(GG)
        dx2 = np.maximum(dXX[:, None] + dXX[None, :] - 2 * XX, 0.0)
        dg2 = np.maximum(dGG[:, None] + dGG[None, :] - 2 * GG, 0.0)
        gdx = XG - dXG[None, :]                                   # <g_j, x_i - x_j>
        cross = dXG[:, None] + dXG[None, :] - XG - XG.T            # <g_i - g_j, x_i - x_j>
        V = fv[None, :] - fv[:, None] + gdx + fn.c1 * dg2 + fn.c2 * dx2 + fn.c3 * cross
        scale = (np.abs(fv)[None, :] + np.abs(fv)[:, None]
                 + np.sqrt(np.maximum(dGG, 0))[None, :] * np.sqrt(dx2) + fn.c1 * dg2 + fn.c2 * dx2
                 + abs(fn.c3) * np.sqrt(dg2 * dx2) + 1e-300)
        np.fill_diagonal(scale, 0.0)
        np.fill_diagonal(V, -np.inf)
        parts.append((fi, V, scale))
    return parts


def _violations(model: _Model, G: np.ndarray, Fh: np.ndarray, ref: float) -> list[tuple[float, Pair]]:
    """Violation of every interpolation inequality at a worst case (scaled basis), largest first, relative
    to the terms of the inequality plus ``ref`` (the worst-case value)."""
    floor = max(abs(ref), 1e-300)
    out = []
    for fi, V, scale in _ineq_values(model, G, Fh):
        rel = V / (scale + floor)
        ii, jj = np.nonzero(rel > 0)
        out += [(float(rel[i, j]), (fi, int(i), int(j))) for i, j in zip(ii, jj)]
    out.sort(reverse=True)
    return out


#: Curvatures (relative position in [mu, L] for f; absolute for h) of the quadratics mixed into the interior
#: point used to repair a solver's worst case (spread so that every pair of points is well separated).
_INTERIOR_CURVATURES = ((0.02, 0.05), (0.1, 2.0), (0.3, 0.2), (0.5371, 0.5), (0.75, 1.0), (0.93, 0.1),
                        (0.99, 5.0))


def _quadratic_point(model: _Model) -> tuple[np.ndarray, np.ndarray] | None:
    """A strictly feasible point of the full PEP: the direct sum of 1-D realisations in which ``f`` is a
    quadratic ``(c/2) x^2`` with ``c`` strictly between ``mu`` and ``L`` and ``h`` is ``(c_h/2) x^2``
    (``c_h > 0``), ``x_0 = 1/sqrt(K)`` in each of the ``K`` coordinates and ``x_* = 0``.

    Every interpolation inequality between two distinct points then holds with a strict margin
    (``docs/theory/pep.md §3``).  Returns the Gram matrix and the scaled values, or None when a linear
    system that realises the algorithm on these quadratics is singular.
    """
    n = model.n
    K = len(_INTERIOR_CURVATURES)
    G = np.zeros((n, n))
    Fh = np.zeros(model.nF)
    for rel_f, c_h in _INTERIOR_CURVATURES:
        rows, rhs, cs = [], [], []
        e0 = np.zeros(n)
        p0 = model.init[0]
        e0[p0] = model.beta[p0]             # first initial vector = beta_p0 * (scaled basis vector p0) = 1
        rows.append(e0)
        rhs.append(1.0)
        for fn in model.funcs:
            if fn.name == "h":
                c = c_h
            else:                           # smooth: c1 = 1/(2(1-q)), c2 = q c1
                q = fn.c2 / fn.c1 if fn.c1 > 0 else 0.0
                c = q + (1.0 - q) * rel_f
            cs.append(c)
            for p in range(0 if np.any(fn.Gr[0]) else 1, len(fn.labels)):   # the optimum too when its
                rows.append(fn.Gr[p] - c * fn.X[p])                            # (sub)gradient is a symbol
                rhs.append(0.0)
        A, bvec = np.array(rows), np.array(rhs)
        if A.shape[0] < n:
            return None
        if A.shape[0] == n:
            try:
                z, rank = np.linalg.solve(A, bvec), n
            except np.linalg.LinAlgError:
                return None
        else:
            z, _, rank, _ = np.linalg.lstsq(A, bvec, rcond=None)
        resid = float(np.max(np.abs(A @ z - bvec))) if np.all(np.isfinite(z)) else math.inf
        if rank < n or resid > 1e-9 * (1 + float(np.max(np.abs(z)))):
            return None
        G += np.outer(z, z) / K
        for fn, c in zip(model.funcs, cs):
            for p in range(1, len(fn.labels)):
                x = float(fn.X[p] @ z)
                Fh[fn.Fidx[p]] += 0.5 * c * x * x / model.F_bound[fn.Fidx[p]] / K
    return G, Fh


def _best_values(model: _Model, G: np.ndarray) -> np.ndarray | None:
    """The largest scaled values ``Fh`` (per function, with ``F_* = 0``) satisfying every interpolation
    inequality for the Gram matrix ``G``, or None when there are none.

    For fixed ``G`` the inequalities are difference constraints ``f_j <= f_i - Q_ij``; their largest solution
    is the shortest-path distance from the optimum (Bellman-Ford, vectorised), and there is no solution
    exactly when the graph has a negative cycle.
    """
    Fh = np.zeros(model.nF)
    zero = np.zeros(model.nF)
    for fi, Vm, _ in _ineq_values(model, G, zero):
        fn = model.funcs[fi]
        W = -Vm                                  # with F = 0, V_ij = Q_ij; edge i -> j of weight -Q_ij
        k = W.shape[0]
        np.fill_diagonal(W, 0.0)
        d = W[0].copy()
        d[0] = 0.0
        # converged when no value moves by more than the rounding of the sums (a cycle of weight ~ -eps
        # from rounding would otherwise decrease forever)
        wmax = float(np.max(np.abs(W)))
        for _ in range(k + 1):
            nd = np.minimum(d, np.min(d[:, None] + W, axis=0))
            if np.all(d - nd <= 64 * _EPS * (np.abs(d) + wmax)):
                d = nd
                break
            d = nd
        else:
            return None
        if d[0] < 0:
            return None
        for p in range(1, k):
            Fh[fn.Fidx[p]] = d[p] / model.F_bound[fn.Fidx[p]]
    return Fh


def _feasible_lower(model: _Model, G: np.ndarray, Fh: np.ndarray) -> tuple[float, float]:
    """The value of a point of the *full* PEP built from a solver's worst case (scaled basis), a lower bound.

    ``G`` is projected onto the PSD cone and scaled to ``G_00 <= 1`` (every constraint is homogeneous); the
    values are replaced by the largest ones satisfying every interpolation inequality for that ``G``
    (:func:`_best_values`).  When there are none (a violation that involves ``G`` itself), ``G`` is mixed
    with the Gram matrix of the strictly feasible quadratic point (:func:`_quadratic_point`) with weight
    ``theta`` (the PEP is convex), the smallest that works to a factor 1.5 (geometric scan, bisection).
    The value is attained by a function of the class (interpolation theorem), up to float64 rounding.
    Returns ``(value, theta)``; ``(-inf, nan)`` when no repair is found.
    """
    w, V = np.linalg.eigh(0.5 * (G + G.T))
    G = (V * np.maximum(w, 0.0)) @ V.T
    g0 = float(sum(G[p, p] for p in model.init))
    if g0 > 1.0:
        G = G / g0

    def perf(Gm: np.ndarray, F: np.ndarray) -> float:
        return float(np.sum(model.C * Gm) + model.c @ F)

    F = _best_values(model, G)
    if F is not None:
        return perf(G, F), 0.0
    quad = _quadratic_point(model)
    if quad is None:
        return -math.inf, math.nan
    G0 = quad[0]

    def attempt(th: float):
        Gt = (1.0 - th) * G + th * G0
        F = _best_values(model, Gt)
        return None if F is None else perf(Gt, F)

    # the smallest weight that works, to a factor of 1.5: a geometric scan, then bisection (in log scale)
    lo, hi, val = 0.0, None, None
    for th in [10.0 ** e for e in range(-9, 1)]:
        v = attempt(min(th, 1.0))
        if v is not None:
            hi, val = min(th, 1.0), v
            break
        lo = th
    if hi is None:
        return -math.inf, math.nan
    while lo > 0 and hi / lo > 1.5:
        mid = math.sqrt(lo * hi)
        v = attempt(mid)
        if v is None:
            lo = mid
        else:
            hi, val = mid, v
    return val, hi


# ================================================================================ lower bound
def _quadratic_lower(steps: np.ndarray, q: float, metric: str,
                     betas: np.ndarray | None = None) -> tuple[float, float]:
    """``max_{c in [q, 1]} of prod (1 - s_k c)^2 (distance) or (c/2) prod (1 - s_k c)^2 (objective)``
    over a grid plus local refinement (L = 1); every evaluated curvature is attained by f = (c/2) x^2, h = 0.

    Returns ``(value, curvature)``, the value rounded down.
    """
    def perf(c: np.ndarray) -> np.ndarray:
        c = np.atleast_1d(c).astype(np.float64)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            if betas is None:
                log = np.sum(np.log(np.abs(1.0 - np.outer(c, steps))), axis=1) * 2.0
                v = np.exp(log)
            else:               # momentum: the linear recursion itself
                v = _momentum_quadratic_xN(steps, betas, c) ** 2
            v = np.where(np.isnan(v), 0.0, v)
        return v * (c / 2.0) if metric == "objective" else v

    grid = np.unique(np.concatenate([np.linspace(q, 1.0, 4001), [q, 1.0],
                                     np.clip(1.0 / steps, q, 1.0)]))
    vals = perf(grid)
    k = int(np.argmax(vals))
    best_c, best = float(grid[k]), float(vals[k])
    # golden-section refinement between the neighbouring grid points
    lo, hi = float(grid[max(k - 1, 0)]), float(grid[min(k + 1, len(grid) - 1)])
    gr = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    for _ in range(60):
        c1, c2 = b - gr * (b - a), a + gr * (b - a)
        if perf(c1)[0] >= perf(c2)[0]:
            b = c2
        else:
            a = c1
    cm = 0.5 * (a + b)
    vm = float(perf(cm)[0])
    if vm > best:
        best_c, best = cm, vm
    best *= 1.0 - 4.0 * (len(steps) + 4) * _EPS
    return (best if math.isfinite(best) else float(np.finfo(np.float64).max)), best_c


# ===================================================================================== validation
#: largest step (in units of 1/L) the PEP accepts; larger ones overflow the SDP's float64 data
MAX_STEP = 1e3


def _validate(steps, L, mu, method, metric) -> tuple[np.ndarray, float, float, str, str]:
    if isinstance(method, str) and method.lower() in ALL_METHODS:
        method = method.lower()
    else:
        raise InvalidInputError(f"method must be one of {ALL_METHODS} ('gd': gradient descent, 'prox_grad': "
                                f"proximal gradient, 'momentum_*': the same with a momentum schedule, "
                                f"'admm': ADMM with per-step penalties rho_k = L / steps[k]); got "
                                f"{method!r}.")
    if isinstance(metric, str) and metric.lower() in METRICS:
        metric = metric.lower()
    else:
        raise InvalidInputError(f"metric must be one of {METRICS} ('objective': f(x_N) - f*, 'distance': "
                                f"||x_N - x*||^2); got {metric!r}.")
    steps = _schedule(steps, "steps", "a sequence of step sizes (in units of 1/L), e.g. [1.0] * N")
    if steps.size == 0:
        raise InvalidInputError("steps is empty; pass at least one step size (in units of 1/L).")
    if np.any(steps <= 0):
        k = int(np.flatnonzero(steps <= 0)[0])
        raise InvalidInputError(f"steps must be positive (gamma_k = steps[k] / L > 0); steps[{k}] = "
                                f"{steps[k]}. A zero step leaves the iterate unchanged: drop it.")
    if np.any(steps > MAX_STEP):
        k = int(np.flatnonzero(steps > MAX_STEP)[0])
        raise InvalidInputError(f"steps[{k}] = {steps[k]:g} (in units of 1/L) is above {MAX_STEP:g}: the PEP's data "
                                "grow like the square of the steps, and beyond this the SDP cannot be solved or "
                                "certified in float64. A step above 2/L already makes gradient descent expansive; "
                                "pass steps in units of 1/L (gamma_k * L).")
    L = check_scalar(L, "L", low=0.0, low_inclusive=False)
    mu = check_scalar(mu, "mu", low=0.0)
    if mu > L:
        raise InvalidInputError(f"mu must satisfy 0 <= mu <= L (mu-strongly convex and L-smooth); got "
                                f"mu={mu} > L={L}.")
    if mu == L and method != "gd":
        raise InvalidInputError(f"mu == L (f a pure quadratic) is supported for method='gd' only; for "
                                f"{method!r} pass mu < L.")
    return steps.copy(), L, mu, method, metric


def _schedule(value, name: str, what: str) -> np.ndarray:
    """A per-step schedule as a finite 1-D float array; a bare scalar is refused with ``what`` as the fix."""
    if np.isscalar(value) and not isinstance(value, (str, bytes)):
        raise InvalidInputError(f"{name} must be {what}; got the scalar {value!r}.")
    return as_float_array(value, name, ndim=1)


def _validate_momentum(momentum, method: str, N: int) -> np.ndarray | None:
    if method not in MOMENTUM_METHODS:
        if momentum is not None:
            raise InvalidInputError(f"momentum is only used by the methods {MOMENTUM_METHODS}; got method="
                                    f"{method!r} with a momentum schedule (pass method='momentum_gd' or "
                                    f"'momentum_prox_grad', or drop momentum).")
        return None
    if momentum is None:
        raise InvalidInputError(f"method={method!r} needs momentum=[beta_1, ..., beta_N] (one coefficient "
                                f"per step, N = len(steps) = {N}).")
    betas = _schedule(momentum, "momentum", f"a sequence of N = {N} coefficients ([beta] * N for a constant one)")
    if betas.size != N:
        raise InvalidInputError(f"momentum must have one coefficient per step: len(momentum) = {betas.size} "
                                f"but len(steps) = {N}.")
    return betas.copy()


_QUANTITY = {
    ("gd", "objective"): "worst-case f(x_N) - f* of gradient descent",
    ("gd", "distance"): "worst-case ||x_N - x*||^2 of gradient descent",
    ("prox_grad", "objective"): "worst-case F(x_N) - F* (F = f + h) of proximal gradient",
    ("prox_grad", "distance"): "worst-case ||x_N - x*||^2 of proximal gradient",
    ("momentum_gd", "objective"): "worst-case f(x_N) - f* of gradient descent with momentum",
    ("momentum_gd", "distance"): "worst-case ||x_N - x*||^2 of gradient descent with momentum",
    ("momentum_prox_grad", "objective"):
        "worst-case F(x_N) - F* (F = f + h) of proximal gradient with momentum",
    ("momentum_prox_grad", "distance"): "worst-case ||x_N - x*||^2 of proximal gradient with momentum",
    ("admm", "objective"): "worst-case F(z_N) - F* (F = f + g) of ADMM with per-step penalties",
    ("admm", "distance"): "worst-case ||z_N - x*||^2 of ADMM with per-step penalties",
}


def _quantity(method: str, metric: str, N: int, L: float, mu: float) -> str:
    cls = f"f {L:g}-smooth, {mu:g}-strongly convex" + (", h closed convex" if "prox" in method else "")
    if method == "admm":
        cls = f"f {L:g}-smooth, {mu:g}-strongly convex, g closed convex"
        return (f"{_QUANTITY[(method, metric)]} after {N} steps over {{{cls}}}, u_0 = 0, "
                f"||z0 - x*||^2 + ||u0 - u*||^2 <= 1 (u* = b*/rho_1)")
    return f"{_QUANTITY[(method, metric)]} after {N} steps over {{{cls}}}, ||x0 - x*||^2 <= 1"


# ================================================================================== the solve loop
#: Relative violation above which a non-chosen inequality is added in the next round of generation.
_ADD_FLOOR = 1e-9
#: Largest Gram dimension for the repaired (attained) worst case (Bellman-Ford and the interior point cost
#: O(n^3) and the repair weakens at long horizons; beyond it exactness rests on the violation check alone).
_ATTAINED_MAX_DIM = 400
#: Largest relative interpolation violation of a solver's worst case accepted as "satisfied" for exactness.
_VIOL_TOL = 1e-6
#: Widest band of the momentum chain (pairs within this many iterations in one block; blocks of size
#: 2 + (band + 1) per function), and the relative violation of a non-local pair that widens it.
_MAX_BAND = 4
_WIDEN_VIOLATION = 1e-4
#: Relative excess of a feasible (attained) worst case over the certified value that flags a broken solve.
_CONTRADICTION = 1e-7


@dataclass
class _Outcome:
    value: float                # certified upper bound (user units)
    certified: bool
    checks: dict
    reasons: list
    witness: dict
    res: _Relaxation


def _solve_certified(model: _Model, *, order: list[str], strategy: str, tol: float, repair_rtol: float,
                     max_rounds: int, max_dense_dim: int, lower: float, c_low: float, scale: float, L: float,
                     verbose: bool) -> _Outcome:
    """Constraint generation (or the full PEP), the float64 certificate and the exactness check.

    Exactness (``docs/theory/pep.md §3``): each round's worst case is repaired into a point of the *full*
    PEP (:func:`_feasible_lower`), whose value is attained by a function of the class; the result is called
    exact when the certified value is within ``tol`` (relative) of that attained value, otherwise violated
    inequalities are added and the SDP is solved again.
    """
    all_pairs = model.all_pairs()
    pairs = all_pairs if strategy == "full" else model.local_pairs()
    attempts: list[SolverAttempt] = []
    best = None
    exact, viol_max, rounds, dense_skipped, exhausted = False, math.nan, 0, False, False
    prev, failed, checks_source, how, sol = None, "", "solver", "", math.nan
    feas = {"value": -math.inf, "theta": math.nan}
    viol_tol = _VIOL_TOL
    widened = 0
    for rounds in range(1, max_rounds + 1):
        chain = strategy == "generate" and all(model.stage_of(p) is not None for p in pairs)
        try:
            if chain:
                res = _solve_chain(model, pairs, order, attempts)
                dd = _dual_data(model, pairs)
                cert = _certify(dd, res.lam, res.tau, _units(model, res.G))
            else:                      # twice, the second time in the units of the first worst case
                dd = _dual_data(model, pairs)
                res = _solve_dense(model, pairs, order, attempts, hint=prev)
                cert = _certify(dd, res.lam, res.tau, _units(model, res.G))
                try:
                    res2 = _solve_dense(model, pairs, order, [], hint=res)
                    cert2 = _certify(dd, res2.lam, res2.tau, _units(model, res2.G))
                    if cert2.value < cert.value:
                        res, cert = res2, cert2
                except SolverError:
                    pass
        except SolverError as exc:
            if best is None:
                raise
            failed = str(exc)          # keep the certified bound of the previous rounds
            rounds -= 1
            break
        prev = res
        chosen = set(pairs)
        allv = _violations(model, res.G, res.Fh, res.value)
        viol = [(v, p) for v, p in allv if p not in chosen]
        viol_max = allv[0][0] if allv else 0.0
        if best is None or cert.value <= best["cert"].value:     # every round's value is a valid bound
            best = {"cert": cert, "res": res, "pairs": list(pairs)}
        top = best["cert"].value
        sol = float(np.sum(model.C * res.G) + model.c @ res.Fh)
        sgap = (top - sol) / max(abs(top), 1e-300)
        bad = [(v, p) for v, p in viol if v > _ADD_FLOOR]
        if verbose:
            logger.info("PEP round %d (%s): %d inequalities, value %.12g (solver %.12g), %d violated "
                        "(max %.2e), %.2f s", rounds, res.form, len(pairs), cert.value, res.value, len(bad),
                        viol_max, res.seconds)
        if viol_max <= viol_tol and sgap <= tol:
            exact, how = True, "violation"
            break
        fv, theta = (_feasible_lower(model, res.G, res.Fh)       # every round's repaired value is attained
                     if model.n <= _ATTAINED_MAX_DIM else (-math.inf, math.nan))
        if fv > feas["value"]:
            feas = {"value": fv, "theta": theta, "res": res}
        gap = (top - feas["value"]) / max(abs(top), 1e-300)
        if gap <= tol:
            exact, how = True, "attained"
            break
        if top <= lower * (1 + tol):
            # the certified value is attained (to tol) by the 1-D quadratic: exact, stop here
            exact, how = True, "quadratic"
            feas = {"value": lower, "theta": 0.0}
            checks_source = "quadratic"
            break
        if not bad:
            exhausted = True
            break
        cap = max(8, 2 * (len(model.funcs[0].labels)))
        if (model.n > max_dense_dim and model.stage_maker is not None and model.band < _MAX_BAND
                and bad[0][0] > _WIDEN_VIOLATION):
            # too large for the dense form: widen the band of the chain instead (docs/theory/pep.md §4)
            model.widen(min(2 * model.band, _MAX_BAND))
            widened = model.band
            pairs = pairs + [p for _, p in bad if model.pair_span(p) <= model.band][:cap]
            continue
        if model.n > max_dense_dim:
            dense_skipped = True
            break
        pairs = pairs + [p for _, p in bad[:cap]]
    cert, res, used_pairs = best["cert"], best["res"], best["pairs"]
    primal = lower if how == "quadratic" else sol if viol_max <= viol_tol else None
    if not math.isfinite(feas["value"]) and model.n <= _ATTAINED_MAX_DIM:   # once, for the last worst case
        fv, theta = _feasible_lower(model, prev.G, prev.Fh)
        feas = {"value": fv, "theta": theta}
    attained = feas["value"] if math.isfinite(feas["value"]) else None
    value = cert.value * scale
    lower_s = lower * scale
    repair = cert.value - cert.tau
    rel_repair = max(repair, 0.0) / cert.value if cert.value > 0 else 0.0
    checks: dict[str, Any] = {
        "gram_dim": model.n, "n_constraints": len(used_pairs), "n_constraints_full": len(all_pairs),
        "strategy": strategy, "form": res.form, "rounds": rounds, "exact": exact, "exact_tol": tol,
        "max_violation": float(viol_max), "primal_value": None if primal is None else primal * scale,
        "primal_source": checks_source, "exact_by": how,
        "attained_value": None if attained is None else attained * scale,
        "attained_repair_weight": feas["theta"],
        "violation_tol": viol_tol,
        "solver_value": res.value * scale, "tau": cert.tau * scale, "min_eig_dual": cert.min_eig,
        "equality_residual": cert.eq_residual, "repair": repair * scale, "relative_repair": rel_repair,
        "quadratic_lower_bound": lower_s, "quadratic_curvature": c_low * L, "max_block": res.max_block,
        "n_blocks": res.n_blocks, "solve_seconds": res.seconds,
    }
    if model.stage_maker is not None:
        checks["band"] = model.band          # pairs within this many iterations are local (chain)
        checks["band_widened"] = bool(widened)
    certified, reasons = True, []
    checks["accurate_certificate"] = bool(rel_repair <= repair_rtol)
    if not math.isfinite(value):
        certified = False
        reasons.append("the dual certificate is not finite")
    elif rel_repair > repair_rtol:
        logger.info("worst_case: the dual certificate needed an outward repair of %.3g (relative %.3g > "
                    "repair_rtol=%g): the value is valid but may be loose", repair * scale, rel_repair,
                    repair_rtol)
    lower_ok = bool(value >= lower_s)
    checks["lower_bound_ok"] = lower_ok
    if not lower_ok:
        certified = False
        reasons.append(f"the value {value:.10g} is below the attained 1-D quadratic lower bound "
                       f"{lower_s:.10g}: the solve is wrong")
    if primal is not None:
        checks["relative_gap"] = (cert.value - primal) / max(abs(cert.value), 1e-300)
    if attained is not None:
        gap = (cert.value - attained) / max(abs(cert.value), 1e-300)
        checks["attained_relative_gap"] = gap
        if gap < -_CONTRADICTION:
            certified = False
            reasons.append(f"the worst case found by the solver, repaired into the class (value "
                           f"{attained * scale:.10g}), exceeds the certified upper bound {value:.10g}: the "
                           f"solve is wrong")
    if not exact:
        why = (f"the next round needs the dense formulation (Gram dimension {model.n} > max_dense_dim="
               f"{max_dense_dim})" if dense_skipped else
               f"the solve of the next round failed: {failed}" if failed else
               "no violated inequality is left to add" if exhausted else
               f"max_rounds={max_rounds} reached")
        att = "none" if attained is None else f"{attained * scale:.10g}"
        checks["exact_reason"] = (f"constraint generation stopped after {rounds} round(s) ({why}); the best "
                                  f"worst case repaired into the class attains {att}, more than tol={tol:g} "
                                  f"(relative) below the certified value {value:.10g}, and the solver's "
                                  f"worst case violates an interpolation inequality by {viol_max:.3g} (relative; "
                                  f"accepted up to {viol_tol:g}): the value is a certified upper bound, "
                                  f"possibly not tight")
    multipliers = {model.pair_name(p): float(cert.lam[k]) for k, p in enumerate(used_pairs)
                   if cert.lam[k] > 0}
    D = model.beta
    witness = {"multipliers": multipliers, "tau": cert.tau * scale,
               "basis": [f"{a}{k}" for a, k in model.basis], "gram": D[:, None] * res.G * D[None, :],
               "values": dict(zip(model.F_labels, (res.Fh * model.F_bound * scale).tolist())),
               "solver_attempts": [str(a) for a in attempts]}
    return _Outcome(value, certified, checks, reasons, witness, res)


# ======================================================================================= public
def quadratic_lower_bound(steps: Sequence[float], L: float = 1.0, mu: float = 0.0, method: str = "gd",
                          metric: str = "objective", momentum: Sequence[float] | None = None) -> Bound:
    r"""Worst case over the 1-D quadratics of the class: an attained lower bound on :func:`worst_case`.

    Problem
        :math:`f(x) = (c/2) x^2` with :math:`c \in [\mu, L]` (and :math:`h = 0` for proximal gradient) is in
        the class, :math:`x_0 = 1`, so :math:`x_N = \prod_k (1 - \gamma_k c)` (with ``momentum``: the
        linear recursion :math:`x_k = (1 - \gamma_k c)(x_{k-1} + \beta_k (x_{k-1} - x_{k-2}))`).  The value is
        :math:`\max_c \prod_k (1 - \gamma_k c)^2` (``distance``) or
        :math:`\max_c (c/2) \prod_k (1 - \gamma_k c)^2` (``objective``), maximised over a grid of ``c``
        (endpoints, every :math:`1/\gamma_k`, 4001 points) with a golden-section refinement.
    Guarantee
        Lower bound, attained by the returned curvature (``witness``); rounded down.  For :math:`c = L` it is
        :math:`\prod_k |1 - \gamma_k L|^2`, which stays large for learned schedules with
        :math:`\gamma_k L > 2`.
    """
    steps, L, mu, method, metric = _validate(steps, L, mu, method, metric)
    betas = _validate_momentum(momentum, method, len(steps))
    val, c = _quadratic_lower(steps, mu / L, metric, betas)
    scale = L if metric == "objective" else 1.0
    return Bound(value=val * scale * (1 - 4 * _EPS), side="lower", certified=True, method="quadratic_1d",
                 quantity=_quantity(method, metric, len(steps), L, mu),
                 witness={"curvature": c * L, "function": f"f(x) = ({c * L:.6g}/2) x^2, h = 0, x0 = 1"})


def check_nested_classes(inner: Bound, outer: Bound, rtol: float = 1e-6, atol: float = 1e-12) -> dict:
    r"""Class-inclusion monotonicity: a smaller function class cannot have a larger worst case.

    ``inner`` and ``outer`` are :func:`worst_case` results for the same method, metric and absolute steps
    :math:`\gamma_k = s_k / L`, with :math:`\mu_{inner} \ge \mu_{outer}` and :math:`L_{inner} \le L_{outer}`
    (so the inner class is contained in the outer one).  Both are upper bounds; when they are tight, the
    inner value must not exceed the outer one.

    Returns
    -------
    dict
        ``consistent`` (bool: ``inner.value <= outer.value * (1 + rtol) + atol``), ``excess``
        (``inner.value - outer.value``), ``best_inner`` (``min`` of the two values: a valid upper bound for
        the inner class when both are certified).

    Raises
    ------
    InvalidInputError
        The two results do not describe nested classes of the same problem.
    """
    wi, wo = getattr(inner, "witness", None), getattr(outer, "witness", None)
    if not (isinstance(wi, dict) and isinstance(wo, dict) and "problem" in wi and "problem" in wo):
        raise InvalidInputError("inner and outer must be Bounds returned by worst_case (their witness holds "
                                "the problem description).")
    pi, po = wi["problem"], wo["problem"]
    if (pi["method"], pi["metric"]) != (po["method"], po["metric"]):
        raise InvalidInputError(f"inner and outer must have the same method and metric; got {pi['method']}/"
                                f"{pi['metric']} and {po['method']}/{po['metric']}.")
    gi = np.asarray(pi["steps"]) / pi["L"]
    go = np.asarray(po["steps"]) / po["L"]
    if gi.shape != go.shape or not np.allclose(gi, go, rtol=1e-12, atol=0):
        raise InvalidInputError("inner and outer must use the same absolute steps gamma_k = steps[k] / L.")
    if not (pi["mu"] >= po["mu"] and pi["L"] <= po["L"]):
        raise InvalidInputError(f"the inner class must be contained in the outer one (mu_inner >= mu_outer "
                                f"and L_inner <= L_outer); got inner (mu={pi['mu']}, L={pi['L']}), outer "
                                f"(mu={po['mu']}, L={po['L']}).")
    excess = inner.value - outer.value
    consistent = bool(inner.value <= outer.value * (1 + rtol) + atol)
    best = min(inner.value, outer.value) if (inner.certified and outer.certified) else inner.value
    return {"consistent": consistent, "excess": float(excess), "best_inner": float(best)}


def worst_case(steps: Sequence[float] | Any, L: float | None = None, mu: float | None = None,
               method: str | None = None, metric: str = "objective", solver: str | list[str] | None = None, *,
               strategy: str = "generate", nested: bool = True, tol: float = 1e-5, repair_rtol: float = 1e-6,
               max_rounds: int = 30, max_dense_dim: int | None = None, verbose: bool = False,
               momentum: Sequence[float] | None = None, lam: float | None = None,
               tie_rtol: float = 1e-6, A: Any = None, structure_rtol: float = 1e-5) -> Bound:
    r"""Exact worst-case performance of a step-size schedule, certified by performance estimation (PEP).

    Problem
        ``method="gd"``: :math:`x_{k+1} = x_k - \gamma_k \nabla f(x_k)`, ``f`` L-smooth and
        :math:`\mu`-strongly convex.  ``method="prox_grad"``:
        :math:`x_{k+1} = \operatorname{prox}_{\gamma_k h}(x_k - \gamma_k \nabla f(x_k))` for
        :math:`F = f + h`, ``f`` as before, ``h`` closed convex (ISTA is ``h = lam ||.||_1``).  Steps are in
        units of 1/L: :math:`\gamma_k = \mathrm{steps}[k] / L`; any positive schedule is allowed, including
        learned ones with :math:`\gamma_k L \ge 2` (the worst case is then large, and finite).
        Initial condition :math:`\|x_0 - x_\star\|^2 \le 1`.
        ``metric="objective"``: :math:`f(x_N) - f_\star` (``gd``) or :math:`F(x_N) - F_\star`
        (``prox_grad``); ``metric="distance"``: :math:`\|x_N - x_\star\|^2` (the *squared* distance).
        ``method="momentum_gd"`` / ``"momentum_prox_grad"`` with ``momentum=[beta_1, ..., beta_N]``:
        :math:`v_k = x_{k-1} + \beta_k (x_{k-1} - x_{k-2})`, :math:`x_{-1} = x_0`, then the (proximal)
        gradient step from :math:`v_k` (``docs/theory/pep.md §4``; FISTA is one schedule).
        ``method="admm"``: :class:`~unfoldtheory.models.UnfoldedADMM`'s recursion with penalties
        :math:`\rho_k = L/\mathrm{steps}[k]`, :math:`u_0 = 0`, initial condition
        :math:`\|z_0 - x_\star\|^2 + \|u_0 - u_\star\|^2 \le 1` with :math:`u_\star = b_\star/\rho_1`,
        metric on :math:`z_N` (``docs/theory/pep.md §5``).
        ``steps`` may also be a zoo model (``ISTA``, ``LearnedStepISTA``, ``UnfoldedFISTA``, ``UnfoldedADMM``):
        the method, schedule, ``L = ||A||^2`` and ``mu = lambda_min(A^T A)`` are read from it, and untied
        thresholds raise :class:`~unfoldtheory.errors.NotRepresentableError` (``docs/theory/pep.md §6``).
        Any other network (your own torch module, with ``A=``) is read from its analysis form: its layers
        must be (momentum) proximal gradient steps on ``A`` (``docs/theory/pep.md §8``).
    Algorithm
        The Gram-matrix SDP with the smooth strongly convex interpolation conditions of Taylor, Hendrickx
        & Glineur (Math. Program. 2017, Thm. 4) (convex interpolation for ``h``) in the minimal basis
        (``x_0``, gradients, subgradients), solved with cvxpy (Clarabel; SCS as fallback).
        ``strategy="generate"`` (default): constraint generation starting from the inequalities between
        consecutive points and with the optimum, solved as a chain of 5 x 5 PSD blocks (twice: the second
        time in the units of the first worst case); the glued worst case is checked against every
        interpolation inequality and violated ones are added (those rounds use the dense formulation, up
        to ``max_dense_dim``).  ``strategy="full"``: every inequality at once, one dense PSD matrix (the
        plain PEP, as PEPit builds it).  See :mod:`unfoldtheory.convergence._pep`.
    Guarantee
        ``side="upper"``.  The value comes from the solver's multipliers, re-verified and repaired outward
        in float64 (value equations repaired exactly, the multiplier of the initial condition recomputed by
        a Schur complement, the smallest eigenvalue of the dual matrix checked with rounding error bounds,
        weak duality with a-priori norm bounds), so it is a valid upper bound whenever ``certified`` is
        True.  It is the exact worst case (the PEP is tight: Drori & Teboulle 2014; Taylor et al. 2017) up
        to the solver accuracy when ``checks["exact"]`` is True: the solver's worst case satisfies every
        interpolation inequality to ``tol``, and ``checks["relative_gap"]`` compares its value with the
        certified one.  Every solve also checks

        * ``quadratic_lower_bound``: the attained 1-D quadratic worst case (:func:`quadratic_lower_bound`),
          which must not exceed the value (otherwise ``certified=False``);
        * the worst case found by the solver must not exceed the certified value (otherwise
          ``certified=False``: a broken solve);
        * ``nested`` (``mu > 0`` and ``nested=True``): the same schedule over the larger class ``mu = 0``;
          a smaller class cannot have a larger worst case, so an excess flags an inexact solve (recorded in
          ``checks["nested_consistent"]``, and the smaller of the two certified values is returned).

    Parameters
    ----------
    steps : sequence of float, or a zoo model
        Positive step sizes in units of 1/L (``N = len(steps)``; for ``admm``, ``L / rho_k``), or a model to
        read the schedule from.
    L, mu : float, optional
        Smoothness and strong-convexity constants, ``L > 0``, ``0 <= mu <= L`` (``mu == L`` only for
        ``gd``, where the class is the quadratics ``(L/2)||x - x*||^2`` and the closed form is returned).
        Defaults 1 and 0; for a model, its own constants (an override must define a larger class).
    method : {"gd", "prox_grad", "momentum_gd", "momentum_prox_grad", "admm"}, optional
        Default ``"gd"``; for a model, the method it runs.
    metric : {"objective", "distance"}
    solver : str or list of str, optional
        cvxpy solver(s) to try in order; default ``("CLARABEL", "SCS")``.
    strategy : {"generate", "full"}
    nested : bool
        Also solve the ``mu = 0`` problem when ``mu > 0`` (class-inclusion check; doubles the cost).
    tol : float
        Exactness tolerance (relative): ``checks["exact"]`` is True when the certified value is within
        ``tol`` of a worst case that satisfies *every* interpolation inequality, either exactly (the
        solver's worst case repaired into the class, ``checks["attained_value"]``) or up to the stated
        relative violation ``checks["violation_tol"]`` (``1e-6``); otherwise constraint generation goes on
        (``docs/theory/pep.md §3``).
    repair_rtol : float
        Relative outward repair of the dual certificate above which ``checks["accurate_certificate"]`` is
        False (the value stays a valid upper bound, possibly loose).
    max_rounds : int
        Maximum rounds of constraint generation.
    max_dense_dim : int, optional
        Largest Gram dimension for which constraint generation continues with the dense formulation
        once non-local inequalities are needed; beyond it the (certified) value of the last round is
        returned with ``checks["exact"] = False`` and the reason in ``checks["exact_reason"]``.  Default
        64, and 40 for the momentum methods (about 19 steps), whose dense rounds carry every pair of the
        ``N`` points and cost minutes each near dimension 64 (``docs/theory/pep.md §4``).
    verbose : bool
        Log each round at INFO level.
    momentum : sequence of float, optional
        ``[beta_1, ..., beta_N]`` for the momentum methods (required there, refused elsewhere).
    lam : float, optional
        With a model: the l1 weight of the LASSO (default: the model's).
    tie_rtol : float
        With a model: relative tolerance of the threshold tie ``theta_k = gamma_k lam`` (``lam / rho_k``).
    A : array_like, optional
        With a model that is not one of the four zoo classes (a plain torch module, another zoo model, a
        :class:`~unfoldtheory.form.Form`): the measurement matrix of its LASSO (default ``model.A``); the
        schedule is read from the analysis form (:func:`~unfoldtheory.convergence.schedule_of_form`,
        ``docs/theory/pep.md §8``).
    structure_rtol : float
        With such a model: relative tolerance of the match between its layers and the method's.

    Returns
    -------
    Bound
        ``value`` (upper bound), ``certified``, ``solver``, ``status``, ``checks`` (``min_eig_dual``,
        ``repair``, ``quadratic_lower_bound``, ``exact``, ``max_violation``, ``rounds``, ...), ``witness``
        (``problem``, ``multipliers`` keyed by ``(function, i, j)``, ``tau``, ``gram`` and ``values`` of the
        worst case, ``basis``).

    Raises
    ------
    InvalidInputError
        ``L <= 0``, ``mu < 0`` or ``mu > L``, empty / non-finite / non-positive ``steps``, unknown
        ``method``, ``metric``, ``strategy`` or ``solver``, a missing / misplaced / mis-sized ``momentum``.
    NotRepresentableError
        A model whose thresholds are not tied to its schedule, or of a kind without a schedule.
    SolverError
        Every solver failed.

    References
    ----------
    Drori & Teboulle, "Performance of first-order methods for smooth convex minimization: a novel
    approach", Math. Program. 145 (2014).  Taylor, Hendrickx & Glineur, "Smooth strongly convex
    interpolation and exact worst-case performance of first-order methods", Math. Program. 161 (2017), and
    "Exact worst-case convergence rates of the proximal gradient method for composite convex
    minimization", JOTA 178 (2018).
    """
    from ._schedules import is_model

    if is_model(steps):
        return _worst_case_of_model(steps, L=L, mu=mu, method=method, metric=metric, momentum=momentum,
                                    lam=lam, tie_rtol=tie_rtol, A=A, structure_rtol=structure_rtol,
                                    solver=solver, strategy=strategy,
                                    nested=nested, tol=tol, repair_rtol=repair_rtol, max_rounds=max_rounds,
                                    max_dense_dim=max_dense_dim, verbose=verbose)
    if lam is not None or A is not None:
        raise InvalidInputError(f"{'lam' if lam is not None else 'A'} is only used when worst_case reads the "
                                f"schedule from a model; got a schedule of steps.")
    L = 1.0 if L is None else L
    mu = 0.0 if mu is None else mu
    method = "gd" if method is None else method
    steps, L, mu, method, metric = _validate(steps, L, mu, method, metric)
    if strategy not in STRATEGIES:
        raise InvalidInputError(f"strategy must be one of {STRATEGIES}; got {strategy!r}.")
    tol = check_scalar(tol, "tol", low=0.0, low_inclusive=False)
    repair_rtol = check_scalar(repair_rtol, "repair_rtol", low=0.0)
    max_rounds = check_int(max_rounds, "max_rounds", minimum=1)
    if max_dense_dim is None:
        max_dense_dim = 40 if method.startswith("momentum") else 64
    max_dense_dim = check_int(max_dense_dim, "max_dense_dim", minimum=1)
    from ..reference._common import resolve_solvers

    order = resolve_solvers(solver, PEP_SOLVERS)
    t0 = time.perf_counter()
    N = len(steps)
    q = mu / L
    scale = L if metric == "objective" else 1.0
    betas = _validate_momentum(momentum, method, N)
    problem = {"steps": steps.tolist(), "L": L, "mu": mu, "method": method, "metric": metric}
    if betas is not None:
        problem["momentum"] = betas.tolist()
    quantity = _quantity(method, metric, N, L, mu)
    c_h = 0.0
    if method == "admm":
        lower, c_low, c_h = _admm_lower(steps, q, metric)
    else:
        lower, c_low = _quadratic_lower(steps, q, metric, betas)

    if mu == L:        # gd on the quadratics (L/2)||x - x*||^2: x_N - x* = prod(1 - s_k)(x_0 - x*)
        p2 = float(np.prod((1.0 - steps) ** 2))
        val = p2 / 2.0 if metric == "objective" else p2
        val = float(np.nextafter(val * (1 + 4 * (N + 2) * _EPS), math.inf)) * scale
        return Bound(value=val, side="upper", certified=True, method="pep", quantity=quantity,
                     solver="closed form", status="exact",
                     checks={"exact": True, "quadratic_lower_bound": lower * scale, "lower_bound_ok": True},
                     witness={"problem": problem}, seconds=time.perf_counter() - t0)

    if method == "admm":
        model = _build_admm_model(steps, q, metric)
    elif betas is None:
        model = _build_model(steps, q, method, metric)
    else:
        model = _build_momentum_model(steps, betas, q, method == "momentum_prox_grad", metric)
    out = _solve_certified(model, order=order, strategy=strategy, tol=tol, repair_rtol=repair_rtol,
                           max_rounds=max_rounds, max_dense_dim=max_dense_dim, lower=lower, c_low=c_low,
                           scale=scale, L=L, verbose=verbose)
    value, certified, checks, reasons, res = out.value, out.certified, out.checks, out.reasons, out.res
    if method == "admm":
        checks["quadratic_curvature_g"] = c_h * L
    if nested and mu > 0:
        outer = worst_case(steps, L=L, mu=0.0, method=method, metric=metric, solver=solver,
                           strategy=strategy, nested=False, tol=tol, repair_rtol=repair_rtol,
                           max_rounds=max_rounds, max_dense_dim=max_dense_dim, momentum=momentum)
        consistent = bool(value <= outer.value * (1 + 1e-6) + 1e-12 * scale)
        checks["nested_outer_value"] = outer.value
        checks["nested_consistent"] = consistent
        if not consistent:
            logger.warning("worst_case: the mu=%g worst case %.10g exceeds the mu=0 worst case %.10g of a "
                           "larger class: the mu>0 solve is not tight; using the smaller certified value.",
                           mu, value, outer.value)
            if outer.certified and outer.value < value:
                value = outer.value
                checks["nested_used_outer"] = True
    witness = {"problem": problem, **out.witness}
    return Bound(value=value, side="upper", certified=certified, method="pep", quantity=quantity,
                 solver=res.solver, status=res.status, checks=checks, reason="; ".join(reasons),
                 witness=witness, seconds=time.perf_counter() - t0)


def _worst_case_of_model(model: Any, *, L: float | None, mu: float | None, method: str | None, metric: str,
                         momentum: Any, lam: float | None, tie_rtol: float, A: Any = None,
                         structure_rtol: float = 1e-5, **kw: Any) -> Bound:
    """:func:`worst_case` of the schedule a zoo model runs (``docs/theory/pep.md §6``)."""
    import dataclasses

    from ._schedules import schedule_of

    if momentum is not None:
        raise InvalidInputError("momentum is read from the model; do not pass it together with a model.")
    sch = schedule_of(model, lam=lam, tie_rtol=tie_rtol, A=A, structure_rtol=structure_rtol)
    if method is not None and method != sch.method:
        raise InvalidInputError(f"{sch.model} runs method {sch.method!r}; got method={method!r}.")
    # a larger class than the model's own (L >= ||A||^2, mu <= lambda_min(A^T A)) is allowed: the worst case
    # of the same absolute steps over it is still an upper bound
    L_use, mu_use = sch.L, sch.mu
    if L is not None:
        L = check_scalar(L, "L", low=0.0, low_inclusive=False)
        if L < sch.L:
            raise InvalidInputError(f"L={L:g} is below the model's smoothness constant ||A||^2 = "
                                    f"{sch.L:.6g}; the certificate would be for a class that excludes the "
                                    f"model's problem.")
        L_use = L
    if mu is not None:
        mu = check_scalar(mu, "mu", low=0.0)
        if mu > sch.mu:
            raise InvalidInputError(f"mu={mu:g} exceeds the model's strong convexity lambda_min(A^T A) = "
                                    f"{sch.mu:.6g}; pass mu <= {sch.mu:.6g}.")
        mu_use = mu
    gamma = sch.steps / sch.L                  # absolute: gamma_k (prox-grad) or 1/rho_k (ADMM)
    b = worst_case(gamma * L_use, L=L_use, mu=mu_use, method=sch.method, metric=metric,
                   momentum=sch.momentum, **kw)
    witness = dict(b.witness or {})
    witness["schedule"] = sch.to_dict()
    return dataclasses.replace(b, witness=witness,
                               quantity=f"{b.quantity} [schedule of {sch.model}; {sch.initial_condition}]")
