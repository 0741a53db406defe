"""One JSON sanitizer for every ``to_dict``/results file of the package."""

from __future__ import annotations

import math
from enum import Enum
from typing import Any

import numpy as np

from .bounds import Bound


def jsonable(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, non-finite floats to the strings 'inf', '-inf', 'nan',
    a :class:`~unfoldtheory.bounds.Bound` to its fields (witness left out), anything else to ``str``."""
    if isinstance(obj, Bound):
        return obj.to_dict()
    if isinstance(obj, Enum):
        return jsonable(obj.value)
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        x = float(obj)
        return x if math.isfinite(x) else ("nan" if math.isnan(x) else ("inf" if x > 0 else "-inf"))
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


_NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def from_jsonable(obj: Any) -> Any:
    """Inverse of :func:`jsonable` on numbers: the strings 'inf', '-inf', 'nan' back to floats (recursively)."""
    if isinstance(obj, dict):
        return {k: from_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_jsonable(v) for v in obj]
    if isinstance(obj, str) and obj in _NONFINITE:
        return _NONFINITE[obj]
    return obj
