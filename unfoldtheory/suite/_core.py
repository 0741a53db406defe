"""Claims, their evidence and their records: the data model of the verification suite."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..bounds import Bound
from ..errors import InvalidInputError
from ..verdicts import VERDICTS, Verdict

#: Relations a claim can assert between its empirical value and its bound.
RELATIONS = ("<=", ">=", "approx")
#: Outcomes of a claim: the package's one verdict vocabulary (:class:`~unfoldtheory.verdicts.Verdict`).
STATUSES = VERDICTS
#: Tightness (upper / best lower) above which a bound is flagged as loose in the report.
LOOSE_FACTOR = 10.0


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
    bound_side : {"estimate", "upper", "lower", "measured"}
        What a plain-number ``bound`` is (recorded as an uncertified :class:`Bound`): a threshold or tolerance
        (``estimate``, the default), a formula evaluated in floating point (``upper``), a value measured on data
        (``measured``).  Only a :class:`Bound` can carry ``certified=True``.
    value_range : (low, high), optional
        The range the bounded quantity can take whatever the model (e.g. ``(0, 1)`` for a loss clipped to
        [0, 1], a fraction or a risk).  An upper bound ``>= high`` (relation ``<=``) or a lower bound
        ``<= low`` (relation ``>=``) is sound but says nothing: the claim is then ``vacuous``, never ``holds``.
    vacuous_reason : str
        Set by a check that knows its bound is trivially true for another reason (the verdict is then
        ``vacuous`` when the relation holds).
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
    bound_side: str = "estimate"
    value_range: tuple[float, float] | None = None
    vacuous_reason: str = ""


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
    finding : bool
        The claim states a property of the trained model (e.g. "the network is a contraction"), not the
        soundness of a bound: its ``violated`` is a finding reported as such and does not fail the run.
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
    finding: bool = False

    def __post_init__(self):
        if self.relation not in RELATIONS:
            raise InvalidInputError(f"relation must be one of {RELATIONS}; got {self.relation!r}.")

    @property
    def description(self) -> str:
        return (self.check.__doc__ or "").strip()


def as_record_bound(ev: Evidence) -> Bound | None:
    """The evidence's bound as a :class:`Bound`: a plain number becomes an *uncertified* bound of side
    ``ev.bound_side`` (thresholds, tolerances, measured values and formulas are not certificates)."""
    if ev.bound is None or isinstance(ev.bound, Bound):
        return ev.bound
    reason = {"measured": "measured on data", "upper": "a theorem's formula evaluated in floating point, not "
              "re-verified", "lower": "not verified"}.get(ev.bound_side, "a reference value (threshold, tolerance "
                                                                        "or closed form), not a certificate")
    return Bound(value=float(ev.bound), side=ev.bound_side, certified=False, method=ev.bound_method or "value",
                 reason=reason)


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


def vacuity(claim: Claim, ev: Evidence) -> str:
    """Why the claim's bound is trivially true ("" when it is informative).

    A bound is vacuous when its :class:`Bound` says so, when the check says so (``ev.vacuous_reason``), or when
    it lies outside the range the bounded quantity can take (``ev.value_range``): an upper bound at or above
    the largest possible value, a lower bound at or below the smallest one.
    """
    if ev.vacuous_reason:
        return ev.vacuous_reason
    if isinstance(ev.bound, Bound) and ev.bound.vacuous:
        return ev.bound.vacuous_reason
    b = _value(ev.bound)
    if ev.value_range is None or b is None:
        return ""
    low, high = (float(v) for v in ev.value_range)
    if claim.relation == "<=" and b >= high:
        return f"the upper bound {b:.4g} is at least {high:g}, the largest value the quantity can take"
    if claim.relation == ">=" and b <= low:
        return f"the lower bound {b:.4g} is at most {low:g}, the smallest value the quantity can take"
    return ""


def judge(claim: Claim, ev: Evidence, *, inject: bool = False) -> tuple[Verdict, bool | None, float | None, list[str]]:
    """Verdict, holds, tightness and failed assumptions of a claim's evidence.

    The verdict is ``not applicable`` when an assumption fails, ``violated`` when the relation or a check
    fails, ``vacuous`` when it holds but the bound is trivially true (:func:`vacuity`), else ``holds``.
    ``holds`` (the second item) says whether the relation and the checks hold (True also for ``vacuous``).
    Tightness is bound / empirical for ``<=`` (upper / best lower), empirical / bound for ``>=``, the relative
    difference for ``approx``.

    ``inject`` replaces the bound by :func:`wrong_bound` before the comparison; it exists only to test that a
    wrong bound shows up as a violation (``--inject-failure``), never in a normal run.
    """
    failed = [name for name, ok in ev.assumptions.items() if not ok]
    if failed:
        return Verdict.NOT_APPLICABLE, None, None, failed
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
    ok = bool(ok and all(ev.checks.values()))
    tight = None if tight is None or not math.isfinite(tight) else float(tight)
    if not ok:
        return Verdict.VIOLATED, False, tight, failed
    if not inject and vacuity(claim, ev):
        return Verdict.VACUOUS, True, tight, failed
    return Verdict.HOLDS, True, tight, failed
