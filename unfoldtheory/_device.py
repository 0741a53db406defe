"""Device and dtype defaults: CUDA when available, float32 for models, float64 for analyses."""

from __future__ import annotations

import torch

from .errors import InvalidInputError

_DTYPES = {torch.float32, torch.float64}


def default_device() -> torch.device:
    """``cuda`` when a GPU is available, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return default_device()
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidInputError(f"device must be a torch device such as 'cpu' or 'cuda'; got {device!r}.") from None


def resolve_dtype(dtype: torch.dtype | None) -> torch.dtype:
    dtype = torch.float32 if dtype is None else dtype
    if dtype not in _DTYPES:
        raise InvalidInputError(f"dtype must be torch.float32 or torch.float64; got {dtype!r}.")
    return dtype
