r"""What a model declares about itself, read by :func:`~unfoldtheory.testing.check_architecture`.

A model may define any of these optional hooks (all are optional; none is needed for the generic properties):

``classical_problem() -> Lasso | None``
    "At initialisation this network runs a classical algorithm (ISTA, FISTA, ADMM, ...) for this LASSO": its
    minimisers are fixed points of every layer, and deep unrolling converges to them.  Setting the attribute
    to ``None`` on an instance (``net.classical_problem = None``) withdraws a declaration (e.g. for a trained
    zoo model).
``fixed_point_layer(k, x, y) -> x_k``
    Layer ``k`` (1-based) applied with every state it reads set to the fixed point built from ``x``
    (numpy float64, ``x``: (batch, n), ``y``: (batch, m)).  Default: derived from the analysis form, with each
    block of layer k-1 that layer k reads set to ``x`` (chain forms, stacked copies as in FISTA,
    correction sub-blocks).
``with_layers(num_layers) -> model``
    A fresh copy at initialisation with another depth (deep-unrolling convergence).  Zoo models rebuild from
    their config.
``convergence_rate(num_layers, x_star) -> ndarray``
    A proven bound on :math:`F(x_K) - F^\star` per instance (``x_star``: (batch, n)) used by the deep-convergence
    check; zoo ISTA-type models use :math:`\|x^\star\|^2/(2\gamma K)` and FISTA :math:`2L\|x^\star\|^2/(K+1)^2`
    (Beck & Teboulle, SIAM J. Imaging Sci. 2009, Thms 3.1 and 4.4).
``declared_properties``
    A tuple of names of built-in properties (``"nonexpansive_layers"``: every layer that reads the state is
    1-Lipschitz in it for fixed ``y``; ``"monotone_objective"``: :math:`F(x_k)` of the classical problem does
    not increase with k), or a dict ``{name: check}`` where ``check(model, instance)`` raises
    ``AssertionError`` when the property fails (``instance`` is a
    :class:`~unfoldtheory.testing.strategies.ProblemInstance`); ``None`` as a check selects the built-in one.
``no_gradient``
    Names of trainable parameters allowed to receive no gradient (e.g. LISTA's ``W2`` with one layer).

For the models of :mod:`unfoldtheory.models` (which define none of these hooks) :func:`declarations` supplies the
facts of the zoo: ISTA-initialised models (ISTA, LISTA, LISTA-CP, TiLISTA, learned-step ISTA, the corrected and
learned-prox ISTA), unfolded FISTA and unfolded ADMM declare their LASSO; ISTA with a step :math:`\gamma L < 2`
declares nonexpansive layers and a monotone objective; ALISTA, HyperLISTA, support selection and RPCA declare
no classical reduction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..errors import InvalidInputError, NotRepresentableError

__all__ = ["Declarations", "declarations", "form_layer_map", "BUILTIN_DECLARED"]

#: names of the built-in declared properties
BUILTIN_DECLARED = ("nonexpansive_layers", "monotone_objective")

_MISSING = object()


@dataclass
class Declarations:
    r"""The declarations of one model (see the module docstring).

    Attributes
    ----------
    classical_problem : Lasso or None
        The LASSO whose minimisers are fixed points at initialisation (None: no classical reduction).
    algorithm : str
        Name of the classical algorithm (for messages).
    layer : callable (k, x, y) -> x_k, or None
        Layer map with the state at the fixed point built from ``x`` (numpy float64).
    state_layers : tuple of int
        The layers (1-based) that read the state, where the fixed-point check applies.
    with_layers : callable (num_layers) -> model, or None
        Builds a deeper copy at initialisation.
    rate : callable (num_layers, x_star) -> ndarray, or None
        A proven bound on :math:`F(x_K) - F^\star` per instance (e.g. ISTA's :math:`\|x^\star\|^2/(2\gamma K)`);
        without it, deep convergence is checked by the gap still shrinking (a heuristic).
    properties : dict {name: check or None}
        Declared properties; ``None`` selects the built-in check of that name.
    no_gradient : tuple of str
        Parameters allowed to receive no gradient.
    reason : str
        Why there is no classical reduction (when ``classical_problem`` is None).
    source : str
        ``"model"`` (hooks defined by the model), ``"zoo"`` (supplied for a zoo model) or ``"none"``.
    """

    classical_problem: Any = None
    algorithm: str = ""
    layer: Callable | None = None
    state_layers: tuple = ()
    with_layers: Callable | None = None
    rate: Callable | None = None
    properties: dict = field(default_factory=dict)
    no_gradient: tuple = ()
    reason: str = ""
    source: str = "none"


def _chain_like_blocks(form, k: int):
    """Indices of the blocks of layer k (1-based) and of the earlier blocks they read."""
    own = [i for i, b in enumerate(form.blocks) if b.layer == k]
    if not own:
        raise NotRepresentableError(f"the form has no block tagged with layer {k}.")
    reads = sorted({j for i in own for j in form.blocks[i].inputs if j not in own})
    return own, reads


def form_layer_map(form, k: int, x: np.ndarray, y: np.ndarray, overrides: dict | None = None) -> np.ndarray:
    """Evaluate layer ``k`` (1-based) of an analysis form with every earlier block it reads set to ``x``
    (or to ``overrides[j](x, y)`` for block ``j``), and return its readout ``layer_outputs[k-1]``.

    This is the layer map of chain forms (ISTA, LISTA, LISTA-CP, ...) and, at a fixed point where every state
    equals ``x``, of stacked forms such as FISTA's (state and copy of the previous state)."""
    from ..form import _apply

    if not 1 <= k <= form.num_layers:
        raise InvalidInputError(f"k must be a layer in 1..{form.num_layers}; got {k}.")
    X, Y = np.atleast_2d(np.asarray(x, float)), np.atleast_2d(np.asarray(y, float))
    own, reads = _chain_like_blocks(form, k)
    ws: dict[int, np.ndarray] = {}
    for j in reads:
        if overrides and j in overrides:
            ws[j] = overrides[j](X, Y)
        elif form.blocks[j].size == X.shape[1]:
            ws[j] = X
        else:
            raise NotRepresentableError(
                f"layer {k} reads block {form.blocks[j].name!r} of size {form.blocks[j].size}, which is not a copy "
                f"of the state (size {X.shape[1]}); define fixed_point_layer(k, x, y) on the model.")
    for i in own:
        blk = form.blocks[i]
        ws[i] = blk.activation(blk.preactivation(ws, Y))
    readout = form.layer_outputs[k - 1]
    return sum(_apply(M, ws[j]) for j, M in readout.items())


def _form_layer(model, overrides_fn=None):
    def layer(k, x, y):
        form = model.form()
        return form_layer_map(form, k, x, y, None if overrides_fn is None else overrides_fn(form, k))
    return layer


def _np(t) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def _zoo(model) -> Declarations:
    from .. import models as zm
    from ..problems import Lasso

    name = type(model).__name__
    cfg = model.config() if hasattr(model, "config") else {}
    K = int(getattr(model, "num_layers", 1))
    decl = Declarations(source="zoo", state_layers=tuple(range(2, K + 1)))
    if isinstance(model, zm.LISTA) and K == 1:
        decl.no_gradient = ("W2",)

    def rebuild(num_layers):
        return type(model)._from_config({**cfg, "num_layers": int(num_layers)}, device=model.device,
                                        dtype=model.dtype)

    if isinstance(model, zm.UnfoldedRPCA):
        decl.reason = "UnfoldedRPCA solves robust PCA (no LASSO); no classical LASSO reduction is declared."
        return decl
    if isinstance(model, (zm.ALISTA, zm.HyperLISTA)):
        decl.reason = (f"{name} is initialised with analytic weights (not a classical algorithm for a LASSO), so "
                       "no fixed point of a LASSO is declared.")
        return decl
    if getattr(model, "support_selection", None) is not None:
        decl.reason = (f"{name} uses support selection: LASSO minimisers are not fixed points of its layers "
                       "(the selected entries bypass the shrinkage).")
        return decl
    if cfg.get("from_weights"):
        decl.reason = f"{name} was built from given weights; it declares no classical algorithm."
        return decl
    lam = getattr(model, "lam", None) if isinstance(model, zm.ISTA) else cfg.get("lam")
    if lam is None or getattr(model, "A", None) is None:
        decl.reason = f"{name} has no dictionary/LASSO weight recorded; no classical reduction declared."
        return decl
    if isinstance(model, zm.LearnedProxISTA) and cfg.get("width", model.n) < model.n:
        decl.reason = "LearnedProxISTA with width < n is not ISTA at initialisation."
        return decl
    problem = Lasso(_np(model.A), float(lam))
    decl.classical_problem = problem
    decl.with_layers = rebuild
    L = problem.L
    if isinstance(model, zm.UnfoldedFISTA):
        decl.algorithm = "FISTA"
        decl.layer = _form_layer(model)
        # Beck & Teboulle (2009), Thm 4.4, step 1/L, x_0 = 0
        decl.rate = lambda K_, X: 2 * L * np.sum(X ** 2, axis=1) / (K_ + 1) ** 2
    elif isinstance(model, zm.UnfoldedADMM):
        decl.algorithm = "ADMM"

        def overrides(form, k):
            # the scaled dual state u = A^T (y - A x) / rho at the fixed point z = x
            A = problem.A
            rho = float(np.exp(_np(model.log_rho)[k - 1]))
            out = {}
            for j in _chain_like_blocks(form, k)[1]:
                if form.blocks[j].name.startswith("u"):
                    out[j] = lambda X, Y: (Y - X @ A.T) @ A / rho
            return out

        decl.layer = _form_layer(model, overrides)
    else:
        decl.algorithm = "ISTA"
        decl.layer = _form_layer(model)
        if isinstance(model, zm.ISTA):
            step = model.step
        elif isinstance(model, zm.LISTA) and cfg.get("step") is not None:
            step = float(cfg["step"])
        else:
            step = 1.0 / L
        if step * L <= 1 + 1e-12:
            # Beck & Teboulle (2009), Thm 3.1: F(x_K) - F* <= ||x_0 - x*||^2 / (2 step K) for step <= 1/L
            decl.rate = lambda K_, X: np.sum(X ** 2, axis=1) / (2 * step * K_)
    if isinstance(model, zm.ISTA) and model.step * model.L < 2:
        decl.properties = {"nonexpansive_layers": None, "monotone_objective": None}
    return decl


def declarations(model: Any) -> Declarations:
    """Collect the declarations of ``model``: its own hooks (see the module docstring), completed by the facts of
    the zoo for models of :mod:`unfoldtheory.models`.  A hook defined on the model always wins."""
    from ..models import UnfoldedNetwork

    if not isinstance(model, torch.nn.Module):
        raise InvalidInputError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    decl = _zoo(model) if isinstance(model, UnfoldedNetwork) else Declarations(
        reason=f"{type(model).__name__} declares no classical algorithm (define classical_problem()).")
    own = False
    cp = getattr(model, "classical_problem", _MISSING)
    if cp is not _MISSING:
        own = True
        problem = cp() if callable(cp) else cp
        decl.classical_problem = problem
        if problem is None:
            decl.reason = f"{type(model).__name__}.classical_problem is None: no classical reduction declared."
            decl.layer = decl.with_layers = None
        else:
            decl.algorithm = decl.algorithm or getattr(model, "classical_algorithm", "declared algorithm")
            if decl.layer is None:
                decl.layer = _form_layer(model)
            if not decl.state_layers:
                K = int(getattr(model, "num_layers", 1))
                decl.state_layers = tuple(range(2, K + 1))
    fpl = getattr(model, "fixed_point_layer", None)
    if callable(fpl):
        own = True
        decl.layer = fpl
    wl = getattr(model, "with_layers", None)
    if callable(wl):
        own = True
        decl.with_layers = wl
    rate = getattr(model, "convergence_rate", None)
    if callable(rate):
        own = True
        decl.rate = rate
    props = getattr(model, "declared_properties", None)
    if props is not None:
        own = True
        if isinstance(props, str):
            props = (props,)
        if isinstance(props, dict):
            decl.properties = dict(props)
        else:
            decl.properties = {str(p): None for p in props}
        for pname, check in decl.properties.items():
            if check is None and pname not in BUILTIN_DECLARED:
                raise InvalidInputError(
                    f"{type(model).__name__}.declared_properties names {pname!r}, which is not a built-in "
                    f"property {BUILTIN_DECLARED}; give a check: declared_properties = {{{pname!r}: "
                    "callable(model, instance)}.")
    ng = getattr(model, "no_gradient", None)
    if ng is not None:
        own = True
        decl.no_gradient = tuple((ng,) if isinstance(ng, str) else ng)
    if own:
        decl.source = "model" if decl.source == "none" else "model+zoo"
    return decl
