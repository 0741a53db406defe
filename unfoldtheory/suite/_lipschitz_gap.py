r"""The Lipschitz sandwich of one model and the grade of its gap (the report's Lipschitz section).

Per model the report shows every certified upper bound (naive, LipSDP-Layer, LipSDP-Neuron, LipSDP on the
data box of the test set), the exact constant where the net is small enough, the best lower bound with its
source, and both ends of the constant on small balls around test inputs (their union); the gap is the ratio best
certified upper / best lower, graded against :data:`GRADE_THRESHOLDS`, for the global constant, the domain
constant and the local constant separately (``docs/design.md §8``).

The entries are stored in ``details["sandwich"]`` of the claim's record as :func:`entry` dictionaries, each
with its side, certification status and convergence, so ``results.json`` never loses what a number is.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..bounds import Bound

#: Grades of the gap ratio r = certified upper / best lower: ``tight`` for r <= 1.5, ``moderate`` for
#: r <= 3, ``loose`` above (docs/design.md §8).
GRADE_THRESHOLDS: tuple[tuple[str, float], ...] = (("tight", 1.5), ("moderate", 3.0))
#: Relative slack allowed between the domain and the global LipSDP certificate: both are optimised with a work
#: budget, so the domain one may end slightly above the global one without anything being wrong.
DOMAIN_TOLERANCE = 0.05
#: The data box is widened on every side by this fraction of (1 + the largest test-input norm), so that the
#: small secants of the lower-bound search around test inputs stay inside it.
DOMAIN_MARGIN = 2e-3
#: The entries of a sandwich, in the order of the table and the figure (top = smallest).
ENTRIES = ("local_lower", "local_lipsdp", "lower_jacobian_search", "lower_attack", "lower_region_search", "exact", "domain_lower",
           "domain_lipsdp", "lipsdp", "layerwise", "naive")
#: Where an entry lives: the global constant, the constant on the data box, or the local constants on the balls
#: around test inputs (docs/theory/robustness.md §3).
SCOPE = {"domain_lower": "domain", "domain_lipsdp": "domain", "local_lower": "local", "local_lipsdp": "local"}
#: The scopes of the graded gaps.
SCOPES = ("global", "domain", "local")
#: Human names of the lower-bound sources.
SOURCES = {"lower_jacobian_search": "Jacobian search", "lower_attack": "attack",
           "lower_region_search": "region search", "exact": "exact (witness region)",
           "domain_lower": "Jacobian search at test inputs", "local_lower": "secant inside a ball"}


def grade(upper: float, lower: float) -> dict:
    """The gap of a sandwich ``lower <= L <= upper``: ``{"upper", "lower", "ratio", "grade"}``.

    ``ratio = upper / lower``; the grade is the first of :data:`GRADE_THRESHOLDS` whose limit the ratio does
    not exceed, else ``"loose"``.  No lower bound above 0 (or no finite upper bound) gives ``ratio = inf`` and
    ``"loose"``, except ``upper == lower == 0`` (a constant map), which is ``tight`` with ratio 1.
    """
    upper, lower = float(upper), float(lower)
    if upper == 0.0 and lower == 0.0:
        ratio = 1.0
    elif lower > 0 and math.isfinite(upper):
        ratio = upper / lower
    else:
        ratio = math.inf
    name = next((g for g, limit in GRADE_THRESHOLDS if ratio <= limit), "loose")
    return {"upper": upper, "lower": lower, "ratio": ratio, "grade": name}


def entry(b: Bound, scope: str = "global", **extra: Any) -> dict:
    """A compact JSON-able record of a bound: value, side, certification, convergence, what it bounds."""
    out = {"computed": True, "value": float(b.value), "side": b.side, "certified": bool(b.certified),
           "converged": bool(b.converged), "method": b.method, "scope": scope, "quantity": b.quantity,
           "interval": None if b.interval is None else [float(v) for v in b.interval],
           "reason": b.reason or "", "seconds": None if b.seconds is None else float(b.seconds)}
    out.update(extra)
    return out


def not_computed(side: str, method: str, reason: str, scope: str = "global", **extra: Any) -> dict:
    """The record of an entry that was not computed (``value=None``), with why."""
    return {"computed": False, "value": None, "side": side, "certified": False, "converged": True,
            "method": method, "scope": scope, "quantity": "", "interval": None, "reason": reason, "seconds": None,
            **extra}


def data_box(Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The box of the inputs ``Y`` (n, m) widened by :data:`DOMAIN_MARGIN` ``(1 + max ||y||_2)``; returns
    ``(lower, upper, margin)``."""
    Y = np.asarray(Y, dtype=float)
    margin = DOMAIN_MARGIN * (1.0 + float(np.linalg.norm(Y, axis=1).max()))
    return Y.min(axis=0) - margin, Y.max(axis=0) + margin, margin


