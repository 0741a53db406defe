r"""Exact recognition of elementwise piecewise-linear activations (docs/your_model.md §3).

An elementwise expression built from one pre-activation :math:`z` with ``relu``, ``abs``, ``sign``, ``clamp``,
comparisons, ``where``, ``softshrink`` and affine operations is, coordinate by coordinate, a piecewise-linear
function :math:`f_i(z_i)` whose kinks lie in a finite set that the tracer computes while the expression is
built (:func:`roots`: the zeros of the argument of every kink-creating operation).  Between consecutive
candidate kinks :math:`f_i` is affine, so evaluating it at three interior points of every segment, at the
candidate kinks themselves and on both unbounded ends determines it completely: :func:`classify` checks
that it is continuous and piecewise linear there, merges segments of equal slope, and recognises

* a soft threshold :math:`f(z) = a\,\eta_t(z - c) + d` (slopes ``[a, 0, a]``),
* a ReLU :math:`f(z) = a\,\max(\pm(z - b), 0) + d` (slopes ``[0, a]`` or ``[a, 0]``),
* a leaky ReLU (slopes of one sign whose ratio lies in (0, 1)),
* a clip :math:`f(z) = a\,\mathrm{clip}(z, l, u) + d` (slopes ``[0, a, 0]``),
* an affine map (one slope: no activation at all);
* any other continuous piecewise-linear function (``abs``, a double threshold, ...) as its exact
  decomposition :math:`f(z) = f(b_1) + s_0 (z - b_1) + \sum_j (s_j - s_{j-1}) \max(z - b_j, 0)`: one ReLU
  per kink plus an affine part (exact, but a looser bound than a recognised soft threshold).

Every recognised coordinate is finally checked again by the end-to-end comparison of the extracted form
with the model (:func:`unfoldtheory.form.extract`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: kinds of a coordinate
AFFINE, SOFT, RELU, LEAKY, CLIP, GENERAL = "affine", "soft", "relu", "leaky", "clip", "general"


def roots(q, X: np.ndarray) -> np.ndarray:
    """Zeros of a function ``q`` that is affine between the sorted candidate kinks ``X`` (nb, d), per column.

    ``q`` maps points (P, d) to values (P, d).  Each segment (including the two unbounded ones) is probed at
    two interior points, so a jump of ``q`` at a kink does not hide a zero; a column without a zero in a
    segment repeats an existing kink (harmless).  Returns (nb + 1, d).
    """
    X = np.sort(X, axis=0)
    nb, d = X.shape
    h = 1.0 + np.abs(X).max(axis=0)
    left = np.stack([X[0] - 2 * h, X[0] - h])
    right = np.stack([X[-1] + h, X[-1] + 2 * h])
    L = X[1:] - X[:-1]
    inner = [X[:-1] + 0.25 * L, X[:-1] + 0.75 * L]
    P = np.concatenate([left, right] + inner, axis=0)
    V = q(P)
    out = []
    for (p0, p1), (lo, hi) in zip(
            [(0, 1), (2, 3)], [(np.full(d, -np.inf), X[0]), (X[-1], np.full(d, np.inf))]):
        out.append(_line_root(P[p0], P[p1], V[p0], V[p1], lo, hi, X[0]))
    s = nb - 1
    for i in range(s):
        a, b = 4 + i, 4 + s + i
        out.append(_line_root(P[a], P[b], V[a], V[b], X[i], X[i + 1], X[0]))
    return np.stack(out)


def _line_root(x0, x1, v0, v1, lo, hi, fallback):
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (v1 - v0) / (x1 - x0)
        r = x0 - v0 / slope
    ok = np.isfinite(r) & (r >= lo) & (r <= hi)
    return np.where(ok, r, fallback)


@dataclass
class Pieces:
    """Per-coordinate description ``f(z) = scale * act(p * z + q) + offset`` (arrays of shape (d,))."""

    kind: np.ndarray        # object array of kind names
    p: np.ndarray
    q: np.ndarray
    scale: np.ndarray
    offset: np.ndarray
    theta: np.ndarray       # soft threshold
    lower: np.ndarray       # clip
    upper: np.ndarray
    ratio: np.ndarray       # leaky relu negative slope
    bad: list               # [(coordinate, reason)] for coordinates that are not continuous piecewise linear
    general: dict           # {coordinate: (kinks, slope jumps)}: f = scale * z + offset + sum_j c_j relu(z - b_j)


def _snap(v: float, scale: float) -> float:
    for target in (0.0, 1.0, -1.0):
        if abs(v - target) <= 1e-12 * max(1.0, scale):
            return target
    return v


def classify(f, X: np.ndarray) -> Pieces:
    """Recognise ``f`` ((P, d) -> (P, d), elementwise) coordinate by coordinate; ``X`` (nb, d) holds the
    candidate kinks (a superset of the true ones)."""
    X = np.sort(np.concatenate([np.zeros((1, X.shape[1])), X], axis=0), axis=0)
    nb, d = X.shape
    h = 1.0 + np.abs(X).max(axis=0)
    L = X[1:] - X[:-1]
    fr = np.array([0.25, 0.5, 0.75])
    inner = (X[:-1][None] + fr[:, None, None] * L[None]).reshape(-1, d)
    outer = np.stack([X[0] - 2 * h, X[0] - h, X[0] - 0.5 * h, X[-1] + 0.5 * h, X[-1] + h, X[-1] + 2 * h])
    P = np.concatenate([X, outer, inner], axis=0)
    V = f(P)
    FX, VO, VI = V[:nb], V[nb:nb + 6], V[nb + 6:].reshape(3, nb - 1, d)
    with np.errstate(divide="ignore", invalid="ignore"):
        seg = (VI[2] - VI[0]) / (0.5 * L)                           # (nb-1, d)
        sL = (VO[1] - VO[0]) / h
        sR = (VO[5] - VO[4]) / h
    scale = np.abs(V).max(axis=0) + np.abs(P).max(axis=0) * np.nan_to_num(
        np.maximum(np.abs(np.concatenate([seg, sL[None], sR[None]])).max(axis=0), 0), nan=0.0)
    tol = 1e-9 * scale + 1e-300
    bad_mask = np.zeros(d, dtype=bool)
    why = {}
    live = L > 1e-13 * h                                              # non-degenerate segments
    # linearity inside segments and continuity at their ends
    mid_err = np.abs(VI[1] - 0.5 * (VI[0] + VI[2]))
    l_err = np.abs(VI[0] - 0.25 * L * seg - FX[:-1])
    r_err = np.abs(VI[2] + 0.25 * L * seg - FX[1:])
    nonlin = live & (mid_err > tol)
    jump = live & ((l_err > tol) | (r_err > tol))
    curved = (np.abs(VO[2] - (VO[1] + 0.5 * h * sL)) > tol) | (np.abs(VO[3] - (VO[4] - 0.5 * h * sR)) > tol)
    oL = np.abs(FX[0] - (VO[1] + h * sL)) > tol
    oR = np.abs(FX[-1] - (VO[4] - h * sR)) > tol
    for mask, reason in ((nonlin.any(axis=0) | curved, "not piecewise linear"),
                         (jump.any(axis=0) | oL | oR, "discontinuous")):
        for i in np.flatnonzero(mask & ~bad_mask):
            where = X[:, i]
            why[int(i)] = f"{reason} (near z = {where[np.argmin(np.abs(where))]:.4g} and its kinks " \
                          f"{np.unique(np.round(where, 6))[:6].tolist()})"
        bad_mask |= mask
    kinds = np.empty(d, dtype=object)
    p, q, sc, off = np.ones(d), np.zeros(d), np.ones(d), np.zeros(d)
    th, lo, hi, ra = np.zeros(d), np.zeros(d), np.zeros(d), np.zeros(d)
    bad = [(i, why[i]) for i in sorted(why)]
    general: dict = {}
    kinds[bad_mask] = None
    # vectorised fast path for the common shapes (affine; soft threshold), the loop below does the rest
    Sf = np.concatenate([sL[None], np.where(live, seg, np.nan), sR[None]], axis=0)      # (nb + 1, d)
    for j in range(1, nb + 1):
        Sf[j] = np.where(np.isnan(Sf[j]), Sf[j - 1], Sf[j])
    stol = 1e-9 * np.nan_to_num(np.abs(Sf), nan=0.0).max(axis=0) + 1e-300
    change = np.abs(Sf[1:] - Sf[:-1]) > stol                                              # kink at X[j]
    r = change.sum(axis=0)
    j1 = np.argmax(change, axis=0)
    j2 = nb - 1 - np.argmax(change[::-1], axis=0)
    cols = np.arange(d)
    smax = np.abs(Sf).max(axis=0)
    S0 = _snapv(Sf[0], smax)
    S1 = _snapv(Sf[j1 + 1, cols], smax)
    S2 = _snapv(Sf[j2 + 1, cols], smax)
    aff = ~bad_mask & (r == 0)
    soft = ~bad_mask & (r == 2) & (S1 == 0.0) & (S0 != 0.0) & (np.abs(S0 - S2) <= 1e-12 * np.abs(S0))
    kinds[aff] = AFFINE
    sc[aff] = S0[aff]
    off[aff] = _snapv(FX[0, aff] - S0[aff] * X[0, aff], scale[aff])
    b1, b2, f1 = X[j1, cols], X[j2, cols], FX[j1, cols]
    kinds[soft] = SOFT
    q[soft] = -_snapv(0.5 * (b1 + b2), scale)[soft]
    th[soft] = np.maximum(0.5 * (b2 - b1), 0.0)[soft]
    sc[soft] = S0[soft]
    off[soft] = _snapv(f1, scale)[soft]
    rest = np.flatnonzero(~bad_mask & ~aff & ~soft)
    for i in rest:
        xs, fs, sl = X[:, i], FX[:, i], seg[:, i]
        lv = live[:, i]
        # slopes between true kinks: walk the segments, dropping degenerate ones and merging equal slopes
        slopes, kinks, vals = [float(sL[i])], [], []
        stol = 1e-9 * max(abs(sL[i]), abs(sR[i]), np.abs(np.where(lv, sl, 0)).max(initial=0.0)) + 1e-300
        for j in range(nb):
            nxt = float(sR[i]) if j == nb - 1 else (float(sl[j]) if lv[j] else None)
            if nxt is not None and abs(nxt - slopes[-1]) > stol:
                kinks.append(float(xs[j]))
                vals.append(float(fs[j]))
                slopes.append(nxt)
        sc_i = float(scale[i])
        S = [_snap(s, max(abs(x) for x in slopes)) for s in slopes]
        r = len(kinks)
        if r == 0:
            kinds[i] = AFFINE
            sc[i] = S[0]
            off[i] = _snap(float(fs[0] - S[0] * xs[0]), sc_i)
            continue
        b1, f1 = kinks[0], vals[0]
        if r == 1 and S[0] == 0.0 and S[1] != 0.0:
            kinds[i], q[i], sc[i], off[i] = RELU, -b1, S[1], _snap(f1, sc_i)
        elif r == 1 and S[1] == 0.0 and S[0] != 0.0:
            kinds[i], p[i], q[i], sc[i], off[i] = RELU, -1.0, b1, -S[0], _snap(f1, sc_i)
        elif r == 1 and S[0] * S[1] > 0:
            if abs(S[0]) <= abs(S[1]):
                kinds[i], q[i], ra[i], sc[i] = LEAKY, -b1, S[0] / S[1], S[1]
            else:
                kinds[i], p[i], q[i], ra[i], sc[i] = LEAKY, -1.0, b1, S[1] / S[0], -S[0]
            off[i] = _snap(f1, sc_i)
        elif r == 2 and S[1] == 0.0 and S[0] != 0.0 and abs(S[0] - S[2]) <= 1e-12 * abs(S[0]):
            b2 = kinks[1]
            c = 0.5 * (b1 + b2)
            kinds[i], q[i], th[i], sc[i] = SOFT, -_snap(c, sc_i), max(0.5 * (b2 - b1), 0.0), S[0]
            off[i] = _snap(f1, sc_i)
        elif r == 2 and S[0] == 0.0 and S[2] == 0.0:
            kinds[i], lo[i], hi[i], sc[i] = CLIP, b1, kinks[1], S[1]
            off[i] = _snap(f1 - S[1] * b1, sc_i)
        else:   # any other continuous piecewise-linear function: affine part plus one ReLU per kink
            kinds[i] = GENERAL
            sc[i], off[i] = S[0], f1 - S[0] * b1
            general[i] = (list(kinks), [S[j + 1] - S[j] for j in range(r)])
    # soft thresholds are odd: a soft(pz + q, t) = soft(a(pz + q), |a| t)
    a = sc[soft]
    p[soft], q[soft], th[soft], sc[soft] = a * p[soft], a * q[soft], np.abs(a) * th[soft], 1.0
    _normalise(kinds, p, q, sc, th, lo, hi, rest)
    pieces = Pieces(kinds, p, q, sc, off, th, lo, hi, ra, bad, general)
    # the recognised function must reproduce f at every probe point (kinks, three points inside each segment,
    # both unbounded ends): a slope change below the merging tolerance cannot slip through unnoticed
    err = np.abs(evaluate(pieces, P) - V)
    off_by = (err > 1e-10 * scale + 1e-300).any(axis=0) & ~bad_mask
    for i in np.flatnonzero(off_by):
        kinds[i] = None
        bad.append((int(i), f"a piecewise-linear function whose kinks are too close to tell apart numerically "
                            f"(recognised form off by {err[:, i].max():.3g})"))
    return pieces


def evaluate(pc: Pieces, Z: np.ndarray) -> np.ndarray:
    """The recognised functions at points ``Z`` (P, d), coordinate by coordinate (NaN where unrecognised)."""
    out = np.full(Z.shape, np.nan)
    u = pc.p * Z + pc.q
    for kind, val in ((SOFT, np.sign(u) * np.maximum(np.abs(u) - pc.theta, 0.0)), (RELU, np.maximum(u, 0.0)),
                      (LEAKY, np.where(u > 0, u, pc.ratio * u)), (CLIP, np.clip(u, pc.lower, pc.upper))):
        cols = pc.kind == kind
        out[:, cols] = (pc.scale * val + pc.offset)[:, cols]
    for kind in (AFFINE, GENERAL):
        cols = pc.kind == kind
        out[:, cols] = (pc.scale * Z + pc.offset)[:, cols]
    for i, (kinks, jumps) in pc.general.items():
        out[:, i] += sum(c * np.maximum(Z[:, i] - b, 0.0) for b, c in zip(kinks, jumps))
    return out


def _snapv(v: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Vectorised :func:`_snap`."""
    v = np.array(v, dtype=float)
    tol = 1e-12 * np.maximum(1.0, ref)
    for target in (0.0, 1.0, -1.0):
        v = np.where(np.abs(v - target) <= tol, target, v)
    return v


