"""Claims, their evidence and their records: the data model of the verification suite."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..bounds import Bound
from ..errors import InvalidInputError

#: Relations a claim can assert between its empirical value and its bound.
RELATIONS = ("<=", ">=", "approx")
#: Outcomes of a claim.
STATUSES = ("holds", "violated", "not applicable", "error")


@dataclass
class Evidence:
    """What a claim's check function returns.

    Attributes
    ----------
    bound : Bound or float or None
        The library's bound (a :class:`~unfoldtheory.bounds.Bound` where there is one).  ``None`` when the
        claim is not applicable.
    empirical : float or None
        The independent counterpart: a measurement on data, an attack, a closed form, another solver.
    empirical_label : str
        What ``empirical`` is (e.g. "largest attacked Lipschitz ratio (certified lower bound)").
    assumptions : mapping name -> bool
        The theorem's assumptions as checked on this model/data.  If any is False the claim is "not
        applicable", whatever the numbers say.
    checks : mapping name -> bool
        Further consistency checks that must hold together with the relation (e.g. ``lipsdp <= naive``).
    details : mapping
        Anything worth reporting (JSON-serialisable numbers, short lists, strings).
    figure : str or None
        File name (inside the output folder) of the claim's figure.
    bound_method : str
        How a plain-number ``bound`` was obtained (a :class:`Bound` carries its own method).
    reason : str
        Why the claim is not applicable (filled in automatically from the failed assumptions when empty).
    """

    bound: Bound | float | None = None
    empirical: float | None = None
    empirical_label: str = ""
    assumptions: Mapping[str, bool] = field(default_factory=dict)
    checks: Mapping[str, bool] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    figure: str | None = None
    reason: str = ""
    bound_method: str = ""


@dataclass(frozen=True)
class Claim:
    """A result of the literature or the library, checked against its empirical counterpart.

    Attributes
    ----------
    id : str
        Stable identifier, ``topic.name`` (e.g. ``"lipschitz.LISTA"``).
    title : str
        One line: what is claimed.
    reference : str
        Paper, theorem, equation (or "library" for the library's own certificates).
    topic : str
        ``lipschitz``, ``robustness``, ``contraction``, ``convergence``, ``pep``, ``generalization``.
    paradigms : tuple of str
        Design paradigms the claim exercises ("classical", "1" ... "4").
    models : tuple of str
        Models of the zoo it needs (trained once per run and cached).
    relation : {"<=", ">=", "approx"}
        ``empirical <= bound`` (an upper bound), ``empirical >= bound`` (a lower bound / guarantee), or
        ``|empirical - bound| <= rtol |bound| + atol`` (a closed form against a solver).
    check : callable ``(context) -> Evidence``
    rtol, atol : float
        Tolerances of ``approx`` (and slack of the inequalities; zero by default: bounds are sound).
    """

    id: str
    title: str
    reference: str
    topic: str
    relation: str
    check: Callable[[Any], Evidence] = field(repr=False, compare=False)
    paradigms: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    rtol: float = 0.0
    atol: float = 0.0

    def __post_init__(self):
        if self.relation not in RELATIONS:
            raise InvalidInputError(f"relation must be one of {RELATIONS}; got {self.relation!r}.")

    @property
    def description(self) -> str:
        return (self.check.__doc__ or "").strip()


def _value(bound: Bound | float | None) -> float | None:
    if bound is None:
        return None
    return float(bound.value) if isinstance(bound, Bound) else float(bound)


def wrong_bound(claim: Claim, bound: float, empirical: float) -> float:
    """A bound that the claim's relation must reject (failure injection, for testing the pipeline only)."""
    gap = 0.5 * abs(empirical) + 1e-3 * (1.0 + abs(bound))
    if claim.relation == "<=":
        return empirical - gap
    if claim.relation == ">=":
        return empirical + gap
    return bound + 1e-2 * abs(bound) + gap + claim.atol


def judge(claim: Claim, ev: Evidence, *, inject: bool = False) -> tuple[str, bool | None, float | None, list[str]]:
    """Status, holds, tightness and failed assumptions of a claim's evidence.

    ``inject`` replaces the bound by :func:`wrong_bound` before the comparison; it exists only to test that a
    wrong bound shows up as a violation (``--inject-failure``), never in a normal run.
    """
    failed = [name for name, ok in ev.assumptions.items() if not ok]
    if failed:
        return "not applicable", None, None, failed
    b, e = _value(ev.bound), ev.empirical
    if b is None or e is None or (isinstance(e, float) and math.isnan(e)) or math.isnan(b):
        raise InvalidInputError(f"claim {claim.id}: its check returned no bound or no empirical value while every "
                                "assumption holds; return both, or mark the failing assumption.")
    e = float(e)
    if inject:
        b = wrong_bound(claim, b, e)
    if claim.relation == "<=":
        ok = e <= b + claim.rtol * abs(b) + claim.atol
        tight = b / e if e > 0 and b >= 0 else None
    elif claim.relation == ">=":
        ok = e >= b - claim.rtol * abs(b) - claim.atol
        tight = e / b if b > 0 and e >= 0 else None
    else:
        ok = abs(e - b) <= claim.rtol * abs(b) + claim.atol
        tight = abs(e - b) / abs(b) if b != 0 else abs(e)
    if isinstance(ev.bound, Bound) and ev.bound.side == "upper" and claim.relation == "<=" and not ev.bound.certified:
        ok = False  # an uncertified upper bound cannot make a claim hold
    ok = ok and all(ev.checks.values())
    return ("holds" if ok else "violated"), bool(ok), (None if tight is None else float(tight)), failed
