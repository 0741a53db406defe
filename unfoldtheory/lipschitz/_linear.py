r"""Linear (symbolic) bound propagation over a box: CROWN / Fast-Lin-style pre-activation bounds for a form.

For a box :math:`D = [y_{lo}, y_{hi}]` (or an l2 ball) every pre-activation :math:`z_{k,i}(y)` gets an interval valid for all
:math:`y \in D` (``docs/theory/exact_lipschitz.md §7``).  Unlike interval propagation, which forgets the
correlation between neurons and explodes with depth, each bound is a *linear function of y* obtained by
back-substituting through every earlier block:

* every neuron of an earlier block :math:`j` with pre-activation interval :math:`[l, u]` is enclosed by a
  lower and an upper line :math:`s_{lo} z + b_{lo} \le \sigma(z) \le s_{hi} z + b_{hi}` on :math:`[l, u]`.
  Each slope is chosen among the chord slope :math:`(\sigma(u) - \sigma(l))/(u - l)` and the activation's
  extreme slopes (0 and 1 for a soft threshold, a ReLU or a clip) as the one whose line, pushed to touch
  :math:`\sigma`, encloses the least area over :math:`[l, u]` (the adaptive choice of CROWN; for a line of
  slope :math:`s` through :math:`[l, u]` the area against :math:`\sigma` is :math:`(u - l)` times its gap at the
  midpoint, so the slope minimising (upper) or maximising (lower) :math:`s (l + u)/2 + b(s)` wins).  The
  offset of slope :math:`s` is the max (upper) or min (lower) of :math:`\sigma(p) - s p` over the end points
  and the kinks inside :math:`[l, u]`, exact for a piecewise linear :math:`\sigma` (:math:`\sigma -
  s\,\mathrm{id}` is piecewise linear, its extremes lie at those points), so the enclosure is sound for every
  choice; a neuron inside one linear piece is exact (both lines are the piece);
* the rows :math:`\pm e_i^T z_k` are propagated backwards (:math:`z_j = \sum_i A_{ji} w_i + B_j y + b_j`),
  choosing the upper or lower line of each neuron by the sign of its coefficient, until only
  :math:`\Gamma y + c` is left, which is maximised over the box in closed form.

This is the Fast-Lin / CROWN relaxation (T.-W. Weng et al., "Towards fast computation of certified
robustness for ReLU networks", ICML 2018; H. Zhang et al., "Efficient neural network robustness certification
with general activation functions", NeurIPS 2018; G. Singh et al., "An abstract domain for certifying neural
networks" (DeepPoly), POPL 2019) written for the analysis form: input injection into every block, blocks that
read several earlier blocks, soft thresholds and clips.  Every interval is intersected with the interval-
propagation one (both are sound).

Optimised slopes (alpha-CROWN, :func:`alpha_bounds`; K. Xu et al., ICLR 2021): since the enclosure is sound
for every slope, the slopes of the undecided neurons may be chosen per target row to minimise that row's
bound; a few steps of projected gradient through the same back-substitution (:func:`_backward` is written
for numpy arrays and torch tensors alike) choose them, and the rigorous numpy pass recomputes the bounds.

Rounding: the relaxation offsets are widened by a rounding bound of their own evaluation, and each propagated
bound by :math:`\gamma_n` times the same back-substitution run on absolute values (the standard a-priori bound
on a floating-point sum of products), so the returned intervals contain the exact ones.
"""

from __future__ import annotations

import numpy as np

from ..form import Clip, Form, Identity, LeakyReLU, ReLU, SoftThreshold
from ._local import interval_bounds

_U = np.finfo(np.float64).eps / 2


def _dense(M) -> np.ndarray:
    return M.toarray() if hasattr(M, "toarray") else np.asarray(M, dtype=np.float64)


def _kinks(act, size: int) -> np.ndarray:
    """(size, k) breakpoints of a supported activation (k = 0 for the identity)."""
    if isinstance(act, SoftThreshold):
        return np.stack([-act.theta, act.theta], axis=1)
    if isinstance(act, (ReLU, LeakyReLU)):
        return np.zeros((size, 1))
    if isinstance(act, Clip):
        return np.stack([act.lower, act.upper], axis=1)
    if isinstance(act, Identity):
        return np.zeros((size, 0))
    raise TypeError(f"unsupported activation {type(act).__name__}")  # pragma: no cover - Form refuses


