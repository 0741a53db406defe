"""One model protocol for plain torch modules: :func:`adapt` (docs/your_model.md §6)."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InvalidInputError


def supports_return_all(model: Any) -> bool:
    """Whether ``model.forward`` takes ``return_all`` (the zoo's protocol) and the model has ``num_layers``."""
    if not isinstance(model, nn.Module) or not hasattr(model, "num_layers"):
        return False
    try:
        return "return_all" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


class AdaptedModel(nn.Module):
    r"""A plain module ``forward(y) -> x`` seen through the zoo's protocol.

    ``forward(y, return_all=False)`` accepts one observation (m,) or a batch (batch, m), as a torch tensor or
    a numpy array, converts it to the module's dtype and device and returns :math:`x_K` with the matching
    leading shape.  ``return_all=True`` returns :math:`[x_1, \dots, x_K]` read from the extracted analysis
    form (:func:`unfoldtheory.form.extract`), evaluated in float64 and converted back (not differentiable),
    except the last entry, which is the module's own output.  The declarations read by
    :func:`unfoldtheory.testing.check_architecture` (``classical_problem``, ``with_layers``, ``no_gradient``,
    ...) are those of the module.  ``num_layers``, ``m``, ``n`` and :meth:`form` come from the
    extracted form, which is re-extracted when the module's weights change.
    """

    def __init__(self, module: nn.Module, input_dim: int | None = None):
        super().__init__()
        from ..form import infer_input_dim

        self.module = module
        m = input_dim if input_dim is not None else infer_input_dim(module)
        if m is None:
            raise InvalidInputError(
                f"cannot infer the input dimension of {type(module).__name__}; pass input_dim=m "
                "(ut.models.adapt(model, input_dim=m)).")
        self.m = int(m)
        self.n = self.form().output_dim
        self.check_inputs = True

    def form(self):
        """The extracted analysis form (cached while the weights are unchanged)."""
        from ..form import require_form

        return require_form(self.module, input_dim=self.m)

    @property
    def num_layers(self) -> int:
        return self.form().num_layers

    def _anchor(self) -> torch.Tensor | None:
        return next((t for t in list(self.module.parameters()) + list(self.module.buffers())
                     if t.is_floating_point()), None)

    @property
    def dtype(self) -> torch.dtype:
        a = self._anchor()
        return torch.get_default_dtype() if a is None else a.dtype

    @property
    def device(self) -> torch.device:
        a = self._anchor()
        return torch.device("cpu") if a is None else a.device

    def _prepare(self, y: Any) -> tuple[torch.Tensor, bool]:
        if not isinstance(y, torch.Tensor):
            y = torch.as_tensor(np.asarray(y, dtype=np.float64))
        if y.ndim not in (1, 2) or y.shape[-1] != self.m:
            raise InvalidInputError(f"y must have shape ({self.m},) or (batch, {self.m}); got {tuple(y.shape)}.")
        if self.check_inputs and not torch.isfinite(y).all():
            raise InvalidInputError("y contains NaN/Inf entries; pass finite observations.")
        single = y.ndim == 1
        Y = y.to(device=self.device, dtype=self.dtype)
        return (Y.unsqueeze(0) if single else Y), single

    def forward(self, y: Any, return_all: bool = False):
        Y, single = self._prepare(y)
        out = self.module(Y)
        if return_all:
            outs = self.form().evaluate(Y.detach().to("cpu", torch.float64).numpy(), return_all=True)[:-1]
            res = [torch.as_tensor(o, dtype=out.dtype, device=out.device) for o in outs] + [out]
            return [r[0] for r in res] if single else res
        return out[0] if single else out

    # declarations read by unfoldtheory.testing (classical_problem, with_layers, ...) come from the module
    _FORWARDED = ("classical_problem", "classical_algorithm", "fixed_point_layer", "convergence_rate",
                  "declared_properties")

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            module = super().__getattr__("module")
            if name in AdaptedModel._FORWARDED:
                return getattr(module, name)
            if name == "with_layers" and callable(getattr(module, "with_layers", None)):
                return lambda num_layers: adapt(module.with_layers(num_layers), input_dim=self.m)
            if name == "no_gradient" and getattr(module, "no_gradient", None) is not None:
                return tuple(f"module.{n}" for n in module.no_gradient)
            raise

    def extra_repr(self) -> str:
        return f"m={self.m}, n={self.n}, num_layers={self.num_layers} (extracted form)"


def adapt(model: Any, input_dim: int | None = None) -> nn.Module:
    """``model`` itself if it already follows the zoo's protocol (``forward(y, return_all=...)`` and
    ``num_layers``), else an :class:`AdaptedModel` around it.  Analyses that take a model call this, so any
    module mapping (batch, m) to (batch, n) is accepted."""
    if supports_return_all(model) or isinstance(model, AdaptedModel):
        return model
    if not isinstance(model, nn.Module):
        raise InvalidInputError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    # a subclass named after the user's class, so that messages name their model
    cls = _ADAPTED.setdefault(type(model), type(f"{type(model).__name__}[adapted]", (AdaptedModel,), {}))
    return cls(model, input_dim=input_dim)


_ADAPTED: dict = {}
