r"""The relaxation floor: how low can a certificate that only knows per-neuron slope intervals go?

Every certificate of this package that reads a network through per-neuron slope intervals
:math:`\sigma_i' \in [\alpha_i, \beta_i]` (naive, LipSDP-Layer, LipSDP-Neuron and their domain / local versions,
where the intervals are narrowed by bound propagation) is a bound for *every* network with the same edges and
any slope-restricted activations, in particular for the linear networks :math:`w_i = D_i z_i` with a fixed
diagonal :math:`D \in \prod_i [\alpha_i, \beta_i]` (such an activation satisfies the incremental quadratic
constraint :math:`(\Delta w - \alpha\Delta z)(\beta\Delta z - \Delta w) = (D-\alpha)(\beta-D)\Delta z^2 \ge 0` of
LipSDP, Fazlyab et al. 2019, Lemma 1 / Theorem 2).  The Lipschitz constant of such a linear network is
:math:`\|J(D)\|_2`, so every such certificate is at least

.. math:: F = \max_{D \in \prod_i [\alpha_i, \beta_i]} \|J(D)\|_2 .

:math:`J(D)` is multi-affine in :math:`D` (each :math:`D_i` enters once along every path), so
:math:`\|J(D)\|_2` is convex in each :math:`D_i` separately and the maximum is attained at a vertex
:math:`D_i \in \{\alpha_i, \beta_i\}`.  Flipping neuron :math:`i` (block :math:`k`) by :math:`\delta` changes
the Jacobian by an exact rank-one term,

.. math:: J(D + \delta e_ie_i^T) = J(D) + \delta\, g_i h_i^T, \quad h_i^T = \partial z_i/\partial y, \quad
          g_i = \partial x/\partial w_i,

(both computed with the current :math:`D`; :math:`h_i` depends only on earlier blocks, :math:`g_i` only on later
ones).  The search (``docs/theory/relaxation_floor.md §3``) is a steepest ascent over single flips: every
flip is scored by the exact top singular value of :math:`J` restricted to :math:`\mathrm{span}\{v, h_i\}`
(:math:`v` the current top right singular vector; a lower bound on the flipped norm), the best ``candidates``
are evaluated exactly and the best strict improvement is taken; at a point where none of them improves, every
flip is evaluated exactly (when affordable), so a trajectory ends at a true local maximum over single flips.
Restarts: given start patterns (a region witness), the all-upper pattern, random vertex patterns and random
kicks of the best pattern so far.

The returned value is a rigorous lower bound on :math:`\|J(D^\star)\|_2` for the best vertex pattern found:
:math:`\|J v\|_2 / \|v\|_2` for the float top singular vector :math:`v`, evaluated by a forward pass in float64
with an a-priori rounding bound (``docs/theory/relaxation_floor.md §4``), rounded down.  It is therefore a
certified lower bound on :math:`F` and on every slope-interval certificate; it is *not* a bound on the
Lipschitz constant of the network (the vertex pattern need not be reachable from any input).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ..bounds import Bound
from ..errors import InvalidInputError
from ._net import Net

_U = np.finfo(np.float64).eps / 2

QUANTITY = ("lower bound on every slope-interval certificate (naive, LipSDP-Layer, LipSDP-Neuron and their "
            "domain versions), not on the Lipschitz constant: max over vertex slope patterns D of ||J(D)||_2")

#: exhaustive local-optimality check (every single flip evaluated exactly) only below this many flops
_EXHAUSTIVE_FLOPS = 3e9


def jacobians(net: Net, D: list) -> tuple[list, list, np.ndarray]:
    r"""For slopes ``D`` (per block): ``H[k] = dz_k/dy`` (n_k, m), ``G[k] = dx/dw_k`` (out, n_k) and the Jacobian
    ``J`` (out, m) of the linear network :math:`w = D z`."""
    nb = net.num_blocks
    H, W = [], []
    for k in range(nb):
        h = np.zeros((net.sizes[k], net.m)) if net.B[k] is None else net.B[k].copy()
        for j, M in net.inputs[k].items():
            h += M @ W[j]
        H.append(h)
        W.append(D[k][:, None] * h)
    J = np.zeros((net.out_dim, net.m)) if net.direct is None else net.direct.copy()
    for j, C in net.output.items():
        J += C @ W[j]
    G: list = [None] * nb
    readers = net.readers()
    for k in range(nb - 1, -1, -1):
        g = net.output[k].copy() if k in net.output else np.zeros((net.out_dim, net.sizes[k]))
        for r in readers[k]:
            g += (G[r] * D[r][None, :]) @ net.inputs[r][k]
        G[k] = g
    return H, G, J


def certified_norm(net: Net, D: list, v: np.ndarray) -> tuple[float, float]:
    r"""A rigorous lower bound on :math:`\|J(D)\|_2` from the test vector ``v``: ``(bound, float value)``.

    The forward pass :math:`z_k = \sum_j A_{kj} w_j + B_k v`, :math:`w_k = D_k z_k`, :math:`x = \sum_j C_j w_j`
    is evaluated in float64 with the a-priori bound :math:`|\mathrm{fl}(Mx) - Mx| \le \gamma_q |M||x|` per
    product (``q`` the inner length plus the number of summed terms), propagated through :math:`|A|`, :math:`|D|`
    and :math:`|C|` (``docs/theory/relaxation_floor.md §4``); then
    :math:`\|J v\| \ge \|\hat x\| - \|e\|` and the quotient by an upper bound of :math:`\|v\|` is rounded down.
    """
    v = np.asarray(v, dtype=np.float64)
    ws, es = [], []
    for k in range(net.num_blocks):
        z = np.zeros(net.sizes[k])
        mag = np.zeros(net.sizes[k])
        prop = np.zeros(net.sizes[k])
        q = 0
        if net.B[k] is not None:
            z += net.B[k] @ v
            mag += np.abs(net.B[k]) @ np.abs(v)
            q += net.m + 1
        for j, M in net.inputs[k].items():
            z += M @ ws[j]
            aM = np.abs(M)
            mag += aM @ np.abs(ws[j])
            prop += aM @ es[j]
            q += net.sizes[j] + 1
        gam = (q + 2) * _U / (1 - (q + 2) * _U)
        ez = (prop + gam * mag) * (1 + gam) + 1e-300 * (q > 0)
        w = D[k] * z
        ws.append(w)
        es.append((np.abs(D[k]) * ez + _U * np.abs(w)) * (1 + 4 * _U))
    x = np.zeros(net.out_dim)
    mag = np.zeros(net.out_dim)
    prop = np.zeros(net.out_dim)
    q = 0
    for j, C in net.output.items():
        x += C @ ws[j]
        aC = np.abs(C)
        mag += aC @ np.abs(ws[j])
        prop += aC @ es[j]
        q += net.sizes[j] + 1
    if net.direct is not None:
        x += net.direct @ v
        mag += np.abs(net.direct) @ np.abs(v)
        q += net.m + 1
    gam = (q + 2) * _U / (1 - (q + 2) * _U)
    ex = (prop + gam * mag) * (1 + gam)
    nx = float(np.linalg.norm(x))
    ne = float(np.linalg.norm(ex))
    nv = float(np.linalg.norm(v))
    if not (math.isfinite(nx) and math.isfinite(ne) and nv > 0):
        return 0.0, nx / nv if nv > 0 else 0.0
    go, gm = (net.out_dim + 2) * _U, (net.m + 2) * _U
    low = nx * (1 - go) - ne * (1 + go)
    if low <= 0:
        return 0.0, nx / nv
    val = low * (1 - 2 * _U) / (nv * (1 + gm) * (1 + 2 * _U))
    return float(np.nextafter(max(val, 0.0), -np.inf) if val > 0 else 0.0), nx / nv


def _top(J: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    if J.size == 0:
        return 0.0, np.zeros(J.shape[0]), np.zeros(J.shape[1])
    U, s, Vt = np.linalg.svd(J, full_matrices=False)
    return float(s[0]), U[:, 0], Vt[0]


def _flat(H: list, G: list) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate(H, axis=0), np.concatenate(G, axis=1)


def _candidates(alpha: np.ndarray, beta: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All single moves ``(neuron, new slope)`` to a vertex value other than the current slope."""
    free = alpha < beta
    idx, new = [], []
    for target in (alpha, beta):
        sel = free & (d != target)
        idx.append(np.flatnonzero(sel))
        new.append(target[sel])
    return np.concatenate(idx), np.concatenate(new)


