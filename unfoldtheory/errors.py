"""Exception types raised by unfoldtheory.

Every error raised at the public boundary is a subclass of :class:`UnfoldTheoryError` and of the matching
built-in type (``ValueError``, ``TypeError`` or ``RuntimeError``), so ``except ValueError`` keeps working in
user code.  Messages name the offending argument and say what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass


class UnfoldTheoryError(Exception):
    """Base class of every error raised by unfoldtheory."""


class InvalidInputError(UnfoldTheoryError, ValueError):
    """An argument has the wrong shape, contains NaN/Inf, or lies outside its allowed range."""


class MissingFileError(InvalidInputError, FileNotFoundError):
    """A file argument names a path that does not exist (also a ``FileNotFoundError``)."""


class NotRepresentableError(UnfoldTheoryError, TypeError):
    """A model or layer cannot be written in the analysis form (not elementwise, not continuous, ...)."""


@dataclass(frozen=True)
class SolverAttempt:
    """One try of one solver: its name, the status it reported and why it was rejected."""

    solver: str
    status: str
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.solver}: {self.status}" + (f" ({self.reason})" if self.reason else "")


class SolverError(UnfoldTheoryError, RuntimeError):
    """Every solver tried failed; ``attempts`` lists each solver with the status it returned."""

    def __init__(self, message: str, attempts: list[SolverAttempt] | tuple[SolverAttempt, ...] = ()):
        self.attempts = tuple(attempts)
        if self.attempts:
            message += " Solvers tried: " + "; ".join(str(a) for a in self.attempts) + "."
        super().__init__(message)
