r"""Automatic analysis form of a plain torch module (docs/your_model.md).

:func:`extract` runs ``model.forward`` once, in float64 on a copy, under a :class:`TorchDispatchMode` that
sees every ATen operation after torch's own decompositions (``F.linear``, ``@``, ``einsum``, ``reshape`` all
arrive as a few dozen core ops).  Next to the real values it carries a *symbolic* value for every tensor that
depends on the input ``y``:

* an affine expression :math:`T = \sum_v C_v v + c` in the variables ``y`` and the block activations
  :math:`w_j` found so far.  Each coefficient :math:`C_v` is stored as a tensor laid out like ``T`` with the
  batch axis replaced by the variable's coordinates, so a linear operation that acts row by row is applied
  to the coefficients with the *same* ATen call (docs/your_model.md §2);
* a lazy elementwise expression :math:`f(R)` of one affine *root* :math:`R` (``sign(z) * relu(|z| - t)``,
  ``z - clamp(z, -t, t)``, ``where(|z| > t, z - t sign(z), 0)``, ...), kept with the candidate kinks of
  :math:`f`, and recognised as one activation when a non-elementwise operation reads it (:mod:`._pl`).

The recognised activation becomes a :class:`~unfoldtheory.form.Block`; its output is again affine in the new
block variable, so linear states (momentum, ADMM's dual variable) are folded into the edges and never become
blocks.  Any other operation on an input-dependent tensor raises
:class:`~unfoldtheory.errors.NotRepresentableError` naming the operation, the module path and the source
line.  The result is trusted only after it reproduces ``model(y)`` in float64 on random and given inputs.

Why a dispatch-mode trace rather than ``torch.fx`` or ``torch.export``: it runs the user's Python as written
(loops, ``if y.dim() == 1``, helper functions, ``nn.ModuleList`` indexing), sees a small normalised ATen
vocabulary instead of every Python-level alias, needs no compilation (a 16-layer, 500-wide LISTA is
extracted in well under a second), and every value is concrete, so a data-dependent branch shows up as a
``.item()``/``bool()`` call on an input-dependent tensor, which is refused.
"""

from __future__ import annotations

import copy
import linecache
import logging
import os
import sys
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInputError, NotRepresentableError
from . import _pl
from ._core import Block, Clip, Form, Identity, LeakyReLU, ReLU, SoftThreshold

log = logging.getLogger(__name__)

__all__ = ["extract", "extract_cached", "infer_input_dim"]

_TORCH_DIR = os.path.dirname(torch.__file__)
_HERE = os.path.dirname(os.path.abspath(__file__))
_TRACE_BATCH = 7

_aten = torch.ops.aten

# operations that only copy, view or reorder (linear, row by row, apply to the coefficients as they are)
_IDENTITY_OPS = {"clone", "contiguous", "alias", "detach", "lift_fresh", "lift_fresh_copy", "_to_copy",
                 "positive", "_conj", "resolve_conj", "resolve_neg"}
_CONSTANT_RESULT = {"zeros_like", "ones_like", "empty_like", "full_like", "new_zeros", "new_ones",
                    "new_empty", "new_full", "isfinite", "isnan", "isinf", "isposinf", "isneginf",
                    "empty_strided", "new_empty_strided"}
_ELEMENTWISE_NONLINEAR = {"relu", "abs", "sign", "sgn", "clamp", "clamp_min", "clamp_max", "hardtanh",
                          "leaky_relu", "softshrink", "where", "gt", "ge", "lt", "le", "eq", "ne", "maximum",
                          "minimum", "mul", "div", "logical_and", "logical_or", "logical_not", "threshold",
                          "heaviside", "fmax", "fmin", "bitwise_and", "bitwise_or", "bitwise_not", "masked_fill",
                          "relu6", "hardshrink", "copysign", "add", "sub", "rsub", "neg", "_to_copy", "clone",
                          "copy", "square", "pow"}
_AFFINE_OPS = {"add", "sub", "rsub", "neg", "mul", "div", "_to_copy", "clone", "copy"}
_REFUSED = {
    "sort": "sorting selects a support from the input (support selection is not continuous)",
    "topk": "top-k selects a support from the input (support selection is not continuous)",
    "argsort": "sorting selects a support from the input",
    "kthvalue": "an order statistic of the input is an instance-dependent threshold",
    "median": "an order statistic of the input is an instance-dependent threshold",
    "argmax": "an index chosen from the input is not continuous",
    "argmin": "an index chosen from the input is not continuous",
    "_linalg_svd": "an SVD (e.g. singular value thresholding) is not an elementwise map",
    "linalg_svd": "an SVD (e.g. singular value thresholding) is not an elementwise map",
    "svd": "an SVD (e.g. singular value thresholding) is not an elementwise map",
    "_linalg_eigh": "an eigendecomposition of an input-dependent matrix is not an elementwise map",
    "any": "a Python branch on a tensor computed from the input is data-dependent control flow",
    "all": "a Python branch on a tensor computed from the input is data-dependent control flow",
    "_local_scalar_dense": "a Python number or branch computed from the input (.item(), bool(), if/while on "
                           "a tensor) is data-dependent control flow",
    "is_nonzero": "a Python branch on a tensor computed from the input is data-dependent control flow",
    "nonzero": "indices computed from the input (support selection) are data-dependent",
    "masked_select": "selecting entries by an input-dependent mask is data-dependent",
    "linalg_vector_norm": "a norm of an input-dependent tensor is not elementwise (input-adaptive scaling "
                          "or thresholds)",
    "norm": "a norm of an input-dependent tensor is not elementwise (input-adaptive scaling or thresholds)",
    "amax": "a maximum over coordinates is an instance-dependent threshold",
    "amin": "a minimum over coordinates is an instance-dependent threshold",
    "max": "a maximum over coordinates is an instance-dependent threshold",
    "min": "a minimum over coordinates is an instance-dependent threshold",
    "sigmoid": "sigmoid is not piecewise linear (the form supports soft threshold, ReLU, leaky ReLU, clip)",
    "tanh": "tanh is not piecewise linear (the form supports soft threshold, ReLU, leaky ReLU, clip)",
    "exp": "exp of an input-dependent tensor is not piecewise linear",
    "log": "log of an input-dependent tensor is not piecewise linear",
    "sqrt": "sqrt of an input-dependent tensor is not piecewise linear",
}

# ---------------------------------------------------------------------------------------------- symbols


class _Sym:
    """Base of the symbolic values; ``shape`` is the real shape, ``bdim`` the position of the batch axis."""

    shape: tuple
    bdim: int


class _Aff(_Sym):
    """Affine value ``sum_v C_v v + bias``; ``coefs[v]`` has the real layout with ``size(v)`` at ``bdim``,
    ``bias`` has 1 there.  ``elem = (root, fn, kinks)`` when the value is an elementwise function of an
    earlier affine root (used to recognise hand-written thresholds)."""

    __slots__ = ("bdim", "bias", "coefs", "elem", "origin", "shape")

    def __init__(self, shape, bdim, coefs, bias, elem=None, origin=None):
        self.shape, self.bdim, self.coefs, self.bias = tuple(shape), int(bdim), coefs, bias
        self.elem, self.origin = elem, origin

    def as_pl(self) -> _PL:
        if self.elem is not None:
            root, fn, kinks = self.elem
            return _PL(root, fn, kinks, self.origin)
        return _PL(self, lambda r: r, [], self.origin)


class _PL(_Sym):
    """Lazy elementwise function ``fn(root)``; ``kinks`` lists arrays (k, d) of candidate kinks in root
    coordinates (a superset of the kinks of ``fn``); ``origin`` is the (op, place) that made it."""

    __slots__ = ("children", "fn", "kinks", "memo", "node", "ops", "origin", "root", "serial")
    _count = 0

    def __init__(self, root, fn, kinks, origin, ops=(), node=None, children=None):
        self.root, self.fn, self.kinks, self.origin, self.ops = root, fn, list(kinks), origin, tuple(ops)
        self.node, self.children, self.memo = node, children or {}, None
        _PL._count += 1
        self.serial = _PL._count

    @property
    def shape(self):
        return self.root.shape

    @property
    def bdim(self):
        return self.root.bdim