def _subspace_scores(J, sigma, u, v, Hf, Gf, idx, delta) -> np.ndarray:
    r"""Top singular value of :math:`J + \delta g h^T` restricted to :math:`\mathrm{span}\{v, h\}` for every
    candidate (a lower bound on its norm), vectorised."""
    h = Hf[idx]                       # (c, m)
    g = Gf[:, idx]                    # (out, c)
    hv = h @ v                        # (c,)
    r = h - hv[:, None] * v[None, :]  # component of h orthogonal to v
    nr = np.linalg.norm(r, axis=1)
    safe = np.where(nr > 0, nr, 1.0)
    q2 = r / safe[:, None]
    hq = nr                           # h . q2 = |r|
    a1 = sigma * u[:, None] + (delta * hv)[None, :] * g      # J' v (out, c)
    a2 = J @ q2.T + (delta * hq)[None, :] * g                 # J' q2 (out, c)
    a2 = np.where(nr[None, :] > 0, a2, 0.0)
    p = np.einsum("ij,ij->j", a1, a1)
    s = np.einsum("ij,ij->j", a2, a2)
    t = np.einsum("ij,ij->j", a1, a2)
    lam = 0.5 * (p + s) + np.sqrt(np.maximum(0.25 * (p - s) ** 2 + t * t, 0.0))
    return np.sqrt(np.maximum(lam, 0.0))


