"""The analysis form of an unrolled network (:mod:`._core`) and its automatic extraction from a plain torch
module (:func:`extract`, docs/your_model.md)."""

from . import _core
from ._core import (
    SUPPORTED_ACTIVATIONS,
    Activation,
    Block,
    Clip,
    Form,
    Identity,
    LeakyReLU,
    ReLU,
    SoftThreshold,
    require_form,
)
from ._extract import extract, infer_input_dim

# helpers shared inside the package (kept importable from unfoldtheory.form as before the split)
_apply, _check_edge, _dense, _is_sparse, _vector = (_core._apply, _core._check_edge, _core._dense,
                                                    _core._is_sparse, _core._vector)

__all__ = ["SUPPORTED_ACTIVATIONS", "Activation", "Block", "Clip", "Form", "Identity", "LeakyReLU", "ReLU",
           "SoftThreshold", "extract", "infer_input_dim", "require_form"]