def in_box(points: Any, lower: np.ndarray, upper: np.ndarray) -> bool:
    """Whether every point of ``points`` (k, m) lies in the closed box ``[lower, upper]``."""
    P = np.atleast_2d(np.asarray(points, dtype=float))
    return bool(np.all(P >= lower) and np.all(P <= upper))


def best_lower(sandwich: dict, scope: str) -> tuple[float, str | None]:
    """The largest certified lower bound of the sandwich in ``scope`` and the name of its entry.

    Global: every certified lower entry and the certified lower end of ``exact``; a lower bound on the domain or
    a local constant is also one on the global constant, so ``domain_lower`` and ``local_lower`` count for it.
    Domain: only entries whose witness lies in the data box (``in_domain``).  Local: only the local entries
    (their witness pairs lie in one ball)."""
    best, src = 0.0, None
    for name, e in sandwich.items():
        if not e["computed"]:
            continue
        if name == "exact":
            value = e["interval"][0] if e.get("interval") and e.get("lower_end_certified") else None
        elif e["side"] == "lower" and e["certified"]:
            value = e["value"]
        else:
            value = None
        if value is None or (scope == "domain" and not e.get("in_domain", e["scope"] == "domain")):
            continue
        if scope == "local" and e["scope"] != "local":
            continue
        if value > best:
            best, src = float(value), name
    return best, src


def best_upper(sandwich: dict, scope: str) -> tuple[float, str | None]:
    """The smallest certified upper bound in ``scope``; a global upper bound also bounds the domain and the local
    constants."""
    best, src = math.inf, None
    for name, e in sandwich.items():
        if not (e["computed"] and e["side"] == "upper" and e["certified"]):
            continue
        if e["scope"] not in ("global", scope):
            continue
        if e["value"] < best:
            best, src = float(e["value"]), name
    return best, src


def grades(sandwich: dict) -> dict:
    """The graded gap of the global, the domain and the local constant, with the entries that set each end."""
    out = {}
    for scope in SCOPES:
        up, up_src = best_upper(sandwich, scope)
        low, low_src = best_lower(sandwich, scope)
        out[scope] = {**grade(up, low), "upper_from": up_src, "lower_from": low_src,
                      "lower_source": SOURCES.get(low_src, low_src)}
    return out


