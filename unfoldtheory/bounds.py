"""The result type of every certificate: a number with its side and its evidence.

A :class:`Bound` says what was bounded (``quantity``), from which side (``"upper"``, ``"lower"`` or
``"estimate"``), whether the value is certified (for an upper bound: re-verified in float64 and rounded
outward; for a lower bound: attained by an explicit witness), how it was computed, and the checks that were
run.  Power iterations and sampled Jacobians give ``side="lower"`` (attained) or ``"estimate"``, never
``"upper"``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from .errors import InvalidInputError

SIDES = ("upper", "lower", "estimate")


@dataclass(frozen=True)
class Bound:
    """A bound on a named quantity, with its side and evidence.

    Attributes
    ----------
    value : float
        The bound (``inf`` is a valid, vacuous upper bound).
    side : {"upper", "lower", "estimate"}
        ``upper``: the quantity is <= value; ``lower``: the quantity is >= value; ``estimate``: neither is
        guaranteed.
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

    def __post_init__(self):
        if self.side not in SIDES:
            raise InvalidInputError(f"side must be one of {SIDES}; got {self.side!r}.")
        value = float(self.value)
        if math.isnan(value):
            raise InvalidInputError("a Bound value must not be NaN; report an uncertified result with a reason.")
        if self.side == "lower" and value == math.inf:
            raise InvalidInputError("a lower bound of +inf is not meaningful.")
        object.__setattr__(self, "value", value)
        if not self.certified and not self.reason:
            object.__setattr__(self, "reason", "not verified")

    def __float__(self) -> float:
        return self.value

    def __repr__(self) -> str:
        cert = "certified" if self.certified else f"NOT certified: {self.reason}"
        extra = f", solver={self.solver}" if self.solver else ""
        return f"Bound({self.side} {self.value:.6g}, {self.method}{extra}, {cert})"

    def to_dict(self) -> dict:
        """A JSON-friendly dict (the witness is left out)."""
        d = asdict(self)
        d.pop("witness")
        d["checks"] = {k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
                       for k, v in dict(self.checks).items()}
        return d
