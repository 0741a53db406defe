"""Torch evaluation of a model or a form (float64), batched Jacobian norms and exact float64 secant ratios.

Used by the lower bounds and by the attacks in :mod:`unfoldtheory.robustness`.  A torch module is used as it
is (a float64 copy); a :class:`~unfoldtheory.form.Form` is run by :class:`TorchForm`, which mirrors
:meth:`Form.evaluate`.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np
import torch

from .._device import resolve_device
from ..errors import InvalidInputError
from ..form import Clip, Form, Identity, LeakyReLU, ReLU, SoftThreshold

_U = np.finfo(np.float64).eps / 2


class TorchForm(torch.nn.Module):
    """A torch module computing ``form.evaluate`` (differentiable in ``y``)."""

    def __init__(self, form: Form, dtype: torch.dtype = torch.float64, device: Any = "cpu"):
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        self.form = form
        self.edges, self.Bs, self.bs, self.acts = [], [], [], []
        for blk in form.blocks:
            self.edges.append({j: torch.as_tensor(_dense(M), **kw) for j, M in blk.inputs.items()})
            self.Bs.append(None if blk.B is None else torch.as_tensor(_dense(blk.B), **kw))
            self.bs.append(None if blk.b is None else torch.as_tensor(np.asarray(blk.b), **kw))
            act = blk.activation
            if isinstance(act, SoftThreshold):
                self.acts.append(("soft", torch.as_tensor(act.theta, **kw)))
            elif isinstance(act, ReLU):
                self.acts.append(("relu", None))
            elif isinstance(act, LeakyReLU):
                self.acts.append(("leaky", act.negative_slope))
            elif isinstance(act, Clip):
                bounds = (torch.as_tensor(act.lower, **kw), torch.as_tensor(act.upper, **kw))
                self.acts.append(("clip", bounds))
            elif isinstance(act, Identity):
                self.acts.append(("id", None))
            else:  # pragma: no cover - Form refuses other kinds
                raise InvalidInputError(f"unsupported activation {type(act).__name__}")
        self.C = {j: torch.as_tensor(_dense(M), **kw) for j, M in form.output.items()}

    @staticmethod
    def _act(kind, par, z):
        if kind == "soft":
            return torch.sign(z) * torch.relu(z.abs() - par)
        if kind == "relu":
            return torch.relu(z)
        if kind == "leaky":
            return torch.where(z > 0, z, par * z)
        if kind == "clip":
            return torch.maximum(torch.minimum(z, par[1]), par[0])
        return z

    @staticmethod
    def _smooth_act(kind, par, z, tau):
        """Softplus smoothing of :meth:`_act` at temperature ``tau`` (broadcastable to ``z``); tends to the
        exact activation as ``tau -> 0``.  Used only to *search* for inputs with a large Jacobian (the lower
        bound is always evaluated on the exact network)."""
        sp = torch.nn.functional.softplus
        if kind == "soft":
            return tau * (sp((z - par) / tau) - sp((-z - par) / tau))
        if kind == "relu":
            return tau * sp(z / tau)
        if kind == "leaky":
            return par * z + (1 - par) * tau * sp(z / tau)
        if kind == "clip":
            lo, hi = par
            if not (torch.isfinite(lo).all() and torch.isfinite(hi).all()):
                return torch.maximum(torch.minimum(z, hi), lo)
            return lo + tau * (sp((z - lo) / tau) - sp((z - hi) / tau))
        return z

    def forward(self, Y: torch.Tensor, tau: Any = None, return_pre: bool = False) -> torch.Tensor:
        """``x`` for a batch ``Y`` (batch, m).  ``tau``: optional per-block temperatures (each a scalar or a
        (batch, 1) tensor) for the smoothed network of :meth:`_smooth_act`; ``return_pre=True`` returns the
        pre-activations of every block instead of the output."""
        ws, zs = [], []
        for k, (blk, edges, B, b, (kind, par)) in enumerate(zip(self.form.blocks, self.edges, self.Bs, self.bs,
                                                                 self.acts)):
            z = None
            for j, M in edges.items():
                term = ws[j] @ M.T
                z = term if z is None else z + term
            if B is not None:
                term = Y @ B.T
                z = term if z is None else z + term
            if z is None:
                z = torch.zeros(Y.shape[0], blk.size, dtype=Y.dtype, device=Y.device)
            if b is not None:
                z = z + b
            zs.append(z)
            if tau is None:
                ws.append(self._act(kind, par, z))
            else:
                ws.append(self._smooth_act(kind, par, z, tau[k]))
        if return_pre:
            return zs
        out = None
        for j, M in self.C.items():
            term = ws[j] @ M.T
            out = term if out is None else out + term
        return out


def _dense(M):
    return M.toarray() if hasattr(M, "toarray") else np.asarray(M, dtype=np.float64)


def make_evaluator(model_or_form: Any, input_dim: int | None = None, device: Any = None):
    """Return ``(f, m, form_or_None)``: a float64 torch callable ``(batch, m) -> (batch, n)``."""
    from ..form import require_form

    form = None
    dev = torch.device("cpu") if device is None else resolve_device(device)
    if isinstance(model_or_form, Form):
        form = model_or_form
        f = TorchForm(form, device=dev)
        return f, form.input_dim, form
    if isinstance(model_or_form, torch.nn.Module):
        module = copy.deepcopy(model_or_form).to(torch.float64)
        if device is not None:
            module = module.to(dev)
        module.eval()
        if hasattr(module, "check_inputs"):
            module.check_inputs = False
        for p in module.parameters():
            p.requires_grad_(False)
        m = input_dim if input_dim is not None else getattr(model_or_form, "m", None)
        if m is None:
            from ..form import infer_input_dim

            m = infer_input_dim(model_or_form)
        if m is None:
            raise InvalidInputError(
                "input_dim is required for a torch module without an attribute `m` whose input dimension "
                "cannot be inferred: pass input_dim=<length of one input y>.")
        try:
            form = require_form(model_or_form, input_dim=int(m))
        except Exception:  # noqa: BLE001 - a model without a form is still evaluable
            form = None

        dev = next((p.device for p in module.parameters()), None)
        if dev is None:
            dev = next((b.device for b in module.buffers()), torch.device("cpu"))

        def f(Y):
            return module(Y.to(dev))
        return f, int(m), form
    if callable(model_or_form) and not callable(getattr(model_or_form, "form", None)):
        # a plain function y -> x: evaluable (lower bounds need no form), given the input dimension
        if input_dim is None:
            raise InvalidInputError(f"{model_or_form!r} is a plain callable; pass input_dim=<length of one input "
                                    "y> so inputs can be drawn (lower bounds need no analysis form).")
        fn = model_or_form

        def g(Y):
            out = fn(Y.to(dev))
            if not isinstance(out, torch.Tensor):
                raise InvalidInputError(f"the callable returned {type(out).__name__}; it must map a float64 "
                                        "torch tensor (batch, m) to a tensor (batch, n).")
            return out.to(torch.float64)
        return g, int(input_dim), None
    form = require_form(model_or_form)
    return TorchForm(form, device=dev), form.input_dim, form


def jacobian_norms(f: Callable, Y: torch.Tensor, iters: int = 40,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Top singular value of the Jacobian of ``f`` at every row of ``Y`` by power iteration on J^T J.

    ``J v`` is taken as a forward difference with a tiny step (the Jacobian of the linear piece containing
    ``y``; a secant if ``y`` sits at a kink) and ``J^T u`` by reverse-mode autograd.  The result is an
    *estimate* of each ``||J(y)||_2`` from below; the certified value is taken later from a float64 secant.
    Returns ``(sigma (batch,), v (batch, m))``.
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(Y.shape, generator=gen, dtype=Y.dtype).to(Y.device)
    v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)
    Yr = Y.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = f(Yr)
    base = out.detach()
    eps = 1e-7 * (1.0 + Y.detach().abs().amax(dim=1, keepdim=True))

    def jv(vec):
        with torch.no_grad():
            return (f(Y + eps * vec) - base) / eps

    for _ in range(iters):
        Jv = jv(v)
        (JtJv,) = torch.autograd.grad(out, Yr, Jv, retain_graph=True)
        nrm = JtJv.norm(dim=1, keepdim=True)
        ok = (nrm[:, 0] > 0) & torch.isfinite(nrm[:, 0])
        v = torch.where(ok[:, None], JtJv / nrm.clamp_min(1e-300), v)
    sigma = jv(v).norm(dim=1)
    return sigma.detach(), v.detach()


class ErrorModel:
    r"""Float64 evaluation of a form with a rigorous bound on the rounding error of its output.

    With :math:`\hat z_k = \mathrm{fl}(\sum_j A_{kj}\hat w_j + B_k y + b_k)`, the standard dot-product bound
    gives :math:`|\hat z_k - (\sum_j A_{kj}\hat w_j + B_ky + b_k)| \le \gamma_q(\sum_j|A_{kj}||\hat w_j| +
    |B_k||y| + |b_k|)` entrywise (:math:`q` = longest inner product + 3), and the activation adds at most
    :math:`2u|\hat w_k|`. The exact :math:`w_k` differs from :math:`\hat w_k` by :math:`e_k` with (slope
    magnitude :math:`\ell_k \le` its maximum over the block)

    .. math:: \|e_k\|_2 \le \ell_k\Big(\sum_j \|A_{kj}\|_2 \|e_j\|_2 + \|\delta z_k\|_2\Big) + 2u\|\hat
              w_k\|_2,

    and the output error is :math:`\sum_j\|C_j\|_2\|e_j\|_2 + \|\delta x\|_2`.  Spectral norms (upper bounds,
    computed once) keep the growth at the naive Lipschitz rate instead of the rate of :math:`|A|`, which
    explodes with depth.
    """

    def __init__(self, form: Form, extended: bool = False, norms: tuple | None = None):
        from ._net import spectral_norm_upper

        #: ``extended=True`` evaluates in ``np.longdouble`` (x87 80-bit on x86-64 Linux, IEEE quad on aarch64
        #: Linux, float64 where the platform has nothing wider); the unit roundoff below is that type's own.
        #: ``norms``: the edges' spectral-norm bounds ``(nA, nC)`` of another model of the same form (reused).
        self.dtype = np.longdouble if extended else np.float64
        self.u = float(np.finfo(self.dtype).eps) / 2
        self.form = form
        edges = [{j: _dense(M) for j, M in blk.inputs.items()} for blk in form.blocks]
        C = {j: _dense(M) for j, M in form.output.items()}
        if norms is None:
            norms = ([{j: spectral_norm_upper(M) for j, M in e.items()} for e in edges],
                     {j: spectral_norm_upper(M) for j, M in C.items()})
        self.nA, self.nC = norms
        self.edges = [{j: M.astype(self.dtype, copy=False) for j, M in e.items()} for e in edges]
        self.C = {j: M.astype(self.dtype, copy=False) for j, M in C.items()}
        self.Bs = [None if blk.B is None else _dense(blk.B).astype(self.dtype, copy=False) for blk in form.blocks]
        self.bs = [None if blk.b is None else np.asarray(blk.b, dtype=self.dtype) for blk in form.blocks]
        self.ell = []
        for blk in form.blocks:
            a, b = blk.activation.slope_bounds()
            self.ell.append(float(np.max(np.maximum(np.abs(a), np.abs(b)))))
        inner = max([form.input_dim] + form.sizes) + 3
        self.gam = inner * self.u / (1 - inner * self.u)
        self._extended: "ErrorModel | None" = None

    def extended(self) -> "ErrorModel":
        """The same model evaluated in extended precision (built once), for secants whose float64 rounding
        bound swamps the output change (nets whose naive bound is far above their true constant)."""
        if self._extended is None:
            self._extended = self if self.dtype == np.longdouble else ErrorModel(self.form, extended=True,
                                                                                 norms=(self.nA, self.nC))
        return self._extended

    def evaluate(self, y: np.ndarray) -> tuple[np.ndarray, float]:
        """``(x_hat, bound on ||x_hat - x(y)||_2)`` for one ``y`` (the float64 input taken as exact; ``x_hat`` in
        the model's precision)."""
        u = self.u
        y = np.asarray(y, dtype=np.float64).astype(self.dtype)
        ws, errs = [], []
        for k, blk in enumerate(self.form.blocks):
            z = np.zeros(blk.size, dtype=self.dtype)
            zabs = np.zeros(blk.size, dtype=self.dtype)
            err_in = 0.0
            for j, M in self.edges[k].items():
                z += M @ ws[j]
                zabs += np.abs(M) @ np.abs(ws[j])
                err_in += self.nA[k][j] * errs[j]
            if self.Bs[k] is not None:
                z += self.Bs[k] @ y
                zabs += np.abs(self.Bs[k]) @ np.abs(y)
            if self.bs[k] is not None:
                z += self.bs[k]
                zabs += np.abs(self.bs[k])
            w = blk.activation(z)
            ws.append(w)
            dz = self.gam * _norm(zabs)
            errs.append((self.ell[k] * (err_in + dz) + 2 * u * _norm(w)) * (1 + 8 * u))
        x = np.zeros(self.form.output_dim, dtype=self.dtype)
        xabs = np.zeros(self.form.output_dim, dtype=self.dtype)
        err = 0.0
        for j, M in self.C.items():
            x += M @ ws[j]
            xabs += np.abs(M) @ np.abs(ws[j])
            err += self.nC[j] * errs[j]
        err += self.gam * _norm(xabs)
        return x, err * (1 + 8 * u) + 1e-300


def _norm(v: np.ndarray) -> float:
    """An upper bound on ||v||_2 of a float64 or extended vector, as a float64: the sum of squares of length L
    is off by at most (L + 1) u relatively, the square root and the conversion by u and 2^-53 more."""
    u = float(np.finfo(v.dtype).eps) / 2
    return float(np.sqrt(np.sum(np.square(v, dtype=v.dtype), dtype=v.dtype))) * (1 + (len(v) + 4) * u) * (1 + 2e-16)


def _secant_with(em: ErrorModel, y: np.ndarray, y2: np.ndarray, dn_up: float) -> tuple[float, dict]:
    """The rigorous secant lower bound of :func:`certified_secant` with one error model."""
    x1, e1 = em.evaluate(y)
    x2, e2 = em.evaluate(y2)
    diff = x2 - x1
    nd = float(np.sqrt(np.sum(np.square(diff, dtype=diff.dtype), dtype=diff.dtype)))
    num = nd * (1 - 4 * em.u * (len(diff) + 2)) * (1 - 1e-15) - (e1 + e2)
    return max(num, 0.0) / dn_up, {"rigorous": True, "rounding_bound": e1 + e2, "difference": nd,
                                   "precision": "extended" if em.dtype == np.longdouble else "float64"}


def certified_secant(form: "Form | ErrorModel | None", f: Callable, y: np.ndarray,
                     d: np.ndarray) -> tuple[float, dict]:
    r"""A lower bound on :math:`\|f(y+d) - f(y)\|/\|d\|` evaluated in float64.

    With a form (or its :class:`ErrorModel`, to reuse the spectral norms), rounding errors are bounded
    rigorously and subtracted; without one, the model is run in float64 and the ratio is reduced by a relative
    margin of :math:`10^{-9}` (heuristic, stated in the result's checks).  The perturbed point is formed first
    and ``d`` recomputed as the float difference actually used.
    """
    y = np.asarray(y, dtype=np.float64)
    y2 = y + np.asarray(d, dtype=np.float64)
    dd = y2 - y
    dn = float(np.linalg.norm(dd))
    if dn == 0:
        return 0.0, {"rigorous": form is not None}
    dn_up = dn * (1 + 4 * _U * (len(dd) + 2))
    if form is not None:
        em = form if isinstance(form, ErrorModel) else ErrorModel(form)
        r, info = _secant_with(em, y, y2, dn_up)
        if info["rounding_bound"] > 1e-6 * info["difference"] and em.dtype != np.longdouble \
                and np.finfo(np.longdouble).eps < np.finfo(np.float64).eps:
            # the float64 rounding bound eats a visible part of the output change: redo in extended precision
            r2, info2 = _secant_with(em.extended(), y, y2, dn_up)
            if r2 > r:
                r, info = r2, info2
        return r, info
    with torch.no_grad():
        Y = torch.tensor(np.stack([y, y2]), dtype=torch.float64)
        X = f(Y).cpu().numpy()
    num = float(np.linalg.norm(X[1] - X[0]))
    return max(num * (1 - 1e-9) - 1e-300, 0.0) / dn_up, {"rigorous": False}


def isfinite_tensor(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


def as_batch(y: Any, m: int, name: str = "data") -> np.ndarray:
    from .._validation import check_observations

    Y, _ = check_observations(y, m, name)
    return Y


__all__ = ["TorchForm", "make_evaluator", "jacobian_norms", "certified_secant", "ErrorModel",
           "as_batch", "isfinite_tensor"]