def _flat(t: torch.Tensor, bdim: int) -> torch.Tensor:
    """(…, S at bdim, …) -> (S, d)."""
    t = t.movedim(bdim, 0)
    return t.reshape(t.shape[0], -1)


def _unflat(a: torch.Tensor, shape: tuple, bdim: int) -> torch.Tensor:
    """(S, d) -> layout of ``shape`` with S at ``bdim``."""
    rest = list(shape[:bdim]) + list(shape[bdim + 1:])
    return a.reshape(a.shape[0], *rest).movedim(0, bdim)


# ---------------------------------------------------------------------------------------------- tracer


class _Refusal(Exception):
    pass


class _Tracer:
    def __init__(self, batch: int, input_dim: int):
        self.B = batch
        self.m = input_dim
        self.sym: dict[int, tuple[torch.Tensor, _Sym]] = {}
        self.blocks: list[dict] = []
        self.var_size: dict[Any, int] = {"y": input_dim}
        self.records: list[_Aff] = []          # affine values in creation order (layer detection)
        self.module_stack: list[str] = []
        self.error: NotRepresentableError | None = None

    # ------------------------------------------------------------------ places in user code
    def place(self) -> str:
        frame = sys._getframe(1)
        while frame is not None:
            fn = frame.f_code.co_filename
            if not (fn.startswith((_TORCH_DIR, _HERE)) or "<frozen" in fn):
                break
            frame = frame.f_back
        mod = self.module_stack[-1] if self.module_stack else ""
        if frame is None:
            return f"module {mod!r}" if mod else "the model"
        line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
        where = f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        where += f": `{line}`" if line else ""
        return (f"module {mod!r}, " if mod else "") + where

    def refuse(self, op: str, reason: str, place: str | None = None, hint: str | None = None):
        place = place or self.place()
        hint = hint or ("Write the layer with fixed (learned) parameters and elementwise soft threshold / "
                        "ReLU / leaky ReLU / clamp, give the model a form() method, or use analyses that "
                        "do not need the form (lipschitz.lower_bound, robustness.attack).")
        raise _Refusal(NotRepresentableError(
            f"cannot extract an analysis form: operation aten.{op} at {place}: {reason}. {hint}"))

    # ------------------------------------------------------------------ lookup
    def get(self, t):
        if isinstance(t, torch.Tensor):
            hit = self.sym.get(id(t))
            if hit is not None and hit[0] is t:
                return hit[1]
        return None

    def put(self, t: torch.Tensor, s: _Sym):
        self.sym[id(t)] = (t, s)
        if isinstance(s, _Aff):
            self.records.append(s)

    # ------------------------------------------------------------------ constants
    def debatch(self, c: Any, out_ndim: int, out_bdim: int, op: str):
        """A constant operand of an elementwise op, with its batch-aligned axis reduced to size 1."""
        if not isinstance(c, torch.Tensor):
            return c
        ax = out_bdim - (out_ndim - c.ndim)
        if 0 <= ax < c.ndim and c.shape[ax] == self.B and self.B != 1:
            first = c.narrow(ax, 0, 1)
            if not torch.equal(c, first.expand_as(c)):
                self.refuse(op, "a tensor that differs between the instances of the batch enters this "
                                "operation without being computed from the input by torch operations "
                                "(e.g. through numpy, .item() or a Python loop over the batch)")
            return first
        return c

    # ------------------------------------------------------------------ affine algebra
    def aff_zero_like(self, shape, bdim, var):
        s = list(shape)
        s[bdim] = self.var_size[var]
        return torch.zeros(s, dtype=torch.float64)

    def lin_apply(self, a: _Aff, f: Callable[[torch.Tensor], torch.Tensor], out_shape, out_bdim) -> _Aff:
        """A linear (row-by-row) map applied to an affine value."""
        coefs = {v: f(C) for v, C in a.coefs.items()}
        return _Aff(out_shape, out_bdim, coefs, f(a.bias))

    def add(self, a: _Aff | None, b: _Aff | None, out_shape, out_bdim, const=None, alpha=1.0) -> _Aff:
        """``a + alpha * b + const`` (any of them may be missing), broadcast to ``out_shape``."""
        def full(t, S):
            s = list(out_shape)
            s[out_bdim] = S
            return torch.broadcast_to(t, s)
        coefs, bias = {}, None
        for x, w in ((a, 1.0), (b, alpha)):
            if x is None:
                continue
            if x.bdim + (len(out_shape) - len(x.shape)) != out_bdim:
                self.refuse("add", "operands with their batch axes in different positions")
            for v, C in x.coefs.items():
                C = full(C if w == 1.0 else C * w, self.var_size[v])
                coefs[v] = coefs[v] + C if v in coefs else C
            xb = full(x.bias if w == 1.0 else x.bias * w, 1)
            bias = xb if bias is None else bias + xb
        if const is not None:
            bias = bias + const if bias is not None else full(torch.as_tensor(const, dtype=torch.float64), 1)
        return _Aff(out_shape, out_bdim, {v: C.contiguous() for v, C in coefs.items()}, bias.contiguous())

    # ------------------------------------------------------------------ materialisation
    def materialize(self, s: _Sym, op: str) -> _Aff:
        """The affine value of ``s``; a lazy elementwise function becomes block(s), once (memoised).

        A function whose top operation is affine in its operands (``z - u``) is decomposed into its operands
        when one of them is already a block (so a state shared by several updates, like ADMM's ``z``, stays
        one block and ``u = u + x - z`` stays affine in it), or when the function as a whole is not one of
        the recognised activations; otherwise the function as a whole is recognised
        (``z - clamp(z, -t, t)`` is one soft threshold)."""
        if isinstance(s, _Aff):
            return s
        if s.memo is not None:
            return s.memo
        pls = sorted((c for c in s.children.values() if isinstance(c, _PL)), key=lambda c: c.serial)
        if self.decomposable(s):
            leaves, bypass = self.frontier(s)
            if any(c.memo is not None for c in pls) or (not bypass and len(leaves) <= 1):
                res = self.decompose(s, pls)
                if res is not None:
                    return res
        res = self.materialize_whole(s, allow_general=False)
        if res is None and self.decomposable(s):
            res = self.decompose(s, pls)
        if res is None and pls and s.node is not None:
            # two activations in a row (leaky_relu(relu(u) - c)): the inner ones become blocks first
            for c in pls:
                self.materialize(c, s.node[1])
            func, name, args, kwargs, out, place = s.node
            given = {i: (c.memo if isinstance(c, _PL) else c) for i, c in s.children.items()}
            try:
                res = self.materialize(self.elementwise(func, name, args, kwargs, out, place, given=given), name)
            except _Refusal:
                res = None
        if res is None:
            res = self.materialize_whole(s, allow_general=True)
        s.memo = res
        return res

    def decomposable(self, s: _PL) -> bool:
        """Whether the top operation of ``s`` is affine in its symbolic operands."""
        if s.node is None or s.node[1] not in _AFFINE_OPS:
            return False
        if s.node[1] in ("mul", "div"):
            return len(s.children) == 1 and (s.node[1] == "mul" or 0 in s.children)
        return True

    def frontier(self, s: _PL) -> tuple[set, bool]:
        """The lazy functions a decomposition of ``s`` would turn into blocks (not yet materialised, not
        themselves decomposable), and whether an affine operand (a bypass of the root) takes part."""
        leaves, bypass = set(), False
        for c in s.children.values():
            if isinstance(c, _Aff):
                bypass = True
            elif c.memo is None:
                if self.decomposable(c):
                    sub, b = self.frontier(c)
                    leaves |= sub
                    bypass = bypass or b
                else:
                    leaves.add(id(c))
        return leaves, bypass

    def decompose(self, s: _PL, pls: list) -> _Aff | None:
        for c in pls:
            self.materialize(c, s.node[1])
        given = {i: (c.memo if isinstance(c, _PL) else c) for i, c in s.children.items()}
        func, name, args, kwargs, out, place = s.node
        res = self.affine_elementwise(func, name, args, kwargs, out, place, given=given)
        if res is not None:
            res.elem = None
            s.memo = res
            self.records.append(res)
        return res

    def materialize_whole(self, pl: _PL, allow_general: bool) -> _Aff | None:
        R = pl.root
        bd, shape = R.bdim, R.shape
        d = int(np.prod([shape[i] for i in range(len(shape)) if i != bd]))

        def f(P: np.ndarray) -> np.ndarray:
            T = _unflat(torch.from_numpy(np.ascontiguousarray(P)), shape, bd)
            out = pl.fn(T)
            out = torch.as_tensor(out, dtype=torch.float64)
            out = torch.broadcast_to(out, T.shape)
            return _flat(out, bd).numpy()

        kinks = np.concatenate([np.zeros((1, d))] + [k for k in pl.kinks], axis=0)
        pieces = _pl.classify(f, kinks)
        if not allow_general and not pieces.bad and any(k == _pl.GENERAL for k in pieces.kind):
            return None
        if pieces.bad:
            i, why = pieces.bad[0]
            opname, place = pl.origin or ("?", "the model")
            ops = ", ".join(dict.fromkeys(pl.ops)) or opname
            self.refuse(opname, f"the elementwise function built by [{ops}] is, at coordinate {i}, {why}; "
                                "a hard threshold, a mask or a discontinuous/instance-dependent threshold has no "
                                "analysis form", place=place,
                        hint="Use a soft threshold (sign(z) * relu(|z| - t)), ReLU, leaky ReLU or clamp with "
                             "thresholds that are parameters, or give the model a form() method.")
        return self.blocks_from(pieces, R, pl.origin, d)

    def blocks_from(self, pc: _pl.Pieces, R: _Aff, origin, d: int) -> _Aff:
        kinds = pc.kind
        nonaff = {k for k in kinds if k != _pl.AFFINE}
        if nonaff == {_pl.SOFT}:  # affine coordinates of a soft threshold are soft thresholds with t = 0
            for i in np.flatnonzero(kinds == _pl.AFFINE):
                kinds[i] = _pl.SOFT
                pc.p[i], pc.q[i], pc.theta[i] = 1.0, 0.0, 0.0
        groups: dict[tuple, list[int]] = {}
        for i, k in enumerate(kinds):
            key = (k, round(float(pc.ratio[i]), 12)) if k == _pl.LEAKY else (k,)
            groups.setdefault(key, []).append(i)
        Rflat = {v: _flat(C, R.bdim) for v, C in R.coefs.items()}      # (S_v, d)
        Rbias = _flat(R.bias, R.bdim)[0]                                # (d,)
        out_coefs: dict[Any, torch.Tensor] = {}
        out_bias = torch.zeros(d, dtype=torch.float64)
        place = (origin or ("?", ""))[1]
        for key, idx in groups.items():
            idx_t = torch.tensor(idx, dtype=torch.long)
            kind = key[0]
            if kind == _pl.GENERAL:
                self.general_block(pc, idx, Rflat, Rbias, out_coefs, out_bias, place, d)
                kind = _pl.AFFINE
            if kind == _pl.AFFINE:
                a = torch.from_numpy(pc.scale[idx])
                for v, C in Rflat.items():
                    M = torch.zeros_like(C)
                    M[:, idx_t] = C[:, idx_t] * a
                    out_coefs[v] = out_coefs[v] + M if v in out_coefs else M
                out_bias[idx_t] = Rbias[idx_t] * a + torch.from_numpy(pc.offset[idx])
                continue
            n = len(idx)
            p, q = pc.p[idx], pc.q[idx]
            if kind == _pl.SOFT:
                act = SoftThreshold(pc.theta[idx], size=n)
            elif kind == _pl.RELU:
                act = ReLU(n)
            elif kind == _pl.LEAKY:
                act = LeakyReLU(n, negative_slope=float(key[1]))
            else:
                act = Clip(pc.lower[idx], pc.upper[idx], size=n)
            inputs, B = {}, None
            pt = torch.from_numpy(p)
            for v, C in Rflat.items():
                M = (C[:, idx_t].T * pt[:, None]).numpy().copy()
                if not M.any():
                    continue
                if v == "y":
                    B = M
                else:
                    inputs[v] = M
            b = (Rbias[idx_t].numpy() * p + q)
            j = len(self.blocks)
            mod = place.split(", ")[0] if place.startswith("module ") else ""
            name = f"{act.kind}{j}" + (f" in {mod[7:]}" if mod else "")
            self.blocks.append({"activation": act, "inputs": inputs, "B": B,
                                "b": b if b.any() else None, "name": name})
            self.var_size[j] = n
            M = torch.zeros(n, d, dtype=torch.float64)
            M[torch.arange(n), idx_t] = torch.from_numpy(pc.scale[idx])
            out_coefs[j] = M
            out_bias[idx_t] = torch.from_numpy(pc.offset[idx])
        coefs = {v: _unflat(C, R.shape, R.bdim) for v, C in out_coefs.items()}
        res = _Aff(R.shape, R.bdim, coefs, _unflat(out_bias[None], R.shape, R.bdim), origin=origin)
        self.records.append(res)
        return res

    def general_block(self, pc, idx, Rflat, Rbias, out_coefs, out_bias, place, d):
        """One ReLU neuron per kink of the coordinates ``idx`` (their affine part is added by the caller)."""
        rows, kinks, jumps = [], [], []
        for i in idx:
            b, c = pc.general[i]
            rows += [i] * len(b)
            kinks += b
            jumps += c
        n = len(rows)
        rows_t = torch.tensor(rows, dtype=torch.long)
        inputs, B = {}, None
        for v, C in Rflat.items():
            Mv = C[:, rows_t].T.numpy().copy()
            if Mv.any():
                if v == "y":
                    B = Mv
                else:
                    inputs[v] = Mv
        b = Rbias[rows_t].numpy() - np.asarray(kinks)
        j = len(self.blocks)
        self.blocks.append({"activation": ReLU(n), "inputs": inputs, "B": B, "b": b if b.any() else None,
                            "name": f"relu{j} (piecewise-linear decomposition)"})
        self.var_size[j] = n
        Mo = torch.zeros(n, d, dtype=torch.float64)
        Mo[torch.arange(n), rows_t] = torch.tensor(jumps, dtype=torch.float64)
        out_coefs[j] = Mo

    # ------------------------------------------------------------------ elementwise (lazy) functions
    def elementwise(self, func, name: str, args, kwargs, out: torch.Tensor, place: str, given=None):
        """Build the lazy elementwise function for ``func(*args)`` whose symbolic operands share a root
        (``given``: {arg index: symbol} instead of the looked-up operands)."""
        syms = [(i, self.get(a) if given is None else given.get(i)) for i, a in enumerate(args)]
        syms = [(i, s) for i, s in syms if s is not None]
        pls = {i: (s.as_pl() if isinstance(s, _Aff) else s) for i, s in syms}
        roots = {id(p.root) for p in pls.values()}
        if len(roots) > 1:
            self.refuse(name, "it combines two different input-dependent tensors nonlinearly (a product "
                                  "of two input-dependent values, e.g. a threshold or step computed from the "
                                  "input)", place)
        root = next(iter(pls.values())).root
        if tuple(out.shape) != tuple(root.shape):
            self.refuse(name, f"an elementwise operation changes the shape {tuple(root.shape)} of its "
                              f"input-dependent operand to {tuple(out.shape)} (broadcasting it)", place)
        nd, bd = len(root.shape), root.bdim
        consts = {i: self.debatch(a, nd, bd, name) for i, a in enumerate(args) if i not in pls}
        kw = dict(kwargs)
        for k, v in kw.items():
            if isinstance(v, torch.Tensor):
                if self.get(v) is not None:
                    self.refuse(name, "an input-dependent keyword operand", place)
                kw[k] = self.debatch(v, nd, bd, name)
        fns = {i: p.fn for i, p in pls.items()}

        def fn(r, fns=fns, consts=consts, func=func, kw=kw, n=len(args)):  # noqa: B008
            return func(*[fns[i](r) if i in fns else consts[i] for i in range(n)], **kw)

        kinks = [k for p in pls.values() for k in p.kinks]
        crit = _critical(name, args, kwargs, fns, consts)
        if name not in ("add", "sub", "rsub", "neg", "_to_copy", "clone", "copy") and not (
                name in ("mul", "div") and len(fns) == 1):
            # a safety net for operations without a rule of their own (copysign, products of two functions,
            # ...): the zeros of every operand are candidate kinks too (extra candidates are harmless)
            crit = crit + [(g, 0.0) for g in fns.values()
                           if not any(g is c[0] and isinstance(c[1], float) and c[1] == 0.0 for c in crit)]
        for g, c in crit:
            if g is None:
                continue

            def q(P, g=g, c=c):
                T = _unflat(torch.from_numpy(np.ascontiguousarray(P)), root.shape, bd)
                gv, cv = g(T), (c(T) if callable(c) else c)
                val = _f64(gv) - _f64(cv)
                return _flat(torch.broadcast_to(torch.as_tensor(val, dtype=torch.float64), T.shape), bd).numpy()

            d = int(np.prod([root.shape[i] for i in range(nd) if i != bd]))
            base = np.concatenate([np.zeros((1, d))] + kinks, axis=0)
            kinks.append(_pl.roots(q, base))
        ops = tuple(o for p in pls.values() for o in p.ops) + (name,)
        return _PL(root, fn, kinks, (name, place), ops, node=(func, name, args, kwargs, out, place),
                   children=dict(syms))

    # ------------------------------------------------------------------ the dispatcher
    def handle(self, func, args, kwargs, out):
        name = func.overloadpacket.__name__
        inplace = name.endswith("_") and not name.startswith("_")
        base = name[:-1] if inplace else name
        flat_args = list(args) + [v for v in kwargs.values()]
        symbolic = [self.get(a) for a in _tensors(flat_args)]
        if not any(s is not None for s in symbolic):
            return
        if base in _CONSTANT_RESULT:
            return
        place = self.place()
        if base in _REFUSED:
            self.refuse(base, _REFUSED[base], place)
        if inplace and isinstance(args[0], torch.Tensor) and args[0]._base is not None:
            self.refuse(name, "an in-place write into a view of another tensor (e.g. x[:, k] = ...); "
                              "build the tensor with torch.cat / torch.stack instead", place)
        res = self.rule(func, base, args, kwargs, out, place)
        if res is None:
            self.refuse(base, "this operation on an input-dependent tensor is not supported by the extractor",
                        place)
        outs = out if isinstance(out, (list, tuple)) else [out]
        results = res if isinstance(res, list) else [res]
        target = [args[0]] if inplace else outs
        for t, r in zip(target, results):
            if isinstance(t, torch.Tensor) and r is not None:
                if isinstance(r, _Aff):
                    r.origin = r.origin or (base, place)
                self.put(t, r)

    def rule(self, func, name, args, kwargs, out, place):
        g = self.get
        a0 = args[0] if args else None
        s0 = g(a0)
        out_shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
        if name == "copy" and len(args) >= 2:     # dst.copy_(src): dst takes src's value
            src = g(args[1])
            if src is None or tuple(args[1].shape) != tuple(args[0].shape):
                return None
            return src
        # ---------------- elementwise operations (affine when the symbolic operands enter linearly)
        if name in _ELEMENTWISE_NONLINEAR:
            ops = [a for a in args if self.get(a) is not None]
            if len({id(self.get(a).as_pl().root if isinstance(self.get(a), _Aff) else self.get(a).root)
                    for a in ops}) > 1:
                # operands with different roots: fine for an affine operation (z + relu(w)), whose lazy
                # operands become blocks first; anything else multiplies/compares two input-dependent values
                if name not in _AFFINE_OPS or (name in ("mul", "div") and len(ops) > 1):
                    self.refuse(name, "it combines two different input-dependent tensors nonlinearly (a product "
                                      "of two input-dependent values, e.g. a threshold or step computed from "
                                      "the input)", place)
                for a in ops:
                    if isinstance(self.get(a), _PL):
                        self.put(a, self.materialize(self.get(a), name))
            lin = self.affine_elementwise(func, name, args, kwargs, out, place)
            if lin is not None:
                return lin
            return self.elementwise(func, name, args, kwargs, out, place)
        # ---------------- everything below reads affine values only
        for t in _tensors(args):
            s = g(t)
            if isinstance(s, _PL):
                self.put(t, self.materialize(s, name))
        s0 = g(a0) if isinstance(a0, torch.Tensor) else None
        if name in _IDENTITY_OPS and s0 is not None:
            return self.lin_apply(s0, lambda C: C, out_shape, s0.bdim)
        if name in ("view", "_unsafe_view", "reshape"):
            return self.reshape(s0, out_shape, place, name)
        if name == "expand":
            def f(C):
                size = list(out_shape)
                size[s0.bdim] = C.shape[s0.bdim]
                return C.expand(size)
            return self.lin_apply(s0, f, out_shape, s0.bdim)
        if name == "permute":
            perm = [p % len(s0.shape) for p in args[1]]
            return self.lin_apply(s0, lambda C: C.permute(perm), out_shape, perm.index(s0.bdim))
        if name in ("transpose", "t", "numpy_T"):
            nd = len(s0.shape)
            d0, d1 = (args[1] % nd, args[2] % nd) if name == "transpose" else (0, 1)
            nb = d1 if s0.bdim == d0 else d0 if s0.bdim == d1 else s0.bdim
            return self.lin_apply(s0, lambda C: C.transpose(d0, d1), out_shape, nb)
        if name in ("unsqueeze",):
            dim = args[1] % (len(s0.shape) + 1)
            nb = s0.bdim + (1 if dim <= s0.bdim else 0)
            return self.lin_apply(s0, lambda C: C.unsqueeze(dim), out_shape, nb)
        if name == "squeeze":
            nd = len(s0.shape)
            if len(args) == 1:
                dims = [i for i in range(nd) if s0.shape[i] == 1]
            else:
                dims = args[1] if isinstance(args[1], (list, tuple)) else [args[1]]
                dims = [d % nd for d in dims if s0.shape[d % nd] == 1]
            if s0.bdim in dims:
                return None
            nb = s0.bdim - sum(1 for d in dims if d < s0.bdim)
            return self.lin_apply(s0, lambda C: C.squeeze(dims) if dims else C, out_shape, nb)
        if name in ("select", "slice", "index_select", "narrow", "diagonal", "flip", "roll", "repeat",
                    "split", "split_with_sizes", "unbind", "chunk", "sum", "mean", "cumsum", "constant_pad_nd",
                    "index", "gather", "tril", "triu"):
            return self.reduce_or_select(func, name, s0, args, kwargs, out, place)
        if name in ("mm", "bmm", "addmm", "baddbmm", "mv", "dot", "addmv"):
            return self.matmul(func, name, args, kwargs, out, place)
        if name == "cat" or name == "stack":
            return self.cat(func, name, args, kwargs, out, place)
        if name == "convolution":
            if s0 is None or s0.bdim != 0 or any(g(t) is not None for t in _tensors(args[1:])):
                self.refuse(name, "only a convolution of an input-dependent signal with fixed weights is "
                                  "linear", place)
            rest = list(args[1:])
            bias = rest[1]
            rest_nb = [rest[0], None] + rest[2:]
            res = self.lin_apply(s0, lambda C: func(C, *rest_nb), out_shape, 0)
            if bias is not None:
                res.bias = func(s0.bias, *rest)
            return res
        return None

    def affine_elementwise(self, func, name, args, kwargs, out, place, given=None):
        """``add``/``sub``/``neg``/``mul``/``div`` with the symbolic operands entering linearly -> _Aff.
        ``given`` ({arg index: symbol}) replaces the looked-up operands (used to decompose a lazy function)."""
        g = self.get
        s = [g(a) if isinstance(a, torch.Tensor) else None for a in args]
        if given is not None:
            s = [given.get(i) for i in range(len(args))]
        if any(isinstance(x, _PL) for x in s):
            return None
        out_shape, nd = tuple(out.shape), out.ndim
        syms = [x for x in s if x is not None]
        ref = syms[0]
        ob = ref.bdim + nd - len(ref.shape)
        for x in syms:
            if x.bdim + nd - len(x.shape) != ob:
                self.refuse(name, "operands with their batch axes in different positions", place)
        alpha = kwargs.get("alpha", 1)
        res = None
        if name in ("add", "sub") and len(args) >= 2:
            al = alpha if name == "add" else -alpha
            if len(args) > 2:
                al = (args[2] if name == "add" else -args[2])
            if s[0] is not None and s[1] is not None:
                res = self.add(s[0], s[1], out_shape, ob, alpha=al)
            elif s[0] is not None:
                c = self.debatch(args[1], nd, ob, name)
                res = self.add(s[0], None, out_shape, ob, const=c * al)
            else:
                c = self.debatch(args[0], nd, ob, name)
                neg = self.lin_apply(s[1], lambda C: C * al, s[1].shape, s[1].bdim)
                res = self.add(neg, None, out_shape, ob, const=c)
        elif name == "rsub" and len(args) >= 2:
            al = args[2] if len(args) > 2 else alpha
            if s[0] is not None and s[1] is None:    # other - alpha * self
                c = self.debatch(args[1], nd, ob, name)
                neg = self.lin_apply(s[0], lambda C: C * (-al), s[0].shape, s[0].bdim)
                res = self.add(neg, None, out_shape, ob, const=c)
            elif s[0] is not None and s[1] is not None:
                res = self.add(s[1], s[0], out_shape, ob, alpha=-al)
        elif name == "neg":
            res = self.lin_apply(s[0], lambda C: -C, out_shape, ob)
        elif name in ("mul", "div") and len(args) >= 2:
            if sum(x is not None for x in s[:2]) != 1 or kwargs.get("rounding_mode") is not None:
                return None
            if name == "div" and s[0] is None:
                return None
            i = 0 if s[0] is not None else 1
            c = self.debatch(args[1 - i], nd, ob, name)
            res = self.add(s[i], None, out_shape, ob)
            res = self.lin_apply(res, (lambda C: C * c) if name == "mul" else (lambda C: C / c), out_shape, ob)
        elif name in ("_to_copy", "clone", "copy") and s[0] is not None:
            dt = kwargs.get("dtype")
            if dt is not None and not dt.is_floating_point:
                return None
            res = self.lin_apply(s[0], lambda C: C, out_shape, ob)
        if res is None:
            return None
        # remember the elementwise provenance, so that e.g. relu(z - t) - relu(-z - t) shares z as its root
        pls = [x.as_pl() for x in syms]
        if given is None and len({id(p.root) for p in pls}) == 1 and tuple(out_shape) == tuple(pls[0].root.shape):
            root = pls[0].root
            lazy = self.elementwise(func, name, args, kwargs, out, place)
            res.elem = (root, lazy.fn, lazy.kinks)
        return res

    def reshape(self, s0: _Aff, out_shape, place, name):
        ins = s0.shape
        pre = int(np.prod(ins[:s0.bdim]))
        nb = None
        for j in range(len(out_shape)):
            if int(np.prod(out_shape[:j])) == pre and out_shape[j] == self.B:
                nb = j
                break
        if nb is None or int(np.prod(out_shape[nb:])) != int(np.prod(ins[s0.bdim:])):
            self.refuse(name, f"a reshape from {ins} to {out_shape} mixes the batch axis with other axes; keep "
                              "the batch as its own axis (e.g. x.reshape(x.shape[0], -1))", place)

        def f(C):
            size = list(out_shape)
            size[nb] = C.shape[s0.bdim]
            return C.reshape(size)
        return self.lin_apply(s0, f, out_shape, nb)

    def reduce_or_select(self, func, name, s0, args, kwargs, out, place):
        if s0 is None or any(self.get(t) is not None for t in _tensors(args[1:])):
            return None
        nd, bd = len(s0.shape), s0.bdim
        rest = list(args[1:])
        if name in ("sum", "mean"):
            if len(rest) == 0 or rest[0] is None:
                self.refuse(name, "a reduction over all axes, including the batch axis", place)
            dims = rest[0] if isinstance(rest[0], (list, tuple)) else [rest[0]]
            dims = [d % nd for d in dims]
            keep = rest[1] if len(rest) > 1 else kwargs.get("keepdim", False)
            if bd in dims:
                self.refuse(name, "a reduction over the batch axis", place)
            nb = bd if keep else bd - sum(1 for d in dims if d < bd)
            return self.lin_apply(s0, lambda C: func(C, *rest, **kwargs), tuple(out.shape), nb)
        if name in ("select", "slice", "index_select", "narrow", "cumsum", "gather", "split",
                    "split_with_sizes", "unbind", "chunk", "diagonal"):
            if name in ("split", "split_with_sizes", "chunk"):
                dim = (rest[1] if len(rest) > 1 else kwargs.get("dim", 0)) % nd
            else:
                dim = (rest[0] if rest else kwargs.get("dim", 0)) % nd
            if dim == bd:
                if name == "slice" and tuple(out.shape) == tuple(s0.shape):
                    return self.lin_apply(s0, lambda C: C, s0.shape, bd)
                self.refuse(name, "selecting or splitting along the batch axis", place)
            if name == "diagonal":
                return None
            if name in ("split", "split_with_sizes", "unbind", "chunk"):
                parts = {v: func(C, *rest, **kwargs) for v, C in s0.coefs.items()}
                bparts = func(s0.bias, *rest, **kwargs)
                nb = bd - (1 if name == "unbind" and dim < bd else 0)
                return [_Aff(tuple(o.shape), nb, {v: parts[v][k] for v in parts}, bparts[k])
                        for k, o in enumerate(out)]
            nb = bd - (1 if name == "select" and dim < bd else 0)
            if name == "gather":
                return None
            return self.lin_apply(s0, lambda C: func(C, *rest, **kwargs), tuple(out.shape), nb)
        if name in ("flip", "roll", "tril", "triu"):
            dims = rest[0] if name == "flip" else (rest[1] if name == "roll" and len(rest) > 1 else None)
            if name in ("tril", "triu") and bd >= nd - 2:
                return None
            if name == "roll" and (dims is None or bd in [d % nd for d in (dims if isinstance(dims, (list, tuple))
                                                                           else [dims])]):
                return None
            if name == "flip" and bd in [d % nd for d in dims]:
                return None
            return self.lin_apply(s0, lambda C: func(C, *rest, **kwargs), tuple(out.shape), bd)
        if name == "repeat":
            reps = list(rest[0])
            lead = len(reps) - nd
            if reps[lead + bd] != 1:
                self.refuse(name, "repeating along the batch axis", place)
            return self.lin_apply(s0, lambda C: C.repeat(reps), tuple(out.shape), bd + lead)
        if name == "constant_pad_nd":
            pad = list(rest[0])
            value = rest[1] if len(rest) > 1 else 0
            padded = {nd - 1 - i // 2 for i in range(len(pad)) if pad[i] != 0}
            if bd in padded:
                self.refuse(name, "padding along the batch axis", place)
            res = self.lin_apply(s0, lambda C: func(C, pad, 0.0), tuple(out.shape), bd)
            res.bias = func(s0.bias, pad, value)
            return res
        if name == "index":
            idx = list(rest[0])
            if bd < len(idx) and idx[bd] is not None:
                self.refuse(name, "indexing along the batch axis", place)
            if bd != 0 or out.shape[0] != self.B:
                return None
            return self.lin_apply(s0, lambda C: func(C, idx), tuple(out.shape), 0)
        return None

    def matmul(self, func, name, args, kwargs, out, place):
        g = self.get
        out_shape = tuple(out.shape)
        if name in ("addmm", "baddbmm", "addmv"):
            c, a, b = args[0], args[1], args[2]
            beta, alpha = kwargs.get("beta", 1), kwargs.get("alpha", 1)
            prod_fn = {"addmm": _aten.mm.default, "baddbmm": _aten.bmm.default, "addmv": _aten.mv.default}[name]
            prod = prod_fn(a, b)
            P = self.matmul(prod_fn, {"addmm": "mm", "baddbmm": "bmm", "addmv": "mv"}[name], (a, b), {},
                            prod, place) if (g(a) is not None or g(b) is not None) else None
            if alpha != 1 and P is not None:
                P = self.lin_apply(P, lambda C: C * alpha, P.shape, P.bdim)
            sc = g(c)
            if sc is not None:
                if beta != 1:
                    sc = self.lin_apply(sc, lambda C: C * beta, sc.shape, sc.bdim)
                if P is None:
                    cst = self.debatch(prod * alpha, len(out_shape), sc.bdim + len(out_shape) - len(sc.shape), name)
                    return self.add(sc, None, out_shape, sc.bdim + len(out_shape) - len(sc.shape), const=cst)
                return self.add(sc, P, out_shape, P.bdim)
            cst = self.debatch(c * beta, len(out_shape), P.bdim, name)
            return self.add(P, None, out_shape, P.bdim, const=cst)
        a, b = args[0], args[1]
        sa, sb = g(a), g(b)
        if sa is not None and sb is not None:
            self.refuse(name, "a product of two input-dependent tensors is not linear", place)
        if name == "mm":
            if sa is not None and sa.bdim == 0:
                return self.lin_apply(sa, lambda C: func(C, b), out_shape, 0)
            if sb is not None and sb.bdim == 1:
                return self.lin_apply(sb, lambda C: func(a, C), out_shape, 1)
            self.refuse(name, "a matrix product that mixes the instances of the batch", place)
        if name == "bmm":
            s, i = (sa, 0) if sa is not None else (sb, 1)
            if (i, s.bdim) in ((0, 1), (1, 2)):   # instances along the rows of a / the columns of b (einsum)
                return self.lin_apply(s, (lambda C: func(C, b)) if i == 0 else (lambda C: func(a, C)),
                                      out_shape, s.bdim)
            if s.bdim != 0:
                self.refuse(name, "a batched product that mixes the instances of the batch", place)
            other = self.debatch(b if i == 0 else a, 3, 0, name)

            def f(C):
                o = other.expand(C.shape[0], *other.shape[1:])
                return func(C, o) if i == 0 else func(o, C)
            return self.lin_apply(s, f, out_shape, 0)
        if name == "mv" and sa is not None and sa.bdim == 0:
            return self.lin_apply(sa, lambda C: func(C, b), out_shape, 0)
        if name in ("mv", "dot"):
            self.refuse(name, "a matrix-vector product without a batch axis", place)
        return None

    def cat(self, func, name, args, kwargs, out, place):
        g = self.get
        tensors = list(args[0])
        dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
        out_shape = tuple(out.shape)
        if name == "stack":
            nd = tensors[0].ndim + 1
            dim = dim % nd
            parts = [t.unsqueeze(dim) for t in tensors]
            psyms = []
            for t, p in zip(tensors, parts):
                s = g(t)
                if s is not None:
                    nb = s.bdim + (1 if dim <= s.bdim else 0)
                    s = self.lin_apply(s, lambda C: C.unsqueeze(dim), tuple(p.shape), nb)
                psyms.append(s)
            tensors = parts
        else:
            psyms = [g(t) for t in tensors]
        nd = out.ndim
        dim = dim % nd
        ref = next(s for s in psyms if s is not None)
        bd = ref.bdim
        if dim == bd:
            self.refuse(name, "concatenation along the batch axis", place)
        variables = {}
        for s in psyms:
            if s is not None:
                if s.bdim != bd:
                    self.refuse(name, "parts with their batch axes in different positions", place)
                variables.update({v: None for v in s.coefs})
        coefs = {}
        for v in variables:
            pieces = []
            for t, s in zip(tensors, psyms):
                if s is not None and v in s.coefs:
                    pieces.append(s.coefs[v])
                else:
                    pieces.append(self.aff_zero_like(tuple(t.shape), bd, v))
            coefs[v] = torch.cat(pieces, dim)
        bparts = [s.bias if s is not None else self.debatch(t, nd, bd, name) for t, s in zip(tensors, psyms)]
        bparts = [torch.broadcast_to(b, tuple(1 if i == bd else t.shape[i] for i in range(nd)))
                  for b, t in zip(bparts, tensors)]
        return _Aff(out_shape, bd, coefs, torch.cat(bparts, dim))


def _f64(v):
    """Tensors (bool masks included) as float64; numbers unchanged."""
    return v.to(torch.float64) if isinstance(v, torch.Tensor) else v


def _tensors(items) -> list:
    out = []
    for a in items:
        if isinstance(a, torch.Tensor):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            out.extend(x for x in a if isinstance(x, torch.Tensor))
    return out


def _critical(name, args, kwargs, fns, consts) -> list:
    """Pairs ``(g, c)``: the kinks created by the operation are the zeros of ``g(r) - c``."""
    def arg(i, default=None):
        if i in fns:
            return fns[i]
        if i < len(args):
            return consts.get(i, args[i])
        return default

    def val(i, key, default):
        if i < len(args):
            return arg(i)
        return kwargs.get(key, default)

    g0 = fns.get(0)
    if name in ("relu", "abs", "sign", "sgn", "leaky_relu", "heaviside", "copysign", "relu6", "square", "pow"):
        out = [(g0, 0.0)]
        if name == "relu6":
            out.append((g0, 6.0))
        return out
    if name in ("clamp", "hardtanh", "clamp_min", "clamp_max"):
        if name == "hardtanh":
            lo, hi = val(1, "min_val", -1.0), val(2, "max_val", 1.0)
        elif name == "clamp_min":
            lo, hi = val(1, "min", None), None
        elif name == "clamp_max":
            lo, hi = None, val(1, "max", None)
        else:
            lo, hi = val(1, "min", None), val(2, "max", None)
        return [(g0, c) for c in (lo, hi) if c is not None]
    if name in ("softshrink", "hardshrink"):
        lam = val(1, "lambd", 0.5)
        return [(g0, lam), (g0, -lam if not callable(lam) else (lambda r, lam=lam: -lam(r)))]
    if name == "threshold":
        return [(g0, val(1, "threshold", 0.0))]
    if name in ("gt", "ge", "lt", "le", "eq", "ne", "maximum", "minimum", "fmax", "fmin"):
        a, b = arg(0), arg(1)
        if callable(a):
            return [(a, b)]
        if callable(b):
            return [(b, a)]
    return []


def _make_mode(tracer: _Tracer):
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Mode(TorchDispatchMode):
        @classmethod
        def _should_skip_dynamo(cls):
            # torch wraps a mode's __torch_dispatch__ in torch._disable_dynamo, whose first call imports
            # torch._dynamo (about 3 s); the trace never runs under torch.compile, so the wrapper is not needed
            return False

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            if tracer.error is None:
                try:
                    tracer.handle(func, args, kwargs, out)
                except _Refusal as exc:
                    tracer.error = exc.args[0]
                except Exception as exc:  # noqa: BLE001 - an unforeseen operand layout: refuse, naming the op
                    tracer.error = NotRepresentableError(
                        f"cannot extract an analysis form: operation aten.{func.overloadpacket.__name__} at "
                        f"{tracer.place()} could not be represented ({type(exc).__name__}: {exc}). Rewrite it "
                        "with the operations listed in docs/your_model.md §2-§3, or give the model a form() "
                        "method.")
            return out

    return _Mode()


# ---------------------------------------------------------------------------------------------- public API


def _prepare_copy(model):
    net = copy.deepcopy(model).to(device="cpu", dtype=torch.float64)
    net.eval()
    if hasattr(net, "check_inputs"):
        net.check_inputs = False
    for p in net.parameters():
        p.requires_grad_(False)
    return net


class _Float64:
    """Run user code with float64 as the default dtype (``torch.zeros(batch, n)`` inside forward)."""

    def __enter__(self):
        self.old = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)

    def __exit__(self, *exc):
        torch.set_default_dtype(self.old)


