"""Validation helpers used at the public boundary (shapes, finiteness, ranges).

All helpers raise :class:`~unfoldtheory.errors.InvalidInputError` with a message that names the argument and
the fix.  They accept numpy arrays, Python sequences and torch tensors (converted to float64 numpy).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .errors import InvalidInputError


def to_numpy(value: Any) -> np.ndarray:
    """Convert a torch tensor, numpy array or nested sequence to a numpy array (no copy when possible)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def as_float_array(value: Any, name: str, *, ndim: int | tuple[int, ...] | None = None,
                   dtype: Any = np.float64) -> np.ndarray:
    """Return ``value`` as a finite float array, checking its number of dimensions.

    Raises
    ------
    InvalidInputError
        If the value is not numeric, has the wrong number of dimensions, or contains NaN/Inf.
    """
    try:
        arr = to_numpy(value)
        if arr.dtype == object or np.iscomplexobj(arr):
            raise TypeError
        arr = arr.astype(dtype, copy=False)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"{name} must be a real numeric array (numpy array, torch tensor or nested list); "
            f"got {type(value).__name__}.") from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise InvalidInputError(f"{name} must be {want}; got an array of shape {arr.shape}.")
    check_finite(arr, name)
    return arr


def check_finite(arr: np.ndarray, name: str) -> None:
    """Raise if ``arr`` contains NaN or Inf, saying how many entries and where the first one is."""
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.argwhere(~finite)
        first = tuple(int(i) for i in bad[0]) if arr.ndim else ()
        raise InvalidInputError(
            f"{name} contains {len(bad)} NaN/Inf entr{'y' if len(bad) == 1 else 'ies'} "
            f"(first at index {first}); pass finite values.")


def check_scalar(value: Any, name: str, *, low: float | None = None, high: float | None = None,
                 low_inclusive: bool = True, high_inclusive: bool = True) -> float:
    """Return ``value`` as a finite float inside the given interval."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        arr = to_numpy(value)
        if arr.ndim != 0 or not np.issubdtype(arr.dtype, np.number):
            raise InvalidInputError(f"{name} must be a real number; got {value!r}.")
        value = arr.item()
    value = float(value)
    if not np.isfinite(value):
        raise InvalidInputError(f"{name} must be finite; got {value}.")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        op = ">=" if low_inclusive else ">"
        raise InvalidInputError(f"{name} must be {op} {low}; got {value}.")
    if high is not None and (value > high or (value == high and not high_inclusive)):
        op = "<=" if high_inclusive else "<"
        raise InvalidInputError(f"{name} must be {op} {high}; got {value}.")
    return value


def check_int(value: Any, name: str, *, minimum: int | None = None) -> int:
    """Return ``value`` as an int, at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInputError(f"{name} must be an integer; got {value!r}.")
    value = int(value)
    if minimum is not None and value < minimum:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}; got {value}.")
    return value


def check_matrix(value: Any, name: str) -> np.ndarray:
    """A finite, non-empty 2-D float64 matrix."""
    arr = as_float_array(value, name, ndim=2)
    if arr.size == 0:
        raise InvalidInputError(f"{name} must be a non-empty matrix; got shape {arr.shape}.")
    return arr


def check_observations(y: Any, dim: int, name: str = "y") -> tuple[np.ndarray, bool]:
    """Validate one observation of shape ``(dim,)`` or a batch ``(batch, dim)``.

    Returns
    -------
    Y : ndarray, shape (batch, dim)
        float64 copy-free view of the observations as a batch.
    single : bool
        Whether the input was a single observation (the caller squeezes its result back).
    """
    arr = to_numpy(y)
    if arr.ndim not in (1, 2):
        raise InvalidInputError(
            f"{name} must have shape ({dim},) for one instance or (batch, {dim}) for a batch; "
            f"got shape {arr.shape}.")
    if arr.shape[-1] != dim:
        raise InvalidInputError(
            f"{name} has {arr.shape[-1]} entries per instance but the problem expects {dim} "
            f"(the number of rows of A); got shape {arr.shape}.")
    if arr.ndim == 2 and arr.shape[0] == 0:
        raise InvalidInputError(f"{name} is an empty batch (shape {arr.shape}); pass at least one instance.")
    arr = as_float_array(arr, name)
    single = arr.ndim == 1
    return (arr[None, :] if single else arr), single
