"""Common machinery of unfolded networks: input validation, devices, ``return_all``, the form hook."""

from __future__ import annotations

from collections import deque
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

    Inputs are converted to the model's dtype and device: a float64 array given to a float32 model (the
    default) is rounded to float32, as torch's own layers would require, and the output is float32.  This is
    deliberate and documented rather than warned about (numpy arrays are float64 by default, so a warning would
    fire on nearly every call); build the model with ``dtype=torch.float64`` to compute in double precision.
    Certificates never depend on it: they read the weights and run in float64.
    """

    #: design paradigm (docs/design.md §1): 0 classical, 1 learned hyperparameters, 2 learned objective
    #: parameters, 3 learned correction terms, 4 DNN inductive bias
    paradigm: int = 0
    #: names of the parameters whose leading dimension indexes the layer (size num_layers, or 1 when tied);
    #: layer-wise training trains slice k of each of them in stage k
    per_layer: tuple[str, ...] = ()
    #: parameters kept >= 0 by training (thresholds)
    nonnegative: tuple[str, ...] = ("theta",)

    def __init__(self, m: int, n: int, num_layers: int, A: Any = None, device: Any = None,
                 dtype: torch.dtype | None = None):
        super().__init__()
        self._config: dict[str, Any] = {}
        self.m, self.n = check_int(m, "m", minimum=1), check_int(n, "n", minimum=1)
        self.num_layers = check_int(num_layers, "num_layers", minimum=1)
        self.check_inputs = True
        dev, dt = resolve_device(device), resolve_dtype(dtype)
        if A is not None:
            A = check_matrix(A, "A")
            if A.shape != (self.m, self.n):
                raise InvalidInputError(f"A must have shape ({self.m}, {self.n}); got {A.shape}.")
            A = torch.tensor(np.array(A), dtype=dt, device=dev)
        self.register_buffer("A", A)
        # a zero-size buffer records the device and dtype even for models without A
        self.register_buffer("_anchor", torch.zeros(0, dtype=dt, device=dev), persistent=False)

    def _record_config(self, **config: Any) -> None:
        """Remember the constructor arguments (numpy arrays, numbers, strings) for :func:`save`."""
        self._config = dict(config)

    @classmethod
    def _from_config(cls, config: dict[str, Any], device: Any = None, dtype: torch.dtype | None = None):
        """Rebuild the architecture from :meth:`config` (used by :func:`unfoldtheory.models.load`)."""
        return cls(**config, device=device, dtype=dtype)

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this architecture (weights come from the state dict)."""
        return dict(self._config)

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    @property
    def dtype(self) -> torch.dtype:
        return self._anchor.dtype

    def extra_repr(self) -> str:
        return f"m={self.m}, n={self.n}, num_layers={self.num_layers}, dtype={self.dtype}, device={self.device}"

    # ------------------------------------------------------------------ input handling
    def _input_spec(self) -> tuple[str, tuple[int, ...], str]:
        """Name, shape of one instance and a hint, for validating inputs (RPCA overrides it)."""
        return "y", (self.m,), " (m = rows of A)"

    def _prepare(self, y: Any) -> tuple[torch.Tensor, bool]:
        name, inst, hint = self._input_spec()
        if isinstance(y, torch.Tensor):
            shape = tuple(y.shape)
        else:
            y = as_float_array(y, name)
            shape = y.shape
        if len(shape) not in (len(inst), len(inst) + 1) or tuple(shape[-len(inst):]) != inst:
            one = f"({inst[0]},)" if len(inst) == 1 else str(inst)
            raise InvalidInputError(f"{name} must have shape {one} or (batch, {', '.join(map(str, inst))})"
                                    f"{hint}; got shape {shape}.")
        if len(shape) > len(inst) and shape[0] == 0:
            raise InvalidInputError(f"{name} is an empty batch (shape {shape}); pass at least one instance.")
        Y = torch.as_tensor(y, dtype=self.dtype, device=self.device)
        if self.check_inputs and not torch.isfinite(Y).all():
            raise InvalidInputError(f"{name} contains NaN/Inf entries; pass finite observations.")
        single = Y.ndim == len(inst)
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
        x = deque(self._iterate(Y), maxlen=1)[0]  # the last layer, without keeping the others
        return x[0] if single else x

    # ------------------------------------------------------------------ analysis
    def form(self):
        """The analysis form of the network (:class:`unfoldtheory.form.Form`)."""
        raise NotRepresentableError(f"{type(self).__name__} does not provide an analysis form.")

    @staticmethod
    def _np(t: torch.Tensor) -> np.ndarray:
        return t.detach().to("cpu", torch.float64).numpy()

    def _tensor(self, value: Any) -> torch.Tensor:
        return torch.tensor(np.array(value, dtype=np.float64), dtype=self.dtype, device=self.device)

    def _check_thresholds(self, thetas: list[np.ndarray], name: str = "theta") -> None:
        for k, t in enumerate(thetas):
            if (np.asarray(t) < 0).any():
                raise InvalidInputError(
                    f"layer {k + 1} has a negative threshold {name} (min {np.min(t):g}); the soft threshold is "
                    "then discontinuous and the network has no analysis form. Clamp thresholds to >= 0 "
                    "during training (the training API does).")


def identity_matrix(n: int):
    """A sparse identity (the form keeps identity edges sparse)."""
    import scipy.sparse as sp

    return sp.identity(n, format="csr")


def chain_form(m: int, W1: list, W2: list, theta: list, name: str):
    """Form of the recursion ``x_k = soft(W2_k x_{k-1} + W1_k y, theta_k)``, ``x_0 = 0`` (block k = layer k).

    Shared by every LISTA-type model (ISTA, LISTA, LISTA-CP, ALISTA, TiLISTA, learned-step ISTA).
    """
    from ..form import Block, Form, SoftThreshold

    n = W1[0].shape[0]
    blocks = [Block(activation=SoftThreshold(theta[k], size=n), B=W1[k],
                    inputs={} if k == 0 else {k - 1: W2[k]}, layer=k + 1, name=f"layer{k + 1}")
              for k in range(len(W1))]
    eye = identity_matrix(n)
    return Form(m, blocks, output={len(W1) - 1: eye}, layer_outputs=[{k: eye} for k in range(len(W1))],
                name=name)