def _run(net, Y):
    try:
        with torch.no_grad(), _Float64():
            out = net(Y)
    except NotRepresentableError:
        raise
    except Exception as exc:
        raise InvalidInputError(
            f"running {type(net).__name__}.forward on a float64 input of shape {tuple(Y.shape)} failed "
            f"({type(exc).__name__}: {exc}); check input_dim (the model must map (batch, m) to (batch, n))."
        ) from exc
    if not isinstance(out, torch.Tensor):
        raise NotRepresentableError(
            f"{type(net).__name__}.forward returned {type(out).__name__}, not a tensor; extract needs "
            "forward(y) -> x (wrap the model so that it returns the estimate only).")
    return out


def infer_input_dim(model: Any) -> int | None:
    """The observation dimension ``m`` of a plain module, or ``None`` when it cannot be told: an integer
    ``input_dim`` or ``m`` attribute; else the one candidate (``in_features`` of an ``nn.Linear``, a dimension
    of a 2-D parameter or buffer) for which ``model(torch.zeros(2, m))`` runs and returns a (2, n) tensor.
    Several working candidates are ambiguous: ``None``."""
    for attr in ("input_dim", "m"):
        v = getattr(model, attr, None)
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0:
            return int(v)
    cands = [mod.in_features for mod in model.modules() if isinstance(mod, torch.nn.Linear)]
    for t in list(model.parameters()) + list(model.buffers()):
        if t.ndim == 2:
            cands += list(t.shape)
    cands = list(dict.fromkeys(int(c) for c in cands if c > 0))
    if not cands:
        return None
    net = _prepare_copy(model)
    works = []
    for m in cands:
        try:
            with torch.no_grad(), _Float64():
                out = net(torch.zeros(2, m, dtype=torch.float64))
        except Exception:  # noqa: BLE001, S112 - a wrong guess fails in the user's code
            continue
        if isinstance(out, torch.Tensor) and out.ndim == 2 and out.shape[0] == 2:
            works.append(m)
    return works[0] if len(works) == 1 else None


