"""The one verdict vocabulary of the package.

Suite claims, theorem checks and the property suite all answer with a :class:`Verdict`:

``holds``
    the checked statement is true on this model and data, and the bound involved is informative;
``violated``
    the checked statement is false (a bound is broken, a property fails);
``vacuous``
    the statement is true but only trivially so (a bound above the largest possible value of what it bounds,
    a certified fraction <= 0): sound, and says nothing;
``not applicable``
    an assumption the statement needs fails (the failed assumptions are named beside the verdict);
``error``
    the check itself could not be carried out (the exception is recorded).

``Verdict`` is a ``str`` enum, so ``Verdict.HOLDS == "holds"`` and records serialise as plain strings.
"""

from __future__ import annotations

from enum import Enum


class Verdict(str, Enum):
    """Outcome of a check: ``holds``, ``violated``, ``vacuous``, ``not applicable`` or ``error``."""

    HOLDS = "holds"
    VIOLATED = "violated"
    VACUOUS = "vacuous"
    NOT_APPLICABLE = "not applicable"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """The verdicts as plain strings, in their canonical order."""
        return tuple(v.value for v in cls)


VERDICTS = Verdict.values()

__all__ = ["VERDICTS", "Verdict"]
