"""Saving and loading trained models with their configuration."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInputError, MissingFileError
from .base import UnfoldedNetwork

FORMAT = "unfoldtheory.model/1"


def _registry() -> dict[str, type]:
    from . import MODELS

    return {cls.__name__: cls for cls in MODELS}


def _encode(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.tensor(np.asarray(value, dtype=np.float64))  # a copy: read-only arrays are fine
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.numpy()
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    return value


def save(model: UnfoldedNetwork, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Save ``model`` (class, constructor configuration, weights) and optional JSON-like ``metadata`` (e.g.
    the training history) to ``path``, loadable with :func:`load` without arbitrary code execution."""
    if not isinstance(model, UnfoldedNetwork):
        raise InvalidInputError(
            f"{type(model).__name__} is not a zoo model: save() stores a zoo class and its configuration so that "
            "load() can rebuild it without running code. For your own module save its weights with "
            "torch.save(model.state_dict(), 'weights.pt') (or a torch.export archive with "
            "torch.export.save(torch.export.export(model, (y,)), 'model.pt2')); `unfoldtheory bounds` reads both "
            "(module.py:factory --weights weights.pt, or model.pt2).")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": FORMAT, "class": type(model).__name__, "config": _encode(model.config()),
                "dtype": str(model.dtype).replace("torch.", ""), "state_dict": state,
                "metadata": _encode(metadata or {})}, path)


def load(path: str | os.PathLike, device: Any = None, dtype: torch.dtype | None = None) -> UnfoldedNetwork:
    """Load a model written by :func:`save`.  ``dtype`` defaults to the saved one; ``device`` to CUDA when
    available.  A file that is not a saved unfoldtheory model raises :class:`InvalidInputError`.  The saved
    ``metadata`` is available as ``model.metadata``."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise MissingFileError(f"path {os.fspath(path)!r} does not exist; pass the file written by "
                                "unfoldtheory.models.save(model, path).") from None
    except IsADirectoryError:
        raise InvalidInputError(f"path {os.fspath(path)!r} is a directory; pass the model file written by "
                                "unfoldtheory.models.save(model, path).") from None
    except Exception as exc:  # noqa: BLE001 - corrupt, truncated or foreign file
        text = str(exc)
        if "WeightsUnpickler error:" in text:  # torch's advice to load unsafely is deliberately not repeated
            text = text.split("WeightsUnpickler error:", 1)[1]
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        detail = lines[0].split(". ")[0] if lines else type(exc).__name__
        raise InvalidInputError(
            f"{os.fspath(path)!r} is not a readable unfoldtheory model file: it is corrupt, truncated, or was not "
            f"written by unfoldtheory.models.save (loading it safely failed: {detail[:160]}).") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise InvalidInputError(f"{os.fspath(path)!r} is not an unfoldtheory model file (format {FORMAT!r} "
                                "expected); save models with unfoldtheory.models.save.")
    cls = _registry().get(blob.get("class"))
    if cls is None:
        raise InvalidInputError(f"{os.fspath(path)!r} holds an unknown model class {blob.get('class')!r}.")
    dtype = dtype or getattr(torch, blob.get("dtype", "float32"))
    model = cls._from_config(_decode(blob["config"]), device=device, dtype=dtype)
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        raise InvalidInputError(f"{os.fspath(path)!r}: the weights do not match the configuration ({exc}).") from None
    model.metadata = _decode(blob.get("metadata", {}))
    return model