def extract(model: Any, input_dim: int, *, example: Any = None, layers: int | Sequence[int] | None = None,
            rtol: float = 1e-10, seed: int = 0, batch: int | None = None) -> Form:
    r"""Capture the analysis form :math:`z = Aw + By + b,\ w = \sigma(z),\ x = Cw` of a plain torch module.

    ``model.forward(y)`` ((batch, m) -> (batch, n)) is run once in float64 on a CPU copy of the model, under
    a dispatch-mode trace that records every ATen operation (module docstring; docs/your_model.md §1-§4):

    * linear parts (``nn.Linear``, ``F.linear``, ``@``/``mm``/``addmm``/``bmm`` with parameters, buffers or
      constants, ``+``, ``-``, scalar and per-coordinate scaling, transposes, ``cat``/``stack``/slicing/
      ``reshape`` that keep the batch axis, ``conv1d``) compose into affine maps of ``y`` and the block
      activations; linear states (momentum, ADMM) are folded into the edges;
    * elementwise piecewise-linear functions of one pre-activation (``relu``, ``leaky_relu``, ``clamp``,
      ``hardtanh``, ``F.softshrink`` and hand-written soft thresholds such as ``sign(z) * relu(|z| - t)``,
      ``z - clamp(z, -t, t)``, ``relu(z - t) - relu(-z - t)``, ``where(|z| > t, z - t * sign(z), 0)``) are
      recognised exactly (:mod:`._pl`) as :class:`SoftThreshold`, :class:`ReLU`, :class:`LeakyReLU` or
      :class:`Clip` blocks, with per-coordinate thresholds;
    * layers: the layer output :math:`x_k` is the last tensor of the output's shape that reads only blocks
      created after :math:`x_{k-1}` (so per-layer outputs exist for a model that never returns them).

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``y`` (batch, m) to ``x`` (batch, n).  It is not modified.
    input_dim : int
        ``m``.
    example : array_like (m,) or (batch, m), optional
        Observations on which the form must also reproduce the model.
    layers : int or sequence of int, optional
        ``int K``: the expected number of layers (an error says what was found otherwise); a sequence of block
        indices: the blocks whose activations are the layer outputs (each of the output's size).
    rtol : float
        The form is accepted only if ``max|form(y) - model(y)| <= rtol * max(max|model(y)|, 1e-300)`` on
        random inputs at three scales and on ``example``.
    seed : int
        Seed of the random test inputs.
    batch : int, optional
        Batch size of the trace and of the checks (default 7), for a module that accepts only one batch size
        (a ``torch.export`` program exported without a dynamic batch dimension).

    Returns
    -------
    Form

    Raises
    ------
    NotRepresentableError
        An operation the form cannot represent (sort/top-k support selection, thresholds computed from the
        input, hard thresholds, data-dependent control flow, SVD, ...): the message names the ATen operation,
        the module path and the user's source line, and what to do.  Also when the form does not reproduce
        the model to ``rtol``.
    InvalidInputError
        ``input_dim`` invalid or the forward pass fails on a (batch, input_dim) input.
    """
    if not isinstance(model, torch.nn.Module):
        raise InvalidInputError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    if isinstance(input_dim, bool) or not isinstance(input_dim, (int, np.integer)) or input_dim < 1:
        raise InvalidInputError(f"input_dim must be a positive integer (the dimension m of y); got {input_dim!r}.")
    m = int(input_dim)
    bsz = _TRACE_BATCH if batch is None else int(batch)
    if bsz < 1:
        raise InvalidInputError(f"batch must be a positive integer; got {batch!r}.")
    net = _prepare_copy(model)
    gen = torch.Generator().manual_seed(seed)
    Y = torch.randn(bsz, m, generator=gen, dtype=torch.float64)
    tracer = _Tracer(bsz, m)
    tracer.put(Y, _Aff((bsz, m), 0, {"y": torch.eye(m, dtype=torch.float64)},
                       torch.zeros(1, m, dtype=torch.float64)))
    tracer.records.clear()
    names = {mod: name for name, mod in net.named_modules()}
    hooks = []
    for mod, name in names.items():
        if name:
            hooks.append(mod.register_forward_pre_hook(lambda mo, inp, n=name: tracer.module_stack.append(n)))
            hooks.append(mod.register_forward_hook(_pop_hook(tracer)))
    try:
        with _make_mode(tracer):
            out = _run(net, Y)
    finally:
        for h in hooks:
            h.remove()
    if tracer.error is not None:
        raise tracer.error
    if out.ndim != 2 or out.shape[0] != bsz:
        raise NotRepresentableError(
            f"{type(model).__name__}.forward maps a ({bsz}, {m}) input to shape {tuple(out.shape)}; "
            "extract needs forward(y) -> x with y (batch, m) and x (batch, n).")
    s_out = tracer.get(out)
    if s_out is None:
        raise NotRepresentableError(
            f"the output of {type(model).__name__} does not depend on the input through torch operations "
            "(constant, or computed through numpy/.item()); there is nothing to analyse.")
    try:
        s_out = tracer.materialize(s_out, "output")
    except _Refusal as exc:
        raise exc.args[0] from None
    if s_out.bdim != 0:
        raise NotRepresentableError("the output's batch axis is not its first axis; return x as (batch, n).")
    form = _build_form(tracer, s_out, m, layers, type(model).__name__)
    _verify(form, net, m, example, rtol, gen, batch)
    return form


