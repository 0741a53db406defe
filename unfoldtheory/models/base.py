"""Common machinery of unfolded networks: input validation, devices, ``return_all``, the form hook."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from .._device import resolve_device, resolve_dtype
from .._validation import as_float_array, check_int, check_matrix
from ..errors import InvalidInputError, NotRepresentableError


class UnfoldedNetwork(nn.Module):
    r"""Base class of the unfolded networks: K layers mapping an observation ``y`` to estimates
    :math:`x_1, \dots, x_K`.

    Subclasses implement :meth:`_iterate` (yield :math:`x_1, \dots, x_K` for a batch) and, where the layers are
    representable, :meth:`form`.

    ``forward(y)`` accepts one observation (m,) or a batch (batch, m), as a torch tensor or a numpy array,
    and returns :math:`x_K` with the matching leading shape; ``forward(y, return_all=True)`` returns the list
    :math:`[x_1, \dots, x_K]`.  Inputs are validated (shape, NaN/Inf) unless ``check_inputs`` is set to
    ``False`` (e.g. inside a training loop that already checked its data).
    """

    def __init__(self, m: int, n: int, num_layers: int, A: Any = None, device: Any = None,
                 dtype: torch.dtype | None = None):
        super().__init__()
        self.m, self.n = check_int(m, "m", minimum=1), check_int(n, "n", minimum=1)
        self.num_layers = check_int(num_layers, "num_layers", minimum=1)
        self.check_inputs = True
        dev, dt = resolve_device(device), resolve_dtype(dtype)
        if A is not None:
            A = check_matrix(A, "A")
            if A.shape != (self.m, self.n):
                raise InvalidInputError(f"A must have shape ({self.m}, {self.n}); got {A.shape}.")
            A = torch.as_tensor(A, dtype=dt, device=dev)
        self.register_buffer("A", A)
        # a zero-size buffer records the device and dtype even for models without A
        self.register_buffer("_anchor", torch.zeros(0, dtype=dt, device=dev), persistent=False)

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    @property
    def dtype(self) -> torch.dtype:
        return self._anchor.dtype

    def extra_repr(self) -> str:
        return f"m={self.m}, n={self.n}, num_layers={self.num_layers}, dtype={self.dtype}, device={self.device}"

    # ------------------------------------------------------------------ input handling
    def _prepare(self, y: Any) -> tuple[torch.Tensor, bool]:
        if isinstance(y, torch.Tensor):
            shape = tuple(y.shape)
        else:
            y = as_float_array(y, "y")
            shape = y.shape
        if len(shape) not in (1, 2) or shape[-1] != self.m:
            raise InvalidInputError(
                f"y must have shape ({self.m},) or (batch, {self.m}) (m = rows of A); got shape {shape}.")
        if len(shape) == 2 and shape[0] == 0:
            raise InvalidInputError(f"y is an empty batch (shape {shape}); pass at least one instance.")
        Y = torch.as_tensor(y, dtype=self.dtype, device=self.device)
        if self.check_inputs and not torch.isfinite(Y).all():
            raise InvalidInputError("y contains NaN/Inf entries; pass finite observations.")
        single = Y.ndim == 1
        return (Y.unsqueeze(0) if single else Y), single

    # ------------------------------------------------------------------ forward
    def _iterate(self, y: torch.Tensor) -> Iterator[torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, y: Any, return_all: bool = False):
        """Run the K layers on ``y``; return ``x_K``, or ``[x_1, ..., x_K]`` with ``return_all=True``."""
        Y, single = self._prepare(y)
        if return_all:
            outs = list(self._iterate(Y))
            return [o[0] for o in outs] if single else outs
        for x in self._iterate(Y):
            pass
        return x[0] if single else x

    # ------------------------------------------------------------------ analysis
    def form(self):
        """The analysis form of the network (:class:`unfoldtheory.form.Form`)."""
        raise NotRepresentableError(f"{type(self).__name__} does not provide an analysis form.")

    @staticmethod
    def _np(t: torch.Tensor) -> np.ndarray:
        return t.detach().to("cpu", torch.float64).numpy()
