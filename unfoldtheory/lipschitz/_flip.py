r"""Greedy walk over adjacent activation regions (lower side, no MILP): scales to deep networks.

Two regions whose patterns differ in one neuron ``i`` are adjacent across the facet ``z_i = kink`` when that
constraint is a facet of the region: at a generic point of the facet only neuron ``i`` is at its kink, so the
pre-activations of every later neuron are continuous there and keep their pieces.  The walk
(``docs/theory/exact_lipschitz.md §6``) scores the neighbours across the ``candidates`` nearest kinks of the
current region (distance from the witness to the kink hyperplane, in ``y``) by the operator norm of their
Jacobian, computed from the pattern alone, and moves to the best-scoring one that is certified (an interior
point by LP, then the float64 checks of :func:`._exact.certify_witness`) and larger than the current value.
Every step is a certified region, so the value only increases and stays a true lower bound.

Beyond the greedy walk (``docs/theory/exact_lipschitz.md §11``): :func:`tabu_walk` also accepts moves that are
not larger (a tabu list of visited patterns keeps it from cycling) and :func:`line_jump` jumps over many
boundaries at once along lines through the witness; both report only certified regions.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..form import Form
from ._exact import Problem, certify_witness, op_norm, region_rows


def neighbours(prob: Problem, pattern: list, y: np.ndarray, candidates: int) -> list:
    """Patterns of the regions across the ``candidates`` kink hyperplanes nearest to ``y`` (one neuron moved
    to the adjacent piece), nearest first."""
    Z, _ = region_rows(prob, pattern)
    m = y.shape[0]
    z = Z[:, :m] @ y + Z[:, m]
    g = np.linalg.norm(Z[:, :m], axis=1)
    out = []
    for i, k in enumerate(pattern):
        if g[i] == 0.0:
            continue
        _, _, glo, ghi = prob.pieces[i][k]
        if math.isfinite(glo) and k > 0:
            out.append((abs(z[i] - glo) / g[i], i, k - 1))
        if math.isfinite(ghi) and k + 1 < len(prob.pieces[i]):
            out.append((abs(ghi - z[i]) / g[i], i, k + 1))
    out.sort(key=lambda e: e[0])
    pats = []
    for _, i, k in out[:candidates]:
        p = list(pattern)
        p[i] = k
        pats.append(p)
    return pats


def flip_walk(form: Form, prob: Problem, best: dict, norm: str, steps: int, candidates: int = 64,
              tries: int = 4, log_: list | None = None, deadline: float | None = None, patience: int = 0) -> dict:
    """Ascent over adjacent certified regions from ``best`` (a certified witness dict with ``y``,
    ``pattern``, ``value``), at most ``steps`` moves (``deadline``: a safety cap); returns the best certified
    region.  ``patience=0``: greedy (stop at a region none of whose ``tries`` best-scoring neighbours is
    larger); ``patience > 0``: :func:`tabu_walk`."""
    if patience > 0:
        return tabu_walk(form, prob, best, norm, steps, candidates, max(tries, 16), patience, log_, deadline)
    for step in range(steps):
        if deadline is not None and time.perf_counter() > deadline:
            break
        pats = neighbours(prob, best["pattern"], np.asarray(best["y"], float), candidates)
        scored = sorted(((op_norm(region_rows(prob, p)[1], norm), p) for p in pats), key=lambda e: -e[0])
        moved = False
        for score, p in scored[:tries]:
            if score <= best["value"] * (1 + 1e-9):
                break
            wt = certify_witness(form, prob, p, norm)
            if wt is not None and wt["value"] > best["value"] * (1 + 1e-9):
                best, moved = wt, True
                break
        if log_ is not None:
            log_.append({"flip_step": step, "value": float(best["value"]), "moved": moved})
        if not moved:
            break
    return best


def tabu_walk(form: Form, prob: Problem, best: dict, norm: str, steps: int, candidates: int = 64,
              tries: int = 4, patience: int = 8, log_: list | None = None, deadline: float | None = None) -> dict:
    """Non-greedy walk over adjacent certified regions (``docs/theory/exact_lipschitz.md §11``): every move
    goes to the best-scoring neighbour whose pattern was not visited before (a tabu list of all visited and
    tried patterns) and that is certified, *even when it is not larger*, so the walk crosses the valleys
    between local maxima of the greedy walk; after ``patience`` moves in a row without a new best it goes
    back to the best region found and tries its remaining neighbours, and it stops when no unvisited
    neighbour of the best region is left or after ``steps`` moves.  Only certified regions are ever returned
    (the best of them), so the value is a true lower bound and never below the start's."""
    cur = best
    seen = {tuple(best["pattern"])}
    since = 0
    for step in range(steps):
        if deadline is not None and time.perf_counter() > deadline:
            break
        pats = neighbours(prob, cur["pattern"], np.asarray(cur["y"], float), candidates)
        pats = [p for p in pats if tuple(p) not in seen]
        scored = sorted(((op_norm(region_rows(prob, p)[1], norm), p) for p in pats), key=lambda e: -e[0])
        nxt = None
        for _, p in scored[:tries]:
            seen.add(tuple(p))
            wt = certify_witness(form, prob, p, norm)
            if wt is not None:
                nxt = wt
                break
        if nxt is None:
            if cur is best:
                break
            cur, since = best, 0          # dead end: back to the best region, its untried neighbours
            continue
        cur = nxt
        improved = cur["value"] > best["value"] * (1 + 1e-9)
        if improved:
            best, since = cur, 0
        else:
            since += 1
            if since >= patience:
                cur, since = best, 0
        if log_ is not None:
            log_.append({"flip_step": step, "value": float(best["value"]), "moved": True,
                         "current": float(cur["value"]), "improved": improved})
    return best