def _pop_hook(tracer: _Tracer):
    def hook(module, inputs, output):
        tracer.module_stack.pop()    # returns None: a forward hook's return value would replace the output
    return hook


def _readout(aff: _Aff) -> tuple[dict, bool]:
    """``{block: C}`` of an affine value, and whether it is a pure readout (no y term, zero bias)."""
    C = {v: _flat(c, aff.bdim).T.contiguous().numpy() for v, c in aff.coefs.items()}
    C = {v: M for v, M in C.items() if M.any()}
    pure = "y" not in C and not _flat(aff.bias, aff.bdim).any()
    return C, pure


def _build_form(tracer: _Tracer, s_out: _Aff, m: int, layers, name: str) -> Form:
    import scipy.sparse as sp

    blocks = list(tracer.blocks)

    def edge(M):
        if M.shape[0] * M.shape[1] >= 4096 and np.count_nonzero(M) <= 0.1 * M.size:
            return sp.csr_matrix(M)
        return M

    out_C, pure = _readout(s_out)
    n_out = s_out.shape[1]
    if not pure or not out_C:
        M = _flat(s_out.bias, 0)[0].numpy()
        blocks.append({"activation": Identity(n_out), "inputs": {j: M_ for j, M_ in out_C.items() if j != "y"},
                       "B": out_C.get("y"), "b": M if M.any() else None, "name": "output"})
        out_C = {len(blocks) - 1: np.eye(n_out)}
    # ---- layers
    if layers is not None and not isinstance(layers, (int, np.integer)):
        idx = [int(j) for j in layers]
        for j in idx:
            if not 0 <= j < len(blocks) or blocks[j]["activation"].size != n_out:
                raise InvalidInputError(
                    f"layers must list blocks of size {n_out} (the output size) among 0..{len(blocks) - 1}; "
                    f"got {j}.")
        readouts = [{j: np.eye(n_out)} for j in idx]
    else:
        readouts = _detect_layers(tracer, s_out, n_out, out_C, blocks)
        if layers is not None and len(readouts) != int(layers):
            raise InvalidInputError(
                f"layers={int(layers)} but the extractor found {len(readouts)} layer output(s); pass "
                f"layers=[block indices] to choose them (blocks: "
                f"{[(j, b['name'], b['activation'].size) for j, b in enumerate(blocks)]}).")
    # ---- drop blocks that nothing read out depends on (e.g. a nonlinearity computed only for logging)
    needed, stack = set(), [j for r in [out_C, *readouts] for j in r]
    while stack:
        j = stack.pop()
        if j not in needed:
            needed.add(j)
            stack.extend(blocks[j]["inputs"])
    if len(needed) < len(blocks):
        keep = sorted(needed)
        new = {old: i for i, old in enumerate(keep)}
        blocks = [dict(blocks[j], inputs={new[i]: M for i, M in blocks[j]["inputs"].items()}) for j in keep]
        out_C = {new[j]: M for j, M in out_C.items()}
        readouts = [{new[j]: M for j, M in r.items()} for r in readouts]
    # ---- assign blocks to layers
    bounds = [max(r) for r in readouts]
    layer_of = []
    for j in range(len(blocks)):
        k = next((i for i, bnd in enumerate(bounds) if j <= bnd), len(bounds) - 1)
        layer_of.append(k + 1)
    objs = [Block(activation=b["activation"], inputs={j: edge(M) for j, M in b["inputs"].items()},
                  B=None if b["B"] is None else edge(b["B"]), b=b["b"], layer=layer_of[k], name=b["name"])
            for k, b in enumerate(blocks)]
    eye_like = {j: (sp.identity(M.shape[0], format="csr") if M.shape[0] == M.shape[1]
                    and np.array_equal(M, np.eye(M.shape[0])) else edge(M)) for j, M in out_C.items()}
    lo = [{j: (sp.identity(M.shape[0], format="csr") if M.shape[0] == M.shape[1]
               and np.array_equal(M, np.eye(M.shape[0])) else edge(M)) for j, M in r.items()} for r in readouts]
    return Form(m, objs, output=eye_like, layer_outputs=lo, name=f"extracted {name}")