def _normalise(kinds, p, q, sc, th, lo, hi, idx) -> None:
    r"""Move the output scale into the pre-activation (positive homogeneity), so that blocks carry their
    weights on the incoming edges like hand-written forms: :math:`a\,\eta_t(pz + q) = \mathrm{sign}(a)\,
    \eta_{|a|t}(|a|pz + |a|q) = \eta_{|a|t}(apz + aq)` (odd), the same for ReLU and leaky ReLU (with the sign
    kept outside), and :math:`a\,\mathrm{clip}(u, l, h) =
    \mathrm{clip}(au, \min(al, ah), \max(al, ah))`."""
    for i in idx:
        k, a = kinds[i], sc[i]
        if a == 0.0 or k not in (SOFT, RELU, LEAKY, CLIP):
            continue
        if k == CLIP:
            lo[i], hi[i] = min(a * lo[i], a * hi[i]), max(a * lo[i], a * hi[i])
            p[i], q[i], sc[i] = a * p[i], a * q[i], 1.0
            continue
        lam = abs(a)
        if k == SOFT:   # odd: a soft(u, t) = soft(a u, |a| t)
            p[i], q[i], sc[i], th[i] = a * p[i], a * q[i], 1.0, lam * th[i]
            continue
        p[i], q[i], sc[i] = lam * p[i], lam * q[i], 1.0 if a > 0 else -1.0
