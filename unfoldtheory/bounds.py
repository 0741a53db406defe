"""The result type of every certificate: a number with its side and its evidence.

A :class:`Bound` says what was bounded (``quantity``), from which side (``"upper"``, ``"lower"``,
``"estimate"`` or ``"measured"``), whether the value is certified (for an upper bound: re-verified in float64
and rounded outward; for a lower bound: attained by an explicit witness), whether it is vacuous (true but
trivially so), whether the computation converged within its work budget, how it was computed, and the checks
that were run.  Power iterations and sampled Jacobians give ``side="lower"`` (attained) or ``"estimate"``,
never ``"upper"``; a value measured on data (an observed gap, a residual) has ``side="measured"`` and is never
``certified``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from .errors import InvalidInputError

SIDES = ("upper", "lower", "estimate", "measured")


@dataclass(frozen=True)
class Bound:
    """A bound on a named quantity, with its side and evidence.

    Attributes
    ----------
    value : float
        The bound (``inf`` is a valid, vacuous upper bound).
    side : {"upper", "lower", "estimate", "measured"}
        ``upper``: the quantity is <= value; ``lower``: the quantity is >= value; ``estimate``: neither is
        guaranteed; ``measured``: the value observed on data (not a bound on anything else).
    certified : bool
        Whether the claim of ``side`` has been verified (SDP certificate re-checked in float64 and rounded
        outward, or a lower bound attained by ``witness``).  ``False`` comes with a ``reason``.
    method : str
        How the value was computed (``"lipsdp"``, ``"naive"``, ``"pep"``, ``"sampled_jacobian"``, ...).
    quantity : str
        What is bounded, e.g. ``"Lipschitz constant of y -> x_K (l2)"``.
    solver, status : str, optional
        Solver used and the status it reported.
    checks : mapping
        Named verification results (e.g. ``{"min_eig_lmi": 1.2e-9, "dual_residual": 3e-12}``).
    reason : str
        Why the result is not certified (empty when it is).
    witness : object, optional
        The evidence that attains a lower bound (an input, an activation pattern) or the certificate of an
        upper bound (multipliers, a dual solution).
    seconds : float, optional
        Wall-clock time of the computation.
    converged : bool
        ``False`` when a safety cap (a wall-clock limit) stopped the computation before its work budget and
        tolerance did: the value is still valid for its side, but another run may give a different one.
    vacuous : bool
        The bound is true but trivially so (e.g. an upper bound on a loss in [0, 1] that is >= 1);
        ``vacuous_reason`` says why.
    vacuous_reason : str
        Why the bound is vacuous (empty when it is not).
    confidence : float, optional
        For probabilistic bounds: the probability (``1 - delta``) with which the bound holds.
    interval : tuple (low, high), optional
        A bracket on the quantity when both ends are known (an exact solver's certified lower and upper end);
        ``value`` is then the end named by ``side``.
    """

    value: float
    side: str
    certified: bool
    method: str
    quantity: str = ""
    solver: str | None = None
    status: str | None = None
    checks: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""
    witness: Any = field(default=None, repr=False, compare=False)
    seconds: float | None = None
    converged: bool = True
    vacuous: bool = False
    vacuous_reason: str = ""
    confidence: float | None = None
    interval: tuple[float, float] | None = None

    def __post_init__(self):
        if self.side not in SIDES:
            raise InvalidInputError(f"side must be one of {SIDES}; got {self.side!r}.")
        if self.side == "measured" and self.certified:
            raise InvalidInputError("a measured value is not a certificate: pass certified=False for side='measured'.")
        if self.confidence is not None and not 0.0 < float(self.confidence) <= 1.0:
            raise InvalidInputError(f"confidence must lie in (0, 1]; got {self.confidence!r}.")
        if self.interval is not None:
            lo, hi = (float(v) for v in self.interval)
            if math.isnan(lo) or math.isnan(hi) or lo > hi:
                raise InvalidInputError(f"interval must be (low, high) with low <= high; got {self.interval!r}.")
            object.__setattr__(self, "interval", (lo, hi))
        if self.vacuous and not self.vacuous_reason:
            object.__setattr__(self, "vacuous_reason", "trivially true")
        value = float(self.value)
        if math.isnan(value):
            raise InvalidInputError("a Bound value must not be NaN; report an uncertified result with a reason.")
        if self.side == "lower" and value == math.inf:
            raise InvalidInputError("a lower bound of +inf is not meaningful.")
        object.__setattr__(self, "value", value)
        if not self.certified and not self.reason:
            object.__setattr__(self, "reason", "measured on data" if self.side == "measured" else "not verified")

    def __float__(self) -> float:
        return self.value

    def __repr__(self) -> str:
        if self.side == "measured":
            cert = "measured"
        else:
            cert = "certified" if self.certified else f"NOT certified: {self.reason}"
        extra = f", solver={self.solver}" if self.solver else ""
        if self.interval is not None:
            extra += f", interval=[{self.interval[0]:.6g}, {self.interval[1]:.6g}]"
        if self.confidence is not None:
            extra += f", confidence={self.confidence:g}"
        flags = (", vacuous" if self.vacuous else "") + ("" if self.converged else ", NOT converged")
        return f"Bound({self.side} {self.value:.6g}, {self.method}{extra}, {cert}{flags})"

    def to_dict(self) -> dict:
        """A loss-free, JSON-valid dict (the witness is left out; non-finite numbers become the strings
        ``"inf"``, ``"-inf"``, ``"nan"``): ``json.dumps(b.to_dict(), allow_nan=False)`` always works.
        :meth:`from_dict` reads it back."""
        from ._json import jsonable

        d = asdict(self)
        d.pop("witness")
        return jsonable(d)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Bound":
        """The :class:`Bound` written by :meth:`to_dict` (without its witness)."""
        from ._json import from_jsonable

        d = dict(from_jsonable(dict(d)))
        if d.get("interval") is not None:
            d["interval"] = tuple(d["interval"])
        return cls(**d)