def soundness_checks(sandwich: dict, tolerance: float = DOMAIN_TOLERANCE) -> dict[str, bool]:
    """Consistency checks of a sandwich that fail on an unsound number (each names what it compares):
    every certified lower bound <= every certified upper bound of its scope (global uppers bound the domain and
    local constants too), the exact bracket between them, and the domain and local certificates <= the global
    one up to ``tolerance``."""
    rel = 1e-9  # rounding of values computed separately in float64
    checks: dict[str, bool] = {}
    ups = {n: e for n, e in sandwich.items() if e["computed"] and e["side"] == "upper" and e["certified"]}
    glob_up = min((e["value"] for n, e in ups.items() if e["scope"] == "global"), default=math.inf)
    dom_up = min((e["value"] for e in ups.values() if e["scope"] in ("global", "domain")), default=math.inf)
    loc_up = min((e["value"] for e in ups.values() if e["scope"] in ("global", "local")), default=math.inf)
    low, _ = best_lower(sandwich, "global")
    dlow, _ = best_lower(sandwich, "domain")
    checks["best lower <= every certified global upper bound"] = low <= glob_up * (1 + rel)
    checks["best domain lower <= every certified upper bound on the domain"] = dlow <= dom_up * (1 + rel)
    if any(e["computed"] and e["scope"] == "local" for e in sandwich.values()):
        llow, _ = best_lower(sandwich, "local")
        checks["best local lower <= every certified upper bound on the balls"] = llow <= loc_up * (1 + rel)
    ex = sandwich.get("exact")
    if ex is not None and ex["computed"] and ex.get("interval"):
        lo, hi = ex["interval"]
        checks["best lower <= exact upper end"] = low <= hi * (1 + rel)
        checks["exact lower end <= every certified global upper bound"] = lo <= glob_up * (1 + rel)
    gl = sandwich.get("lipsdp")
    for key, what in (("domain_lipsdp", "domain"), ("local_lipsdp", "local")):
        e = sandwich.get(key)
        if e is not None and gl is not None and e["computed"] and gl["computed"]:
            checks[f"{what} LipSDP <= global LipSDP (1 + {tolerance:g})"] = e["value"] <= gl["value"] * (1 + tolerance)
    return checks


def sandwich_figure(plt, sandwich: dict, graded: dict, title: str, ax=None):
    """The sandwich on a log axis: one row per entry (marker at its value, the exact bracket as a segment),
    colours by side and scope, the two gaps as segments below; returns the Axes.  Drawn with lines and markers only, so the figure
    can be redrawn from ``results.json``."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    from matplotlib import ticker

    styles = {("upper", "global"): ("s", "#1f77b4", "certified upper (global)"),
              ("upper", "domain"): ("s", "#2ca02c", "certified upper (data box)"),
              ("lower", "global"): ("v", "#d62728", "certified lower (global)"),
              ("lower", "domain"): ("v", "#ff7f0e", "certified lower (data box)"),
              ("upper", "local"): ("D", "#17becf", "certified upper (balls at data)"),
              ("lower", "local"): ("^", "#8c564b", "certified lower (balls at data)")}
    used: set = set()
    rows = [n for n in ENTRIES if n in sandwich and sandwich[n]["computed"]]
    for i, name in enumerate(rows):
        e = sandwich[name]
        if name == "exact" and e.get("interval"):
            lo, hi = e["interval"]
            ax.plot([lo, max(hi, lo)], [i, i], "-|", color="#9467bd", label="exact bracket")
            continue
        marker, color, label = styles.get((e["side"], e["scope"]), ("o", "k", e["side"]))
        value = e["value"]
        if e["side"] == "upper" and not e["certified"]:
            marker, label = "x", f"uncertified {e['side']}"
        if value > 0 and math.isfinite(value):
            ax.plot([value], [i], marker, color=color, label=None if label in used else label)
            used.add(label)
    for scope, y, style in (("global", -0.6, "--"), ("domain", -1.1, ":"), ("local", -1.6, "-.")):
        g = graded.get(scope, {})
        if g and math.isfinite(g["upper"]) and g["lower"] > 0:
            ax.plot([g["lower"], g["upper"]], [y, y], style, color="k",
                    label=f"{scope} gap x{g['ratio']:.3g} ({g['grade']})")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=7)
    ax.set_xlabel("Lipschitz constant of y -> x_K (l2)")
    ax.set_title(title)
    ax.grid(True, which="both", axis="x", alpha=0.3)
    ax.legend(fontsize=6, loc="lower right")
    return ax
