r"""Internal float64 view of an analysis form used by the Lipschitz certificates.

:class:`Net` holds exactly what the incremental (Lipschitz) analysis needs from a
:class:`~unfoldtheory.form.Form`: per block the slope interval :math:`[\alpha_i, \beta_i]` of every neuron,
the edges :math:`A_{kj}` (dense float64), the input injection :math:`B_k`, the readout :math:`C_j`, and an
optional direct linear term :math:`x \mathrel{+}= D y` that appears after linear neurons are eliminated.
Biases and thresholds do not enter any incremental bound (they cancel in differences) and are dropped.

:func:`eliminate_fixed` removes every neuron whose slope is pinned (:math:`\alpha_i = \beta_i = s_i`): such a
neuron is exactly linear, :math:`\Delta w_i = s_i \Delta z_i`, so it can be substituted into the blocks that
read it.  The result is an equivalent network (same map :math:`\Delta y \mapsto \Delta x`) in which every
remaining neuron has :math:`\alpha_i < \beta_i`; this is what makes a finite LipSDP multiplier exist for every
neuron (a pinned neuron would need :math:`t_i = \infty`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidInputError
from ..form import Form

_U = np.finfo(np.float64).eps / 2  # unit roundoff of float64


def _dense(M) -> np.ndarray:
    if hasattr(M, "toarray"):
        M = M.toarray()
    return np.asarray(M, dtype=np.float64)


@dataclass
class Net:
    """A form reduced to what incremental analyses read (see module docstring)."""

    m: int
    sizes: list
    alpha: list
    beta: list
    inputs: list            # inputs[k] = {j: A_kj (n_k, n_j)}, j < k
    B: list                 # B[k] = (n_k, m) or None
    output: dict            # {j: C_j (out, n_j)}
    out_dim: int
    direct: np.ndarray | None = None   # (out, m) or None
    names: list = field(default_factory=list)

    @property
    def num_blocks(self) -> int:
        return len(self.sizes)

    @property
    def num_neurons(self) -> int:
        return int(sum(self.sizes))

    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)

    def readers(self) -> list:
        """readers[j] = blocks k that read block j."""
        out = [[] for _ in self.sizes]
        for k, inp in enumerate(self.inputs):
            for j in inp:
                out[j].append(k)
        return out

    def is_chain(self) -> bool:
        """Whether block k reads at most block k-1 and the readout reads one block (LISTA/ISTA shape)."""
        return all(set(inp) <= {k - 1} for k, inp in enumerate(self.inputs)) and len(self.output) <= 1

    def check_finite(self) -> None:
        for k in range(self.num_blocks):
            for j, M in self.inputs[k].items():
                if not np.isfinite(M).all():
                    raise InvalidInputError(
                        f"edge A[{k},{j}] of the form contains NaN/Inf; pass finite weights.")
            if self.B[k] is not None and not np.isfinite(self.B[k]).all():
                raise InvalidInputError(f"input injection B[{k}] contains NaN/Inf; pass finite weights.")
        for j, M in self.output.items():
            if not np.isfinite(M).all():
                raise InvalidInputError(f"readout C[{j}] contains NaN/Inf; pass finite weights.")

    def evaluate_linear(self, slopes: list, v: np.ndarray) -> np.ndarray:
        """Apply the linear map obtained by fixing every neuron's slope (``slopes[k]`` per block) to ``v``
        ((m,) or (m, r)); used by tests and by the local analysis."""
        V = v if v.ndim == 2 else v[:, None]
        ws = []
        for k in range(self.num_blocks):
            z = np.zeros((self.sizes[k], V.shape[1]))
            for j, M in self.inputs[k].items():
                z += M @ ws[j]
            if self.B[k] is not None:
                z += self.B[k] @ V
            ws.append(slopes[k][:, None] * z)
        x = sum((C @ ws[j] for j, C in self.output.items()), np.zeros((self.out_dim, V.shape[1])))
        if self.direct is not None:
            x = x + self.direct @ V
        return x if v.ndim == 2 else x[:, 0]


def from_form(form: Form) -> Net:
    """Convert a :class:`Form` into a :class:`Net` (dense float64 edges, slopes per neuron)."""
    sizes, alpha, beta, inputs, B, names = [], [], [], [], [], []
    for blk in form.blocks:
        a, b = blk.activation.slope_bounds()
        sizes.append(blk.size)
        alpha.append(np.asarray(a, dtype=np.float64).copy())
        beta.append(np.asarray(b, dtype=np.float64).copy())
        inputs.append({int(j): _dense(M) for j, M in blk.inputs.items()})
        B.append(None if blk.B is None else _dense(blk.B))
        names.append(blk.name)
    output = {int(j): _dense(M) for j, M in form.output.items()}
    net = Net(form.input_dim, sizes, alpha, beta, inputs, B, output, form.output_dim, None, names)
    net.check_finite()
    return net


def with_slopes(net: Net, alpha: list, beta: list) -> Net:
    """A copy of ``net`` with other slope intervals (same edges)."""
    return Net(net.m, list(net.sizes), [np.asarray(a, float) for a in alpha],
               [np.asarray(b, float) for b in beta],
               net.inputs, net.B, net.output, net.out_dim, net.direct, list(net.names))


def eliminate_fixed(net: Net) -> Net:
    r"""Substitute every neuron with a pinned slope (:math:`\alpha_i = \beta_i = s_i`) into its readers.

    For block :math:`k` the pre-activation is rewritten as :math:`\Delta z_k = \sum_{j<k} \tilde A_{kj} \Delta
    w_j^{U} + \tilde B_k \Delta y`, with :math:`U_j` the free neurons of block :math:`j` (:math:`\alpha <
    \beta`), using :math:`\Delta w_j^{F} = s^F_j \odot \Delta z_j^F` for the pinned ones.  Blocks left without
    free neurons disappear; the readout gains a direct term :math:`D \Delta y` when pinned neurons carry ``y``
    straight to the output.  The map :math:`\Delta y \mapsto \Delta x` is unchanged (exact, no bound
    involved).
    """
    fixed = [a == b for a, b in zip(net.alpha, net.beta)]
    if not any(f.any() for f in fixed):
        return net
    nb = net.num_blocks
    free = [np.flatnonzero(~f) for f in fixed]
    pinned = [np.flatnonzero(f) for f in fixed]
    # eff[k] = ({i: Atilde_ki (n_k, |U_i|)}, Btilde_k (n_k, m)): z_k in terms of free neurons and y
    eff = []
    for k in range(nb):
        At: dict = {}
        Bt = np.zeros((net.sizes[k], net.m)) if net.B[k] is None else net.B[k].copy()
        for j, M in net.inputs[k].items():
            if free[j].size:
                At[j] = At.get(j, 0) + M[:, free[j]]
            if pinned[j].size:
                MF = M[:, pinned[j]] * net.alpha[j][pinned[j]]
                Aj, Bj = eff[j]
                for i, Aji in Aj.items():
                    At[i] = At.get(i, 0) + MF @ Aji[pinned[j]]
                Bt = Bt + MF @ Bj[pinned[j]]
        eff.append((At, Bt))
    new_index = {}
    sizes, alpha, beta, inputs, B, names = [], [], [], [], [], []
    for k in range(nb):
        if not free[k].size:
            continue
        new_index[k] = len(sizes)
        U = free[k]
        At, Bt = eff[k]
        sizes.append(int(U.size))
        alpha.append(net.alpha[k][U].copy())
        beta.append(net.beta[k][U].copy())
        inputs.append({new_index[i]: np.ascontiguousarray(Aki[U]) for i, Aki in At.items()
                       if np.any(Aki[U] != 0)})
        b = np.ascontiguousarray(Bt[U])
        B.append(b if np.any(b != 0) else None)
        names.append(net.names[k] if k < len(net.names) else f"block{k}")
    output: dict = {}
    direct = np.zeros((net.out_dim, net.m)) if net.direct is None else net.direct.copy()
    for j, C in net.output.items():
        if free[j].size:
            output[new_index[j]] = output.get(new_index[j], 0) + C[:, free[j]]
        if pinned[j].size:
            CF = C[:, pinned[j]] * net.alpha[j][pinned[j]]
            Aj, Bj = eff[j]
            for i, Aji in Aj.items():
                output[new_index[i]] = output.get(new_index[i], 0) + CF @ Aji[pinned[j]]
            direct = direct + CF @ Bj[pinned[j]]
    output = {j: np.ascontiguousarray(C) for j, C in output.items() if np.any(C != 0)}
    return Net(net.m, sizes, alpha, beta, inputs, B, output, net.out_dim,
               direct if np.any(direct != 0) else None, names)


def spectral_norm_upper(M) -> float:
    r"""An upper bound on :math:`\|M\|_2`: the float64 SVD value inflated by its backward-error bound.

    LAPACK's SVD returns singular values with absolute error at most :math:`p(n)\,u\,\|M\|_2` with a modest
    polynomial :math:`p`; we inflate by :math:`(1 + 16\,\max(n_r, n_c)\,u)` and one ulp.
    """
    M = _dense(M)
    if M.size == 0:
        return 0.0
    small = M if M.shape[0] <= M.shape[1] else M.T
    if small.shape[0] * 4 < small.shape[1]:
        G = small @ small.T  # Gram of the short side: eigvalsh is cheaper than an SVD of the long matrix
        lam = float(np.linalg.eigvalsh(G)[-1])
        err = 16 * (small.shape[1] + small.shape[0]) * _U * float(np.sum(small * small))
        s = float(np.sqrt(max(lam + err, 0.0)))
    else:
        s = float(np.linalg.norm(small, 2))
    s *= 1.0 + 16 * max(M.shape) * _U
    return float(np.nextafter(s, np.inf))


def slope_magnitude(alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Per-neuron Lipschitz constant of a slope-restricted activation: ``max(|alpha|, |beta|)``."""
    return np.maximum(np.abs(alpha), np.abs(beta))