def _detect_layers(tracer: _Tracer, s_out: _Aff, n_out: int, out_C: dict, blocks: list) -> list:
    """Layer outputs x_1..x_K: tensors of the output's size per instance (any layout: x (n, batch) in a column
    convention counts), read out like it (the same kinds and sizes of
    blocks, identity readouts iff the output's is), reading no ``y`` and only blocks created after the
    previous layer output; within one layer the last such tensor wins (docs/your_model.md §4)."""
    def template(C: dict) -> tuple:
        sig = tuple(sorted((blocks[j]["activation"].kind, blocks[j]["activation"].size) for j in C))
        ident = all(M.shape[0] == M.shape[1] and np.array_equal(M, np.eye(M.shape[0])) for M in C.values())
        return sig, ident

    want = template(out_C)
    accepted: list[tuple[_Aff, dict]] = []
    d_out = int(np.prod(s_out.shape[1:]))
    for rec in tracer.records:
        if "y" in rec.coefs or len(rec.shape) < 2 or int(np.prod(rec.shape)) != d_out * rec.shape[rec.bdim]:
            continue
        C, pure = _readout(rec)
        if not pure or not C or template(C) != want:
            continue
        lo_v, hi_v = min(C), max(C)
        last_hi = max(accepted[-1][1]) if accepted else -1
        prev_hi = max(accepted[-2][1]) if len(accepted) >= 2 else -1
        if lo_v > last_hi:
            accepted.append((rec, C))
        elif accepted and lo_v > prev_hi and hi_v >= last_hi:
            accepted[-1] = (rec, C)
    if not accepted or not _same_readout(accepted[-1][1], out_C):
        return [out_C]
    return [C for _, C in accepted[:-1]] + [out_C]


