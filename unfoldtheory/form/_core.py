r"""The analysis form of an unrolled network: the one representation every certificate reads.

An unrolled network is written as an implicit interconnection of blocks (docs/design.md §3):

.. math::

    z_k = \sum_{j<k} A_{kj} w_j + B_k y + b_k, \qquad w_k = \sigma_k(z_k), \qquad
    x = \sum_j C_j w_j,

with :math:`A` strictly block-lower-triangular (a block only reads earlier blocks), :math:`\sigma_k`
elementwise and each coordinate tagged with its slope interval :math:`[\alpha, \beta]`:

* :class:`SoftThreshold`, :class:`ReLU`, :class:`Clip`: slope in [0, 1] (firmly nonexpansive, monotone);
* :class:`LeakyReLU`: slope in [a, 1];
* :class:`Identity`: slope [1, 1] (linear states of momentum or ADMM).

Blocks are kept as a sparse list of edges (``inputs[j] = A_kj``), never a dense :math:`(Kn \times Kn)` matrix.
Edge matrices are dense numpy arrays or scipy sparse matrices.  ``Form.evaluate(y)`` reproduces the torch
forward of the model that produced the form; a property test checks this for every model.

A layer that is not elementwise (singular value thresholding) or not continuous (support selection) has no
form: the model's ``form()`` raises :class:`~unfoldtheory.errors.NotRepresentableError`.  A plain torch
module without a ``form()`` method gets one from :func:`unfoldtheory.form.extract` (docs/your_model.md §1),
which :func:`require_form` calls for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import as_float_array, check_observations, check_scalar, to_numpy
from ..errors import InvalidInputError, NotRepresentableError
from ..operators import as_floating, soft_threshold

# ---------------------------------------------------------------------------------------------- activations


class Activation:
    """An elementwise activation on a block of ``size`` coordinates, with per-coordinate slope bounds.

    Subclasses define ``kind``, :meth:`__call__`, :meth:`derivative` (an element of the Clarke Jacobian,
    used for sampled Jacobians) and :meth:`slope_bounds`.
    """

    kind: str = "abstract"
    #: properties an analysis may assume for every coordinate
    tags: frozenset = frozenset()

    def __init__(self, size: int):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise InvalidInputError(f"activation size must be a positive integer; got {size!r}.")
        self.size = int(size)

    def __call__(self, z: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def derivative(self, z: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def slope_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-coordinate slope interval ``(alpha, beta)``, each of shape (size,)."""
        lo, hi = self._slopes
        return np.full(self.size, float(lo)), np.full(self.size, float(hi))

    _slopes: tuple[float, float] = (0.0, 1.0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


def _vector(value: Any, size: int, name: str) -> np.ndarray:
    arr = as_float_array(value, name, ndim=(0, 1))
    if arr.ndim == 1 and arr.shape[0] != size:
        raise InvalidInputError(f"{name} must be a scalar or have {size} entries; got shape {arr.shape}.")
    return np.broadcast_to(arr, (size,)).copy()


class SoftThreshold(Activation):
    r"""Soft threshold :math:`\eta_\theta(z) = \mathrm{sign}(z)\max(|z|-\theta, 0)` with
    :math:`\theta \ge 0` per coordinate; the prox of :math:`\theta\|\cdot\|_1`, slope in [0, 1]."""

    kind = "soft_threshold"
    tags = frozenset({"elementwise", "monotone", "firmly_nonexpansive", "prox"})

    def __init__(self, theta: Any, size: int | None = None):
        arr = to_numpy(theta)
        size = int(arr.size) if size is None else size
        super().__init__(size)
        self.theta = _vector(theta, self.size, "theta")
        if (self.theta < 0).any():
            k = int(np.argmin(self.theta))
            raise InvalidInputError(
                f"theta must be >= 0 (a negative threshold makes the soft threshold discontinuous and "
                f"expansive); got theta[{k}] = {self.theta[k]:g}. Clamp thresholds to >= 0.")

    def __call__(self, z):
        return soft_threshold(z, self.theta)

    def derivative(self, z):
        return (np.abs(z) > self.theta).astype(float)

    def __repr__(self) -> str:
        th = f"{self.theta[0]:.4g}" if np.all(self.theta == self.theta[0]) else "per-coordinate"
        return f"SoftThreshold(size={self.size}, theta={th})"


class ReLU(Activation):
    """:math:`\\max(z, 0)`, slope in [0, 1]."""

    kind = "relu"
    tags = frozenset({"elementwise", "monotone", "firmly_nonexpansive", "prox"})

    def __call__(self, z):
        return np.maximum(z, 0.0)

    def derivative(self, z):
        return (z > 0).astype(float)


class LeakyReLU(Activation):
    """:math:`\\max(z, a z)` with ``0 <= a <= 1``, slope in [a, 1]."""

    kind = "leaky_relu"
    tags = frozenset({"elementwise", "monotone", "nonexpansive"})

    def __init__(self, size: int, negative_slope: float = 0.01):
        super().__init__(size)
        self.negative_slope = check_scalar(negative_slope, "negative_slope", low=0.0, high=1.0)
        self._slopes = (self.negative_slope, 1.0)

    def __call__(self, z):
        return np.where(z > 0, z, self.negative_slope * z)

    def derivative(self, z):
        return np.where(z > 0, 1.0, self.negative_slope)

    def __repr__(self) -> str:
        return f"LeakyReLU(size={self.size}, negative_slope={self.negative_slope:g})"


class Clip(Activation):
    """Projection onto the box ``[lower, upper]`` (per coordinate), slope in [0, 1]."""

    kind = "clip"
    tags = frozenset({"elementwise", "monotone", "firmly_nonexpansive", "prox"})

    def __init__(self, lower: Any, upper: Any, size: int):
        super().__init__(size)
        self.lower, self.upper = _vector(lower, self.size, "lower"), _vector(upper, self.size, "upper")
        if (self.lower > self.upper).any():
            raise InvalidInputError("Clip needs lower <= upper in every coordinate.")

    def __call__(self, z):
        return np.clip(z, self.lower, self.upper)

    def derivative(self, z):
        return ((z > self.lower) & (z < self.upper)).astype(float)


class Identity(Activation):
    """The identity (a linear state), slope [1, 1]."""

    kind = "identity"
    tags = frozenset({"elementwise", "monotone", "linear", "nonexpansive"})
    _slopes = (1.0, 1.0)

    def __call__(self, z):
        return as_floating(z)

    def derivative(self, z):
        return np.ones_like(z, dtype=float)


SUPPORTED_ACTIVATIONS = (SoftThreshold, ReLU, LeakyReLU, Clip, Identity)

# ---------------------------------------------------------------------------------------------- blocks


def _is_sparse(M: Any) -> bool:
    return hasattr(M, "tocsr") and hasattr(M, "nnz")


def _check_edge(M: Any, shape: tuple[int, int], name: str):
    if _is_sparse(M):
        if M.shape != shape:
            raise InvalidInputError(f"{name} must have shape {shape}; got {M.shape}.")
        if not np.isfinite(M.data).all():
            raise InvalidInputError(f"{name} contains NaN/Inf entries; pass finite values.")
        return M.tocsr().astype(float)
    arr = as_float_array(M, name, ndim=2)
    if arr.shape != shape:
        raise InvalidInputError(f"{name} must have shape {shape}; got {arr.shape}.")
    return arr


def _apply(M: Any, W: np.ndarray) -> np.ndarray:
    """Row-batched product ``W @ M.T`` for dense or sparse ``M`` (W: (batch, cols))."""
    if _is_sparse(M):
        return np.asarray(M @ W.T).T
    return W @ M.T


def _dense(M: Any) -> np.ndarray:
    return M.toarray() if _is_sparse(M) else M


@dataclass
class Block:
    r"""One block :math:`w_k = \sigma_k(\sum_{j<k} A_{kj} w_j + B_k y + b_k)` of the form.

    Attributes
    ----------
    activation : Activation
        The elementwise nonlinearity, which fixes the block size.
    inputs : dict[int, matrix]
        ``{j: A_kj}`` for earlier blocks ``j < k`` (dense or scipy sparse, shape (size_k, size_j)).
    B : matrix or None
        Input injection (size_k, m); ``None`` if the block does not read ``y``.
    b : ndarray or None
        Bias (size_k,).
    layer : int
        The unrolled layer (1-based) the block belongs to; several blocks may share a layer.
    name : str
        Label used in messages and reprs.
    """

    activation: Activation
    inputs: dict = field(default_factory=dict)
    B: Any = None
    b: np.ndarray | None = None
    layer: int = 0
    name: str = ""

    @property
    def size(self) -> int:
        return self.activation.size

    def preactivation(self, ws: Mapping[int, np.ndarray] | list, Y: np.ndarray) -> np.ndarray:
        r""":math:`z = \sum_j A_{kj} w_j + B_k y + b_k` for a batch, from the activations ``ws`` of the blocks it
        reads (indexable by block number) and the observations ``Y`` (batch, m)."""
        z = np.zeros((Y.shape[0], self.size))
        for j, M in self.inputs.items():
            z += _apply(M, ws[j])
        if self.B is not None:
            z += _apply(self.B, Y)
        if self.b is not None:
            z += self.b
        return z


class Form:
    r"""The analysis form :math:`z = A w + B y + b,\ w = \sigma(z),\ x = C w` of an unrolled network.

    Parameters
    ----------
    input_dim : int
        Dimension ``m`` of the input ``y``.
    blocks : sequence of Block
        In topological order; block ``k`` may only read blocks ``j < k``.
    output : mapping {block index: matrix}
        The readout :math:`C`; ``x = sum_j C_j w_j``.
    layer_outputs : sequence of mappings, optional
        One readout per unrolled layer, used by ``evaluate(y, return_all=True)``; defaults to ``[output]``.
    name : str
        What the form describes (shown in the repr).

    Raises
    ------
    NotRepresentableError
        If a block's activation is not one of the supported elementwise kinds.
    InvalidInputError
        If an edge reads a later block (not strictly lower-triangular), or shapes or values are invalid.
    """

    def __init__(self, input_dim: int, blocks: Iterable[Block], output: Mapping[int, Any],
                 layer_outputs: Iterable[Mapping[int, Any]] | None = None, name: str = "form"):
        if isinstance(input_dim, bool) or not isinstance(input_dim, (int, np.integer)) or input_dim < 1:
            raise InvalidInputError(f"input_dim must be a positive integer; got {input_dim!r}.")
        self.input_dim = int(input_dim)
        self.name = name
        self.blocks: list[Block] = []
        for k, blk in enumerate(blocks):
            self.blocks.append(self._check_block(k, blk))
        if not self.blocks:
            raise InvalidInputError("blocks must hold at least one Block.")
        self.output = self._check_readout(output, "output")
        outs = [output] if layer_outputs is None else list(layer_outputs)
        self.layer_outputs = [self._check_readout(o, f"layer_outputs[{i}]") for i, o in enumerate(outs)]
        self.output_dim = self._readout_dim(self.output)

    # ------------------------------------------------------------------ validation
    def _check_block(self, k: int, blk: Block) -> Block:
        label = blk.name or f"block {k}"
        if not isinstance(blk, Block):
            raise InvalidInputError(f"blocks[{k}] must be a Block; got {type(blk).__name__}.")
        if not isinstance(blk.activation, SUPPORTED_ACTIVATIONS):
            kinds = ", ".join(c.__name__ for c in SUPPORTED_ACTIVATIONS)
            raise NotRepresentableError(
                f"{label} has activation {type(blk.activation).__name__!s}, which the analysis form cannot "
                f"represent; supported elementwise kinds: {kinds}. Write the layer with these (or as extra "
                "sub-blocks), or use an analysis that does not need the form.")
        size = blk.size
        inputs = {}
        for j, M in blk.inputs.items():
            if not isinstance(j, (int, np.integer)) or not 0 <= j < k:
                raise InvalidInputError(
                    f"{label} (index {k}) reads block {j!r}; a block may only read earlier blocks "
                    f"0..{k - 1} (A must be strictly block-lower-triangular).")
            inputs[int(j)] = _check_edge(M, (size, self.blocks[j].size), f"{label}.inputs[{j}]")
        B = None if blk.B is None else _check_edge(blk.B, (size, self.input_dim), f"{label}.B")
        b = None if blk.b is None else _vector(blk.b, size, f"{label}.b")
        return Block(blk.activation, inputs, B, b, int(blk.layer), blk.name or f"block{k}")

    def _check_readout(self, readout: Mapping[int, Any], name: str) -> dict:
        if not isinstance(readout, Mapping) or not readout:
            raise InvalidInputError(f"{name} must be a non-empty mapping {{block index: matrix}}.")
        out, rows = {}, None
        for j, M in readout.items():
            if not isinstance(j, (int, np.integer)) or not 0 <= j < len(self.blocks):
                raise InvalidInputError(f"{name} reads block {j!r}, which does not exist.")
            r = M.shape[0] if hasattr(M, "shape") and len(M.shape) == 2 else None
            if r is None:
                raise InvalidInputError(f"{name}[{j}] must be a 2-D matrix.")
            rows = r if rows is None else rows
            if r != rows:
                raise InvalidInputError(f"{name} matrices must all have {rows} rows; {name}[{j}] has {r}.")
            out[int(j)] = _check_edge(M, (rows, self.blocks[j].size), f"{name}[{j}]")
        return out

    @staticmethod
    def _readout_dim(readout: dict) -> int:
        return next(iter(readout.values())).shape[0]

    # ------------------------------------------------------------------ structure
    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def num_layers(self) -> int:
        """Number of unrolled layers (readouts available to ``evaluate(..., return_all=True)``)."""
        return len(self.layer_outputs)

    @property
    def sizes(self) -> list[int]:
        return [blk.size for blk in self.blocks]

    @property
    def num_neurons(self) -> int:
        return sum(self.sizes)

    def kinds(self) -> list[str]:
        """The activation kind of each block."""
        return [blk.activation.kind for blk in self.blocks]

    def slopes(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-coordinate slope bounds ``(alpha, beta)`` over all blocks, each of shape (num_neurons,)."""
        lo, hi = zip(*(blk.activation.slope_bounds() for blk in self.blocks))
        return np.concatenate(lo), np.concatenate(hi)

    def __repr__(self) -> str:
        kinds = sorted(set(self.kinds()))
        edges = sum(len(b.inputs) for b in self.blocks)
        return (f"Form({self.name!r}: y in R^{self.input_dim} -> x in R^{self.output_dim}; "
                f"{self.num_blocks} blocks, {self.num_neurons} neurons, {edges} edges, "
                f"{self.num_layers} layer outputs; activations {kinds})")

    # ------------------------------------------------------------------ evaluation
    def evaluate_blocks(self, y: Any) -> tuple[list[np.ndarray], list[np.ndarray], bool]:
        """Pre-activations ``z_k`` and activations ``w_k`` of every block, each (batch, size_k), in
        float64, plus whether ``y`` was a single instance."""
        Y, single = check_observations(y, self.input_dim, "y")
        zs, ws = [], []
        for blk in self.blocks:
            z = blk.preactivation(ws, Y)
            zs.append(z)
            ws.append(blk.activation(z))
        return zs, ws, single

    def _read(self, readout: dict, ws: list[np.ndarray]) -> np.ndarray:
        return sum(_apply(M, ws[j]) for j, M in readout.items())

    def evaluate(self, y: Any, return_all: bool = False):
        """Run the form on ``y`` ((m,) or (batch, m)) in float64.

        Returns ``x`` ((n_out,) or (batch, n_out)), or with ``return_all=True`` the list of layer outputs.
        """
        _, ws, single = self.evaluate_blocks(y)
        readouts = self.layer_outputs if return_all else [self.output]
        outs = [self._read(r, ws) for r in readouts]
        if single:
            outs = [o[0] for o in outs]
        return outs if return_all else outs[0]

    def jacobian(self, y: Any) -> np.ndarray:
        r"""Jacobian :math:`\partial x / \partial y` at ``y`` (shape (n_out, m), or (batch, n_out, m)).

        At a kink of an activation the derivative of :meth:`Activation.derivative` is used (an element of
        the Clarke generalised Jacobian).  Its spectral norm at any point is a *lower* bound on the Lipschitz
        constant of the network, never an upper bound.
        """
        zs, _, single = self.evaluate_blocks(y)
        batch = zs[0].shape[0]
        eye = np.broadcast_to(np.eye(self.input_dim), (batch, self.input_dim, self.input_dim))
        jw = []  # d w_k / d y, (batch, size_k, m)
        for blk, z in zip(self.blocks, zs):
            jz = np.zeros((batch, blk.size, self.input_dim))
            for j, M in blk.inputs.items():
                jz += np.einsum("ij,bjm->bim", _dense(M), jw[j])
            if blk.B is not None:
                jz += np.einsum("ij,bjm->bim", _dense(blk.B), eye)
            jw.append(blk.activation.derivative(z)[:, :, None] * jz)
        J = sum(np.einsum("ij,bjm->bim", _dense(M), jw[j]) for j, M in self.output.items())
        return J[0] if single else J

    def dense(self, max_neurons: int = 4096) -> dict[str, np.ndarray]:
        """Dense matrices ``A`` (N, N), ``B`` (N, m), ``b`` (N,), ``C`` (n_out, N) and slopes, for small forms
        (reference formulations in tests).  Refuses forms with more than ``max_neurons`` neurons."""
        N = self.num_neurons
        if N > max_neurons:
            raise InvalidInputError(
                f"the form has {N} neurons; dense() is for small forms (max_neurons={max_neurons}). "
                "Use the block structure instead, or raise max_neurons explicitly.")
        offs = np.concatenate([[0], np.cumsum(self.sizes)])
        A, B, b = np.zeros((N, N)), np.zeros((N, self.input_dim)), np.zeros(N)
        C = np.zeros((self.output_dim, N))
        for k, blk in enumerate(self.blocks):
            rows = slice(offs[k], offs[k + 1])
            for j, M in blk.inputs.items():
                A[rows, offs[j]:offs[j + 1]] = _dense(M)
            if blk.B is not None:
                B[rows] = _dense(blk.B)
            if blk.b is not None:
                b[rows] = blk.b
        for j, M in self.output.items():
            C[:, offs[j]:offs[j + 1]] = _dense(M)
        alpha, beta = self.slopes()
        return {"A": A, "B": B, "b": b, "C": C, "alpha": alpha, "beta": beta}


def require_form(model: Any, input_dim: int | None = None) -> Form:
    """Return the analysis form of ``model``: the form itself, ``model.form()``, or for a plain torch module
    without a ``form`` method the form captured by :func:`unfoldtheory.form.extract` (docs/your_model.md §1).

    Analyses that need the form call this.  ``input_dim`` is the dimension ``m`` of the observations; for a
    plain module it is inferred when possible (an ``input_dim`` or ``m`` attribute, or the ``in_features`` of
    one of its ``nn.Linear`` layers that accepts a (batch, m) input).

    Raises
    ------
    NotRepresentableError
        The model has no form: not a torch module and no ``form()`` method, or its computation contains an
        operation the form cannot represent (the message names it and its source line).
    InvalidInputError
        ``input_dim`` is needed and cannot be inferred (the message says to call
        ``ut.form.extract(model, input_dim=m)``).
    """
    if isinstance(model, Form):
        return model
    make = getattr(model, "form", None)
    if callable(make):
        form = make()
        if not isinstance(form, Form):
            raise NotRepresentableError(
                f"{type(model).__name__}.form() returned {type(form).__name__}, not a Form.")
        return form
    if _is_torch_module(model):
        from ._extract import extract_cached

        return extract_cached(model, input_dim)
    raise NotRepresentableError(
        f"{type(model).__name__} is neither a Form, a model with a .form() method, nor a torch.nn.Module, so "
        "it has no analysis form. Pass the torch module itself (its form is extracted with "
        "unfoldtheory.form.extract), or a Form.")


def _is_torch_module(obj: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)