def ascend(net: Net, d0: np.ndarray, moves: int, candidates: int, exhaustive: bool, deadline: float | None,
           log_: list) -> dict:
    """Steepest ascent over single vertex flips from the flat slope vector ``d0`` (module docstring)."""
    off = net.offsets()
    alpha = np.concatenate(net.alpha)
    beta = np.concatenate(net.beta)
    d = d0.astype(np.float64).copy()
    nmoves, evals = 0, 0
    local_max = False
    capped = False

    def split(x):
        return [x[off[k]:off[k + 1]] for k in range(net.num_blocks)]

    H, G, J = jacobians(net, split(d))
    sigma, u, v = _top(J)
    while True:
        idx, new = _candidates(alpha, beta, d)
        if idx.size == 0:
            local_max = True
            break
        if nmoves >= moves:
            break
        if deadline is not None and time.perf_counter() > deadline:
            capped = True
            break
        Hf, Gf = _flat(H, G)
        delta = new - d[idx]
        score = _subspace_scores(J, sigma, u, v, Hf, Gf, idx, delta)
        order = np.argsort(-score, kind="stable")
        best = (sigma, -1)
        tried = order[:candidates]
        for c in tried:
            Jc = J + delta[c] * np.outer(Gf[:, idx[c]], Hf[idx[c]])
            val = float(np.linalg.norm(Jc, 2))
            evals += 1
            if val > best[0]:
                best = (val, int(c))
        if best[1] < 0 and exhaustive:
            for c in order[candidates:]:
                Jc = J + delta[c] * np.outer(Gf[:, idx[c]], Hf[idx[c]])
                val = float(np.linalg.norm(Jc, 2))
                evals += 1
                if val > best[0]:
                    best = (val, int(c))
                    break
        if best[1] < 0 or best[0] <= sigma * (1 + 1e-12):
            local_max = exhaustive or len(order) <= candidates
            break
        c = best[1]
        d[idx[c]] = new[c]
        nmoves += 1
        H, G, J = jacobians(net, split(d))
        sigma, u, v = _top(J)
    log_.append({"moves": nmoves, "value_float": sigma, "local_max": local_max, "exact_evaluations": evals})
    return {"d": d, "value": sigma, "v": v, "moves": nmoves, "local_max": local_max, "capped": capped,
            "evaluations": evals}


def snap(net: Net, d: np.ndarray) -> np.ndarray:
    """Move every slope strictly inside its interval to the vertex with the larger norm (by convexity of
    :math:`\\|J(D)\\|` in each :math:`D_i` that vertex is at least as large)."""
    off = net.offsets()
    alpha = np.concatenate(net.alpha)
    beta = np.concatenate(net.beta)
    d = d.copy()
    for i in np.flatnonzero((d != alpha) & (d != beta)):
        vals = []
        for target in (alpha[i], beta[i]):
            d[i] = target
            J = jacobians(net, [d[off[k]:off[k + 1]] for k in range(net.num_blocks)])[2]
            vals.append(float(np.linalg.norm(J, 2)) if J.size else 0.0)
        d[i] = alpha[i] if vals[0] >= vals[1] else beta[i]
    return d