def _undecided(act, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(n,) mask of the neurons with a kink strictly inside ``(lo, hi)`` (those whose slope is not fixed)."""
    K = _kinks(act, lo.shape[0])
    return ((K > lo[:, None]) & (K < hi[:, None])).any(axis=1)


def _points(act, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, p) candidate extreme points ``{lo, hi, kinks clipped into [lo, hi]}`` and the activation at them."""
    K = _kinks(act, lo.shape[0])
    pts = np.concatenate([lo[:, None], hi[:, None], np.clip(K, lo[:, None], hi[:, None])], axis=1)
    vals = np.stack([act(pts[:, c]) for c in range(pts.shape[1])], axis=1)
    return pts, vals


def _offset(pts: np.ndarray, vals: np.ndarray, s: np.ndarray, upper: bool) -> np.ndarray:
    r"""Outward-rounded offset of the upper (max over the points of :math:`\sigma(p) - s p`) or lower (min) line
    of slope ``s`` (shape (n,), or (r, n) for one slope per back-substituted row)."""
    sp = s[..., None] * pts
    off = vals - sp
    err = 8 * _U * np.max(np.abs(vals) + np.abs(pts) + np.abs(sp), axis=-1) + 1e-300
    return off.max(axis=-1) + err if upper else off.min(axis=-1) - err


def relaxation(act, lo: np.ndarray, hi: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Linear enclosure of a piecewise-linear activation on ``[lo, hi]`` (per neuron).

    Returns ``(s_lo, b_lo, s_hi, b_hi)`` with :math:`s_{lo} z + b_{lo} \le \sigma(z) \le s_{hi} z + b_{hi}`
    for every :math:`z \in [lo, hi]` (offsets outward rounded), each slope the least-area choice among the
    chord and the activation's extreme slopes; see the module docstring.
    """
    n = lo.shape[0]
    if isinstance(act, Identity):
        return np.ones(n), np.zeros(n), np.ones(n), np.zeros(n)
    pts, vals = _points(act, lo, hi)
    width = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        chord = np.where(width > 0, (vals[:, 1] - vals[:, 0]) / np.where(width > 0, width, 1.0), 0.0)
    a, b = (np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)) for v in act.slope_bounds())
    slopes = np.stack([chord, a, b], axis=1)                      # candidate slopes (n, 3)
    mid = (lo + hi) / 2
    rows = np.arange(n)
    lines = []
    for upper in (False, True):
        offs = np.stack([_offset(pts, vals, slopes[:, c], upper) for c in range(slopes.shape[1])], axis=1)
        at_mid = slopes * mid[:, None] + offs
        best = np.argmin(at_mid, axis=1) if upper else np.argmax(at_mid, axis=1)
        lines += [slopes[rows, best], offs[rows, best]]
    return tuple(lines)


def _where_of(x):
    """``np.where`` or ``torch.where``, whichever fits ``x``'s array type."""
    if type(x).__module__.startswith("torch"):
        import torch

        return torch.where
    return np.where


def _acc(total, term):
    return term if total is None else total + term


def _backward(form: Form, k: int, rows, relax: list, dense: list, absolute: bool) -> tuple:
    """Back-substitute ``rows @ z_k`` (r, n_k) through blocks ``k-1, ..., 0``: returns ``(Gamma (r, m), c
    (r,))`` with ``rows @ z_k <= Gamma y + c`` for y in the domain (upper lines for positive coefficients, lower
    lines for negative ones).  ``relax[j] = (s_lo, b_lo, s_hi, b_hi)`` is the enclosure of block ``j`` used for
    this target block, each of shape (n_j,) (one line per neuron) or (r, n_j) (one line per row: the
    optimised slopes of :func:`alpha_bounds`).  ``absolute=True`` runs the same recursion on absolute values
    (the magnitude used for the rounding bound).  Written with operators that numpy arrays and torch tensors
    share, so the slope optimiser differentiates this very recursion."""
    r = rows.shape[0]
    lam: dict = {k: rows}
    Gam = c = None
    for j in range(k, -1, -1):
        L = lam.pop(j, None)
        if L is None:
            continue
        if j < k:  # L multiplies w_j: replace it by the relaxation lines in z_j
            slo, blo, shi, bhi = relax[j]
            if absolute:
                c = _acc(c, (L * np.maximum(np.abs(blo), np.abs(bhi))).sum(-1))
                L = L * np.maximum(np.abs(slo), np.abs(shi))
            else:
                where = _where_of(L)
                pos = L > 0
                c = _acc(c, (L * where(pos, bhi, blo)).sum(-1))
                L = L * where(pos, shi, slo)
        # L multiplies z_j = sum_i A_ji w_i + B_j y + b_j
        Bj, bj, inp = dense[j]
        if Bj is not None:
            Gam = _acc(Gam, L @ Bj)
        if bj is not None:
            c = _acc(c, L @ bj)
        for i, Aji in inp.items():
            lam[i] = _acc(lam.get(i), L @ Aji)
    zeros = rows.new_zeros if hasattr(rows, "new_zeros") else np.zeros
    return (zeros((r, form.input_dim)) if Gam is None else Gam), (zeros(r) if c is None else c)


class _Domain:
    """The ball or box, outward-widened, with the dense block matrices and the rounding factor."""

    def __init__(self, form: Form, center, radius, norm: str):
        self.center = np.asarray(center, dtype=np.float64)
        self.norm = norm
        if norm == "l2":
            self.r = float(radius) * (1 + 4 * _U)
        else:
            self.r = (np.broadcast_to(np.asarray(radius, dtype=np.float64), self.center.shape) * (1 + 4 * _U)
                      + 4 * _U * np.abs(self.center))
        self.ibp = interval_bounds(form, self.center, self.r, norm)
        self.yabs = np.abs(self.center) + self.r
        self.dense, self.dense_abs = [], []
        for blk in form.blocks:
            Bd = None if blk.B is None else _dense(blk.B)
            inp = {int(j): _dense(M) for j, M in blk.inputs.items()}
            self.dense.append((Bd, None if blk.b is None else np.asarray(blk.b, float), inp))
            self.dense_abs.append((None if Bd is None else np.abs(Bd), None if blk.b is None else np.abs(blk.b),
                                   {j: np.abs(M) for j, M in inp.items()}))
        n_ops = 2 * (form.num_blocks + 2) * (max([form.input_dim] + form.sizes) + 4)
        self.gam = n_ops * _U / (1 - n_ops * _U)

    def upper(self, form: Form, k: int, rows: np.ndarray, relax: list) -> np.ndarray:
        """Rigorous upper bounds of ``rows @ z_k`` over the domain with the enclosures ``relax``."""
        G, c = _backward(form, k, rows, relax, self.dense, absolute=False)
        Ga, ca = _backward(form, k, np.abs(rows), relax, self.dense_abs, absolute=True)
        spread = self.r * np.linalg.norm(G, axis=1) if self.norm == "l2" else np.abs(G) @ self.r
        err = self.gam * (Ga @ self.yabs + ca) * (1 + 8 * _U) + 1e-300
        return G @ self.center + spread + c + err


def linear_bounds(form: Form, center: np.ndarray, radius, norm: str = "linf") -> list:
    r"""Sound pre-activation intervals ``[(l_k, u_k)]`` of every block over the ball
    :math:`\{y : \|y - c\|_p \le r\}` (``norm="linf"``: ``radius`` may be a vector of half-widths, i.e. a box;
    ``norm="l2"``: a scalar) by linear bound propagation (module docstring), intersected with interval
    propagation.  Same format as :func:`._local.interval_bounds`.  A linear function :math:`\Gamma y + c_0`
    is maximised over the box by :math:`\Gamma c + |\Gamma| r + c_0` and over the l2 ball by
    :math:`\Gamma c + r \|\Gamma_{i,:}\|_2 + c_0`."""
    return _crown(form, _Domain(form, center, radius, norm))


def _crown(form: Form, dom: _Domain) -> list:
    relax, out = [], []
    for k, blk in enumerate(form.blocks):
        n = blk.size
        up = dom.upper(form, k, np.concatenate([np.eye(n), -np.eye(n)]), relax)
        li, ui = dom.ibp[k]
        lb, ub = np.maximum(-up[n:], li), np.minimum(up[:n], ui)
        out.append((lb, ub))
        relax.append(relaxation(blk.activation, lb, ub))
    return out


#: Work budget of :func:`alpha_bounds`: projected `torch.optim.Adam` steps on the slopes per target block.
ALPHA_STEPS = 20
#: ``local_sandwich(propagation="auto")`` optimises the slopes (``"alpha"``) up to this many neurons and uses
#: plain CROWN (``"linear"``) above: the optimiser's work grows like (block size)^3 x blocks^2 x ALPHA_STEPS
#: (docs/theory/exact_lipschitz.md §7).
ALPHA_AUTO_MAX_NEURONS = 2048
#: Adam step size on the slopes (which live in the activation's slope range, [0, 1] for most activations).
ALPHA_LR = 0.1


def alpha_bounds(form: Form, center: np.ndarray, radius, norm: str = "linf", *, steps: int = ALPHA_STEPS,
                 lr: float = ALPHA_LR) -> list:
    r"""Sound pre-activation intervals with optimised relaxation slopes (alpha-CROWN).

    Same quantity and format as :func:`linear_bounds`.  For each block ``k`` whose intervals leave a neuron
    undecided (a kink strictly inside), the rows :math:`\pm e_i^T z_k` of those neurons get their own lower
    and upper slopes for every undecided neuron of the earlier blocks ``k`` reads (directly or not), chosen in
    the activation's slope range by ``steps`` steps of projected Adam (torch, float64, autograd through
    :func:`_backward`) on the sum of the rows' bounds, i.e. the sum of the widths, starting from CROWN's
    adaptive slopes; for every row the best slopes seen are kept.  Any slopes give a sound enclosure (the
    offsets are the min / max of :math:`\sigma(p) - s p` over the end points and kinks), so the optimiser only
    chooses them: the bounds are recomputed with the rigorous numpy back-substitution and its rounding bound,
    and intersected with the CROWN-adaptive ones (on the tightened earlier intervals, and those of
    :func:`linear_bounds`) and the interval ones, so they are never wider than :func:`linear_bounds`.  Reference: K. Xu et al., "Fast and
    complete: enabling complete neural network verification with rapid and massively parallel incomplete
    verifiers", ICLR 2021 (alpha-CROWN); ``docs/theory/exact_lipschitz.md §7``.
    """
    dom = _Domain(form, center, radius, norm)
    base = _crown(form, dom)
    tdense = None
    relax, out = [], []
    for k, blk in enumerate(form.blocks):
        lb, ub = (v.copy() for v in base[k])
        for optimise in (False, True):  # CROWN on the tightened earlier intervals, then optimised slopes
            idx = np.flatnonzero(_undecided(blk.activation, lb, ub))
            if k == 0 or not idx.size or (optimise and steps == 0):
                break
            eye = np.eye(blk.size)[idx]
            rows = np.concatenate([eye, -eye])
            relax_k = relax
            if optimise:
                if tdense is None:
                    tdense = _torch_dense(dom.dense)
                relax_k = _optimised_relaxations(form, dom, tdense, k, rows, relax, out, steps, lr)
            up = dom.upper(form, k, rows, relax_k)
            ub[idx] = np.minimum(ub[idx], up[:idx.size])
            lb[idx] = np.maximum(lb[idx], -up[idx.size:])
        out.append((lb, ub))
        relax.append(relaxation(blk.activation, lb, ub))
    return out


def _torch_dense(dense: list) -> list:
    import torch

    def t(M):
        return None if M is None else torch.as_tensor(M, dtype=torch.float64)

    return [(t(B), t(b), {i: t(M) for i, M in inp.items()}) for B, b, inp in dense]


def _ancestors(form: Form, k: int) -> set:
    """Blocks whose activations ``z_k`` depends on (directly or through other blocks)."""
    seen = {k}
    for j in range(k, -1, -1):
        if j in seen:
            seen.update(int(i) for i in form.blocks[j].inputs)
    seen.discard(k)
    return seen


def _optimised_relaxations(form: Form, dom: _Domain, tdense: list, k: int, rows: np.ndarray, relax: list,
                           out: list, steps: int, lr: float) -> list:
    """Per-row enclosures of blocks ``0..k-1`` for the target rows ``rows @ z_k``: the undecided neurons'
    slopes optimised by projected Adam on the sum of the rows' (unrounded) bounds, the best slopes per row
    kept, the offsets recomputed rigorously (:func:`_offset`)."""
    import torch

    r = rows.shape[0]
    anc = _ancestors(form, k)
    free = {}
    trelax = []
    for j in range(k):
        act = form.blocks[j].activation
        lo, hi = out[j]
        slo, blo, shi, bhi = relax[j]
        und = _undecided(act, lo, hi) if j in anc else None
        if und is not None and und.any():
            a, b = (np.broadcast_to(np.asarray(v, dtype=np.float64), lo.shape) for v in act.slope_bounds())
            pts, vals = _points(act, lo, hi)
            box = []
            for s0 in (slo, shi):  # decided neurons keep their (exact) piece: a zero-width slope range
                box.append((torch.as_tensor(np.where(und, a, s0)), torch.as_tensor(np.where(und, b, s0))))
            p_lo = torch.tensor(np.broadcast_to(slo, (r, lo.size)).copy(), requires_grad=True)
            p_hi = torch.tensor(np.broadcast_to(shi, (r, lo.size)).copy(), requires_grad=True)
            free[j] = (p_lo, p_hi, box, torch.as_tensor(pts), torch.as_tensor(vals), pts, vals)
            trelax.append(None)
        else:
            trelax.append(tuple(torch.as_tensor(v) for v in relax[j]))
    if not free:
        return relax
    trows, tc = torch.as_tensor(rows), torch.as_tensor(dom.center)
    trad = dom.r if dom.norm == "l2" else torch.as_tensor(dom.r)

    def bounds():
        rel = list(trelax)
        for j, (p_lo, p_hi, _, tp, tv, _, _) in free.items():
            rel[j] = (p_lo, (tv - p_lo[..., None] * tp).amin(-1), p_hi, (tv - p_hi[..., None] * tp).amax(-1))
        G, c = _backward(form, k, trows, rel, tdense, absolute=False)
        spread = trad * torch.sqrt((G * G).sum(1) + 1e-300) if dom.norm == "l2" else G.abs() @ trad
        return G @ tc + spread + c

    params = [p for f in free.values() for p in f[:2]]
    best_val = np.full(r, np.inf)
    best = {j: (f[0].detach().numpy().copy(), f[1].detach().numpy().copy()) for j, f in free.items()}
    boxes = [bx for f in free.values() for bx in f[2]]
    opt = torch.optim.Adam(params, lr=lr)
    for t in range(steps + 1):
        val = bounds()
        v = val.detach().numpy()
        better = v < best_val
        if better.any():
            best_val = np.where(better, v, best_val)
            for j, f in free.items():
                best[j][0][better] = f[0].detach().numpy()[better]
                best[j][1][better] = f[1].detach().numpy()[better]
        if t == steps:
            break
        opt.zero_grad()
        val.sum().backward()
        opt.step()
        with torch.no_grad():  # projection onto the slope range
            for p, (lo_s, hi_s) in zip(params, boxes):
                p.copy_(torch.minimum(torch.maximum(p, lo_s), hi_s))
    relax_k = list(relax)
    for j, f in free.items():
        pts, vals = f[5], f[6]
        s_lo, s_hi = best[j]
        relax_k[j] = (s_lo, _offset(pts, vals, s_lo, False), s_hi, _offset(pts, vals, s_hi, True))
    return relax_k
