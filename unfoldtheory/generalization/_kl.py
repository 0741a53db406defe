r"""The Bernoulli KL divergence and its two inverses, computed to the safe side.

.. math:: \mathrm{kl}(q\,\|\,p) = q\log\frac qp + (1-q)\log\frac{1-q}{1-p},\qquad
          \mathrm{kl}^{-1}(q\,|\,c) = \sup\{p\in[0,1] : \mathrm{kl}(q\|p)\le c\},\qquad
          \mathrm{kl}^{-1}_{\mathrm{lo}}(q\,|\,c) = \inf\{p\in[0,1] : \mathrm{kl}(q\|p)\le c\}.

Every test-set and PAC-Bayes bound of this package ends with one of these inverses (Langford 2005,
"Tutorial on practical prediction theory for classification", JMLR 6, Thm 3.3; Maurer 2004; Sambharya &
Stellato 2024, arXiv 2404.13831).  The reference code of the latter solves the inverse with a conic solver and
can return a value *below* the true supremum (an unsound bound; docs/theory/generalization.md §4).

Numerics
--------
The divergence is evaluated without cancellation as a sum of two non-negative terms,

.. math:: \mathrm{kl}(q\|p) = q\,h\Big(\frac{p-q}{q}\Big) + (1-q)\,h\Big(\frac{q-p}{1-q}\Big),
          \qquad h(u) = u - \log(1+u) \ge 0,

(the linear parts :math:`\pm(p - q)` cancel exactly; the difference :math:`p - q` is formed once, never as
:math:`(1-p) - (1-q)` from rounded complements), with :math:`h` summed as
its power series for :math:`|u|\le 1/4` (no cancellation: for :math:`u<0` all terms are positive, for
:math:`u>0` the series alternates with decreasing terms).  The relative error of the computed value is a
few dozen units of roundoff.

The inverse is found by bisection on the IEEE-754 bit patterns of non-negative doubles (which are ordered
like the numbers), 64 halvings that end on two adjacent doubles.  The predicate is
:math:`\widehat{\mathrm{kl}}(q\|p) \ge c\,(1 + \eta)` with :math:`\eta = 10^{-12}`, far above the roundoff of
:math:`\widehat{\mathrm{kl}}`.  The upper inverse returns the end point where the predicate holds, hence
where the *true* :math:`\mathrm{kl}(q\|p) \ge c`; since kl is increasing in :math:`p` on :math:`[q, 1]`, that
point is :math:`\ge` the true supremum (safe side), and it exceeds it by at most the effect of the relative
change :math:`\eta` of :math:`c`, far below :math:`10^{-10}`.  The lower inverse is the mirror image.
Closed forms: :math:`\mathrm{kl}^{-1}(q|0) = q` (returned exactly), :math:`\mathrm{kl}^{-1}(0|c) =
1 - e^{-c}` (returned as ``-expm1(-c)`` moved two units in the last place outward), :math:`\mathrm{kl}^{-1}(1|c)
= 1`, and mirror images for the lower inverse.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import to_numpy
from ..errors import InvalidInputError

__all__ = ["kl_divergence", "kl_inverse", "kl_inverse_lower"]

_ETA = 1e-12
_SERIES_TERMS = 32
_SERIES_RADIUS = 0.25
#: below this budget the inverses use the closed-form refined-Pinsker bracket (see _inverse)
_TINY_C = 1e-200


def _h(u: np.ndarray) -> np.ndarray:
    """:math:`h(u) = u - \\log(1 + u)` for ``|u| <= 1/4`` by its power series, a few ulps relative."""
    us = np.asarray(u, dtype=np.float64)
    # h(u) = sum_{k>=2} (-1)^k u^k / k, Horner from the tail: the first omitted term is below 1e-19 u^2/2
    acc = np.zeros_like(us)
    for k in range(_SERIES_TERMS, 1, -1):
        acc = ((-1.0) ** k) / k + us * acc
    return us * us * acc


def _term(a: np.ndarray, d: np.ndarray, b: np.ndarray) -> np.ndarray:
    r""":math:`T = a\,h(d/a) = d - a\log(b/a)` for the pair (a, b = a + d), ``T = d`` when ``a = 0`` and
    ``+inf`` when ``b = 0 < a``.

    The difference ``d`` is passed directly (forming it as ``b - a`` from the rounded ``1 - p`` and ``1 - q``
    would cancel); for ``u = d/a`` in [-1/4, 1/4] the series of ``h`` is used, for ``u > 1/4``
    ``log1p(u)``, and for ``u < -1/4`` ``log(b/a)`` (where ``1 + u`` would cancel); outside the series range
    the subtraction loses at most a factor 10 (``h(u) >= |u|/10`` there)."""
    a, d, b = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (a, d, b)))
    out = np.empty(a.shape, dtype=np.float64)
    zero_a = a == 0
    out[zero_a] = d[zero_a]
    zero_b = (b <= 0) & ~zero_a
    out[zero_b] = np.inf
    rest = ~(zero_a | zero_b)
    ar, dr, br = a[rest], d[rest], b[rest]
    with np.errstate(over="ignore"):  # a subnormal a: u = inf, handled below
        u = dr / ar
    val = np.empty_like(u)
    r = _SERIES_RADIUS
    mid, up, low = np.abs(u) <= r, u > r, u < -r
    val[mid] = ar[mid] * _h(u[mid])
    huge = up & np.isinf(u)
    up = up & ~huge
    val[up] = dr[up] - ar[up] * np.log1p(u[up])
    # b/a overflows: a log(b/a) <= a (log b - log a) < 1.5e-305 b is far below the roundoff of d ~ b
    val[huge] = dr[huge] - ar[huge] * (np.log(br[huge]) - np.log(ar[huge]))
    val[low] = dr[low] - ar[low] * np.log(br[low] / ar[low])
    out[rest] = np.maximum(val, 0.0)
    return out


def _kl(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Unvalidated Bernoulli kl on float64 arrays with entries in [0, 1]."""
    d = p - q
    return _term(q, d, p) + _term(1.0 - q, -d, 1.0 - p)