def line_points(y: np.ndarray, J: np.ndarray, seed: int, directions: int = 8, steps: int = 22) -> np.ndarray:
    """Points on lines through ``y`` (``docs/theory/exact_lipschitz.md §11``): the ray ``t y`` for ``t``
    log-spaced in [1/10, 10] and evenly in [0.95, 1.05] (the pieces of soft thresholds depend on the scale of
    their input), and ``y +- s d`` for ``s`` log-spaced in [1e-6, 10] times ``1 + ||y||`` along the top right singular vectors of
    the region Jacobian ``J`` (at most 3) and random unit directions (``directions`` in all)."""
    rng = np.random.default_rng(seed)
    m = y.shape[0]
    _, _, Vt = np.linalg.svd(J)
    dirs = [Vt[i] for i in range(min(3, Vt.shape[0], directions))]
    while len(dirs) < directions:
        d = rng.standard_normal(m)
        dirs.append(d / np.linalg.norm(d))
    r = 1.0 + float(np.linalg.norm(y))
    s = r * np.logspace(-6, 1, steps)
    t = np.concatenate([np.logspace(-1, 1, 2 * steps), 1.0 + np.linspace(-0.05, 0.05, steps)])
    pts = [y[None, :] * t[:, None]]
    for d in dirs:
        pts.append(y[None, :] + s[:, None] * d[None, :])
        pts.append(y[None, :] - s[:, None] * d[None, :])
    return np.vstack(pts)


def line_jump(form: Form, prob: Problem, best: dict, norm: str, seed: int, tries: int = 4) -> dict | None:
    """A jump over many region boundaries at once: the Jacobian norms at :func:`line_points` through the
    witness, the ``tries`` largest above the current value certified as regions (:func:`._exact._certified_start`);
    returns the best certified region larger than ``best`` or None."""
    from ._exact import _certified_start, _jac_norms

    Y = line_points(np.asarray(best["y"], float), np.asarray(best["jacobian"], float), seed)
    vals = _jac_norms(form, Y, norm)
    out = None
    for i in np.argsort(-vals)[:tries]:
        if not vals[i] > best["value"] * (1 + 1e-9):
            break
        wt = _certified_start(form, prob, Y[i], norm, seed)
        if wt is not None and wt["value"] > max(best["value"], 0 if out is None else out["value"]) * (1 + 1e-9):
            out = wt
    return out
