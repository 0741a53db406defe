"""One JSON sanitizer for every ``to_dict``/results file of the package."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .bounds import Bound


def jsonable(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, non-finite floats to the strings 'inf', '-inf', 'nan',
    a :class:`~unfoldtheory.bounds.Bound` to its fields (witness left out), anything else to ``str``."""
    if isinstance(obj, Bound):
        return {"value": jsonable(obj.value), "side": obj.side, "certified": obj.certified, "method": obj.method,
                "quantity": obj.quantity, "solver": obj.solver, "status": obj.status, "reason": obj.reason,
                "seconds": jsonable(obj.seconds)}
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
