r"""Greedy walk over adjacent activation regions (lower side, no MILP): scales to deep networks.

Two regions whose patterns differ in one neuron ``i`` are adjacent across the facet ``z_i = kink`` when that
constraint is a facet of the region: at a generic point of the facet only neuron ``i`` is at its kink, so the
pre-activations of every later neuron are continuous there and keep their pieces.  The walk
(``docs/theory/exact_lipschitz.md §6``) scores the neighbours across the ``candidates`` nearest kinks of the
current region (distance from the witness to the kink hyperplane, in ``y``) by the operator norm of their
Jacobian, computed from the pattern alone, and moves to the best-scoring one that is certified (an interior
point by LP, then the float64 checks of :func:`._exact.certify_witness`) and larger than the current value.
Every step is a certified region, so the value only increases and stays a true lower bound.
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
              tries: int = 4, log_: list | None = None, deadline: float | None = None) -> dict:
    """Greedy ascent over adjacent certified regions from ``best`` (a certified witness dict with ``y``,
    ``pattern``, ``value``), at most ``steps`` moves (``deadline``: a safety cap); returns the best certified
    region."""
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