def _same_readout(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(np.array_equal(a[j], b[j]) for j in a)


def _verify(form: Form, net, m: int, example, rtol: float, gen, batch: int | None = None) -> None:
    tests = [torch.randn(batch or 4, m, generator=gen, dtype=torch.float64) * s for s in (0.1, 1.0, 10.0)]
    if example is not None:
        ex = torch.as_tensor(np.asarray(example, dtype=np.float64))
        if ex.ndim == 1:
            ex = ex[None]
        if ex.ndim != 2 or ex.shape[1] != m:
            raise InvalidInputError(f"example must have shape ({m},) or (batch, {m}); got {tuple(ex.shape)}.")
        if batch is not None:   # a fixed batch size: the example in chunks, the last one padded
            pad = (-ex.shape[0]) % batch
            ex = torch.cat([ex, ex[:1].expand(pad, m)]) if pad else ex
            tests.extend(ex.split(batch))
        else:
            tests.append(ex)
    for Yt in tests:
        ref = _run(net, Yt).numpy()
        got = form.evaluate(Yt.numpy())
        scale = max(float(np.abs(ref).max()), 1e-300)
        err = float(np.abs(got - ref).max())
        if not err <= rtol * scale:
            raise NotRepresentableError(
                f"the extracted form does not reproduce the model: max |form(y) - model(y)| = {err:.3g} > "
                f"rtol * max|model(y)| = {rtol * scale:.3g} (inputs of scale {float(Yt.abs().max()):.3g}). "
                "The forward pass probably branches on the input or uses values computed outside torch; "
                "give the model a form() method.")


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _fingerprint(model) -> tuple:
    return tuple((n, t.data_ptr(), t._version, tuple(t.shape), str(t.dtype))
                 for n, t in list(model.named_parameters()) + list(model.named_buffers()))


def extract_cached(model: Any, input_dim: int | None = None) -> Form:
    """:func:`extract` for :func:`~unfoldtheory.form.require_form`: infers ``input_dim`` when not given and
    reuses the form while the model's parameters and buffers are unchanged (same tensors, same versions)."""
    m = input_dim if input_dim is not None else infer_input_dim(model)
    if m is None:
        raise InvalidInputError(
            f"{type(model).__name__} has no .form() method and its input dimension cannot be inferred (no "
            "`input_dim`/`m` attribute, and not exactly one nn.Linear in_features or weight dimension accepts "
            "a (batch, m) input); call "
            "ut.form.extract(model, input_dim=m) and pass the returned form instead.")
    key = (int(m), _fingerprint(model))
    try:
        hit = _CACHE.get(model)
    except TypeError:
        hit = None
    if hit is not None and hit[0] == key:
        return hit[1]
    form = extract(model, int(m))
    try:
        _CACHE[model] = (key, form)
    except TypeError:
        pass
    return form