def _numeric(value: Any, name: str, what: str) -> np.ndarray:
    raw = to_numpy(value)
    if raw.dtype.kind not in "biuf":
        raise InvalidInputError(f"{name} must be {what}; got {value!r} (a {raw.dtype.name} value, not a number).")
    return np.asarray(raw, dtype=np.float64)


def _broadcast(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    try:
        return np.broadcast_arrays(a, b)
    except ValueError:
        raise InvalidInputError(f"{name_a} (shape {a.shape}) and {name_b} (shape {b.shape}) must broadcast "
                                "against each other; pass a scalar for one of them or arrays of one shape.") from None


def _check_q(q: Any, name: str = "q") -> np.ndarray:
    try:
        arr = _numeric(q, name, "a real number or array in [0, 1]")
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a real number or array in [0, 1]; got {q!r}.") from None
    if np.isnan(arr).any():
        raise InvalidInputError(f"{name} contains NaN; pass probabilities in [0, 1] (an empirical risk).")
    if (arr < 0).any() or (arr > 1).any():
        bad = arr[(arr < 0) | (arr > 1)].ravel()[0]
        raise InvalidInputError(f"{name} must lie in [0, 1] (it is a probability); got a value {bad!r}. "
                                "Pass an empirical risk, i.e. a fraction of failed instances.")
    return arr


def _check_c(c: Any) -> np.ndarray:
    try:
        arr = _numeric(c, "c", "a real number or array >= 0")
    except (TypeError, ValueError):
        raise InvalidInputError(f"c must be a real number or array >= 0; got {c!r}.") from None
    if np.isnan(arr).any():
        raise InvalidInputError("c contains NaN; pass a non-negative budget such as log(2/delta)/N.")
    if (arr < 0).any():
        bad = arr[arr < 0].ravel()[0]
        raise InvalidInputError(f"c must be >= 0 (a KL budget); got {bad!r}. A bound penalty like "
                                "log(2/delta)/N is non-negative for delta in (0, 1).")
    return arr


def _out(arr: np.ndarray, scalar: bool):
    return float(arr) if scalar else arr


def kl_divergence(q: Any, p: Any) -> float | np.ndarray:
    r"""Bernoulli KL divergence :math:`\mathrm{kl}(q\|p)`, vectorised, with :math:`0\log 0 = 0`.

    Computed as the sum of two non-negative terms without cancellation (module docstring), so its relative
    error is a few dozen ulps even for :math:`p` close to :math:`q`.  ``+inf`` where :math:`p \in \{0, 1\}`
    and :math:`q \ne p`.

    Raises
    ------
    InvalidInputError
        ``q`` or ``p`` outside [0, 1] or NaN.
    """
    qa, pa = _check_q(q, "q"), _check_q(p, "p")
    scalar = qa.ndim == 0 and pa.ndim == 0
    qa, pa = _broadcast("q", qa, "p", pa)
    return _out(_kl(qa, pa), scalar)


def _bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64).view(np.int64)