def start_slopes(form: Any, net: Net, start: Any) -> list:
    """Flat slope vectors from ``start``: a Bound with ``witness["pattern"]`` (piece indices of
    :func:`._exact.neuron_pieces`), a flat slope array (N,), or a list of these; validated against the box."""
    from ._exact import neuron_pieces

    if start is None:
        return []
    if isinstance(start, Bound):
        items = [start]
    elif isinstance(start, np.ndarray):
        items = list(start) if start.ndim == 2 else [start]
    elif isinstance(start, (list, tuple)):
        items = [start] if start and all(isinstance(s, (int, float, np.integer, np.floating))
                                         for s in start) else list(start)
    else:
        items = [start]
    N = net.num_neurons
    alpha = np.concatenate(net.alpha)
    beta = np.concatenate(net.beta)
    pieces = None
    out = []
    for s in items:
        if isinstance(s, Bound):
            pat = (s.witness or {}).get("pattern")
            if pat is None:
                raise InvalidInputError("start is a Bound without witness['pattern']; pass a region witness "
                                        "(region_search / exact) or slope vectors of length N.")
            pat = np.asarray(pat)
            if pieces is None:
                pieces = neuron_pieces(form)
            if pat.shape != (N,) or not np.issubdtype(pat.dtype, np.integer):
                raise InvalidInputError(f"start witness['pattern'] must hold {N} piece indices; got shape "
                                        f"{pat.shape}.")
            try:
                d = np.array([pieces[i][int(k)][0] for i, k in enumerate(pat)], dtype=np.float64)
            except IndexError:
                raise InvalidInputError("start witness['pattern'] has a piece index out of range for this "
                                        "network; pass the witness of this model's region search.") from None
        else:
            try:
                d = np.asarray(s, dtype=np.float64)
            except (TypeError, ValueError):
                raise InvalidInputError(f"start must be a Bound with witness['pattern'] or a slope vector of "
                                        f"length {N}; got {type(s).__name__}.") from None
            if d.shape != (N,):
                raise InvalidInputError(f"start slope vectors must have shape ({N},) (one slope per neuron); "
                                        f"got {d.shape}.")
            if not np.all(np.isfinite(d)):
                raise InvalidInputError("start slopes contain NaN/Inf; pass finite slopes.")
        bad = (d < alpha - 1e-12) | (d > beta + 1e-12)
        if np.any(bad):
            i = int(np.argmax(bad))
            raise InvalidInputError(
                f"start slope of neuron {i} ({d[i]:g}) lies outside its slope interval [{alpha[i]:g}, "
                f"{beta[i]:g}] (on a domain the intervals are narrowed: start from a region inside the domain, "
                "or drop domain=).")
        out.append(np.clip(d, alpha, beta))
    return out


def floor_impl(form: Any, net: Net, *, restarts: int, moves: int, candidates: int, seed: int, starts: list,
               time_limit: float | None, exhaustive: bool | None, extra: dict, quantity: str) -> Bound:
    t0 = time.perf_counter()
    deadline = None if time_limit is None else t0 + time_limit
    alpha = np.concatenate(net.alpha)
    beta = np.concatenate(net.beta)
    N = net.num_neurons
    free = alpha < beta
    out = max(net.out_dim, 1)
    if exhaustive is None:
        exhaustive = 2 * N * out * net.m * min(out, net.m) <= _EXHAUSTIVE_FLOPS
    rng = np.random.default_rng(seed)
    log_: list = []
    best = None
    total_moves = 0
    all_local = True
    capped = False
    plan = [(f"start {i}", d) for i, d in enumerate(starts)] + [("all-upper", beta.copy())]
    r = 0
    while r < restarts:
        if r < len(plan):
            name, d0 = plan[r]
        elif best is not None and r % 2 == 0:
            d0 = best["d"].copy()
            kick = free & (rng.random(N) < 0.05)
            d0[kick] = np.where(d0[kick] == beta[kick], alpha[kick], beta[kick])
            name = "kick of the best"
        else:
            p = rng.uniform(0.2, 0.9)
            d0 = np.where(rng.random(N) < p, beta, alpha)
            name = f"random (p_upper={p:.2f})"
        if r > 0 and deadline is not None and time.perf_counter() > deadline:  # the first one always runs
            capped = True
            break
        res = ascend(net, d0, moves, candidates, exhaustive, deadline, log_)
        log_[-1]["start"] = name
        total_moves += res["moves"]
        all_local = all_local and res["local_max"]
        capped = capped or res["capped"]
        if best is None or res["value"] > best["value"]:
            best = res
        r += 1
    d = snap(net, best["d"])
    off = net.offsets()
    D = [d[off[k]:off[k + 1]] for k in range(net.num_blocks)]
    _, _, J = jacobians(net, D)
    sigma, _, v = _top(J)
    value, value_float = certified_norm(net, D, v)
    upper = d == beta
    checks = {"moves": int(total_moves), "restarts": int(r), "trajectories": log_,
              "value_float": float(value_float), "local_max_every_trajectory": bool(all_local),
              "exhaustive_local_check": bool(exhaustive), "free_neurons": int(free.sum()),
              "upper_slopes": int(np.sum(upper & free)), **extra}
    status = ("every trajectory ended at a local maximum over single flips" if all_local
              else "the move budget ended some trajectory before a local maximum")
    if capped:
        status += "; stopped by the time_limit safety cap"
    vacuous = not value > 0
    return Bound(value=value, side="lower", certified=True, method="relaxation_floor",
                 vacuous=vacuous, vacuous_reason=("a lower bound of 0 says nothing (every J(D) found is 0, or its "
                                                  "rounding bound exceeds its norm)") if vacuous else "",
                 quantity=quantity,
                 solver="steepest ascent over vertex slope patterns (rank-one flips), float64 re-evaluation",
                 status=status, checks=checks,
                 witness={"slopes": d, "v": v, "upper": upper},
                 seconds=time.perf_counter() - t0, converged=bool(all_local and not capped))
