"""Claims on the LISTA-CP/ALISTA theorems and on generalization bounds (issues 5 and 6)."""

from __future__ import annotations

from ._core import Claim


def claims() -> list[Claim]:
    return []