def _from_bits(b: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(b, dtype=np.int64).view(np.float64)


def _bisect(q: np.ndarray, target: np.ndarray, lo: np.ndarray, hi: np.ndarray, upper: bool) -> np.ndarray:
    """Bisection on bit patterns; ``upper``: predicate holds at ``hi`` (returned), else at ``lo`` (returned)."""
    lo_b, hi_b = _bits(lo), _bits(hi)
    for _ in range(64):
        active = hi_b - lo_b > 1
        if not active.any():
            break
        mid_b = lo_b + (hi_b - lo_b) // 2
        mid = _from_bits(mid_b)
        holds = _kl(q, mid) >= target  # "far enough from q"
        if upper:
            hi_b = np.where(active & holds, mid_b, hi_b)
            lo_b = np.where(active & ~holds, mid_b, lo_b)
        else:
            lo_b = np.where(active & holds, mid_b, lo_b)
            hi_b = np.where(active & ~holds, mid_b, hi_b)
    return _from_bits(hi_b if upper else lo_b)


def _inverse(q: Any, c: Any, upper: bool) -> float | np.ndarray:
    qa, ca = _check_q(q), _check_c(c)
    scalar = qa.ndim == 0 and ca.ndim == 0
    shape = _broadcast("q", qa, "c", ca)[0].shape
    qa, ca = np.broadcast_arrays(qa, ca)
    qa, ca = qa.astype(np.float64).ravel(), ca.astype(np.float64).ravel()
    res = np.empty_like(qa)
    end = 1.0 if upper else 0.0
    edge_q = 0.0 if upper else 1.0  # the q with a closed form
    done = np.zeros(qa.shape, dtype=bool)
    # c = 0: the inverse is q itself (kl(q||p) = 0 iff p = q)
    m = ca == 0
    res[m], done[m] = qa[m], True
    # q at the far end, or c = inf: the whole side is feasible
    m = ~done & ((qa == end) | np.isinf(ca))
    res[m], done[m] = end, True
    # q at the near end: closed form 1 - exp(-c) (upper, q = 0) or exp(-c) (lower, q = 1), two ulps outward
    m = ~done & (qa == edge_q)
    if m.any():
        if upper:
            v = -np.expm1(-ca[m])
            v = np.nextafter(np.nextafter(v, 2.0), 2.0)
            res[m] = np.minimum(v, 1.0)
        else:
            v = np.exp(-ca[m])
            v = np.nextafter(np.nextafter(v, -1.0), -1.0)
            res[m] = np.maximum(v, 0.0)
        done[m] = True
    # tiny budgets: c * (1 + eta) has no relative margin left near the subnormals, and kl values of that size
    # are not computed to a relative accuracy; use kl(q||p) >= (p - q)^2 / (2 max(p, q)) instead, which gives
    # p <= q + c + sqrt(c (c + 2 q)) (upper) and p >= q - sqrt(2 q c) (lower), rounded outward; there the
    # inverse is within sqrt(2 c) < 1e-100 of q, so nothing is lost
    m = ~done & (ca < _TINY_C)
    if m.any():
        qm, cm = qa[m], ca[m]
        if upper:
            v = qm + (cm + np.sqrt(cm) * np.sqrt(cm + 2.0 * qm)) * (1.0 + 1e-12)
            res[m] = np.minimum(np.nextafter(np.nextafter(v, 2.0), 2.0), 1.0)
        else:
            v = qm - np.sqrt(2.0 * qm) * np.sqrt(cm) * (1.0 + 1e-12)
            res[m] = np.maximum(np.nextafter(np.nextafter(v, -1.0), -1.0), 0.0)
        done[m] = True
    m = ~done
    if m.any():
        qm, target = qa[m], ca[m] * (1.0 + _ETA)
        if upper:
            res[m] = _bisect(qm, target, qm.copy(), np.ones_like(qm), upper=True)
        else:
            res[m] = _bisect(qm, target, np.zeros_like(qm), qm.copy(), upper=False)
    res = np.clip(res, 0.0, 1.0)
    return _out(res.reshape(shape) if not scalar else res[0], scalar)


def kl_inverse(q: Any, c: Any) -> float | np.ndarray:
    r"""Upper inverse of the Bernoulli KL: :math:`\sup\{p \in [0, 1] : \mathrm{kl}(q\|p) \le c\}`.

    The upper confidence limit of every test-set (Langford 2005, Thm 3.3) and PAC-Bayes-kl (Seeger 2002;
    Maurer 2004) bound: if :math:`\mathrm{kl}(\hat r\|r) \le c` then :math:`r \le \mathrm{kl}^{-1}(\hat r|c)`.

    Parameters
    ----------
    q : float or array_like in [0, 1]
        The empirical risk.
    c : float or array_like, >= 0 (``inf`` allowed)
        The budget, e.g. ``log(2/delta)/N``.  Broadcast against ``q``.

    Returns
    -------
    float or ndarray
        The inverse, rounded to the safe side: never below the true supremum and above it by less than
        :math:`10^{-10}` (exact to one ulp for the closed forms).  Identities: :math:`\mathrm{kl}^{-1}(q|0) = q`
        (exact), :math:`\mathrm{kl}^{-1}(0|c) = 1 - e^{-c}` (up to 2 ulps, outward), monotone increasing in
        ``q`` and ``c``, and :math:`\le q + \sqrt{c/2}` (Pinsker).

    Raises
    ------
    InvalidInputError
        ``q`` outside [0, 1], ``c < 0``, or NaN in either.

    Examples
    --------
    >>> from unfoldtheory.generalization import kl_inverse
    >>> round(kl_inverse(0.0, 0.01), 10)
    0.0099501663
    """
    return _inverse(q, c, upper=True)


def kl_inverse_lower(q: Any, c: Any) -> float | np.ndarray:
    r"""Lower inverse of the Bernoulli KL: :math:`\inf\{p \in [0, 1] : \mathrm{kl}(q\|p) \le c\}`.

    The lower confidence limit matching :func:`kl_inverse` (same numerics, mirrored): never above the true
    infimum, below it by less than :math:`10^{-10}`; :math:`\mathrm{kl}^{-1}_{\mathrm{lo}}(q|0) = q`,
    :math:`\mathrm{kl}^{-1}_{\mathrm{lo}}(1|c) = e^{-c}` (2 ulps outward), and
    :math:`\ge q - \sqrt{c/2}`.

    Raises
    ------
    InvalidInputError
        ``q`` outside [0, 1], ``c < 0``, or NaN in either.
    """
    return _inverse(q, c, upper=False)
