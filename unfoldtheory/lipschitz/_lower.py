r"""Lower bounds on the Lipschitz constant: sampled Jacobians, secant ascent, certified by a witness.

Any pair of inputs gives :math:`\mathrm{Lip}(f) \ge \|f(y+d) - f(y)\|/\|d\|`.  The search looks for pairs with
a large ratio in these ways (all batched in torch, float64, on the given device):

1. the spectral norm of the Jacobian (power iteration on :math:`J^TJ`: :math:`Jv` by a tiny forward
   difference, :math:`J^Tu` by reverse-mode autograd) at the given data and at random Gaussian inputs of
   several scales; :math:`J(y)` is then a Clarke-Jacobian element and its norm is realised by a secant along
   its top right singular vector when :math:`y` is not at a kink;
2. gradient ascent (Adam) on the central secant ratio :math:`\|f(y+\delta u) - f(y-\delta u)\|/(2\delta)` over
   :math:`(y, u)` with :math:`\delta` annealed towards 0.  (Ascent on the Jacobian norm itself has zero
   gradient almost everywhere for piecewise-linear networks; the secant does not.)
3. for models with an analysis form, gradient ascent on the Jacobian norm of the softplus-*smoothed* network,
   with the smoothing annealed to zero (:func:`_smooth_ascent`), from the best sampled points and the
   secant-ascent points;
4. the best candidates are re-evaluated as *secants* in float64 with a rigorous rounding-error bound
   (:func:`~._torch.certified_secant`), and the largest certified ratio is returned with its witness
   ``(y, d)``.

The value is therefore attained by an explicit pair of inputs: ``side="lower"``, ``certified=True``.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Sequence

import numpy as np
import torch

from ..bounds import Bound
from ._torch import ErrorModel, TorchForm, as_batch, certified_secant, jacobian_norms, make_evaluator

log = logging.getLogger(__name__)

QUANTITY = "Lipschitz constant of y -> x (l2 -> l2)"


def _jac_candidates(f, Y: torch.Tensor, iters: int, seed: int, chunk: int = 64):
    sig, vs = [], []
    for i in range(0, Y.shape[0], chunk):
        s, v = jacobian_norms(f, Y[i:i + chunk], iters=iters, seed=seed + i)
        sig.append(s)
        vs.append(v)
    return torch.cat(sig), torch.cat(vs)


def _ascent(f, Y0: torch.Tensor, V0: torch.Tensor, scale: torch.Tensor, steps: int,
            deadline: float | None, lr: float = 0.05) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Adam (written out, to keep torch.optim's lazy imports away) on the central secant ratio
    ``||f(y + delta u) - f(y - delta u)|| / (2 delta)`` over ``(y, u)``; ``scale`` (batch,) sets the initial
    half-width ``delta``, which is annealed geometrically to ``1e-3 * scale``.  Returns the best ratio per
    start with its pair ``(y - delta u, 2 delta u)``."""
    y = Y0.detach().clone()
    u = V0.detach().clone()
    state = [(torch.zeros_like(y), torch.zeros_like(y)), (torch.zeros_like(u), torch.zeros_like(u))]
    b1, b2, eps_adam = 0.9, 0.999, 1e-12
    best_r = torch.full((Y0.shape[0],), -1.0, dtype=Y0.dtype, device=Y0.device)
    best_y, best_d = Y0.clone(), V0.clone()
    sc = scale[:, None]
    for it in range(steps):
        if deadline is not None and time.perf_counter() > deadline:
            break
        frac = it / max(steps - 1, 1)
        delta = sc * (0.3 * (1e-3 / 0.3) ** frac)
        y.requires_grad_(True)
        u.requires_grad_(True)
        with torch.enable_grad():
            un = u / u.norm(dim=1, keepdim=True).clamp_min(1e-300)
            ratio = (f(y + delta * un) - f(y - delta * un)).norm(dim=1) / (2 * delta[:, 0])
            gy, gu = torch.autograd.grad(ratio.sum(), (y, u))
        with torch.no_grad():
            better = ratio > best_r
            best_r = torch.where(better, ratio, best_r)
            best_y = torch.where(better[:, None], (y - delta * un), best_y)
            best_d = torch.where(better[:, None], (2 * delta * un), best_d)
            y, u = y.detach(), u.detach()
            new = []
            for (param, g), (mom, vel), step in zip(((y, gy), (u, gu)), state, (lr * sc, 0.05)):
                g = torch.nan_to_num(g, 0.0)
                mom.mul_(b1).add_(g, alpha=1 - b1)
                vel.mul_(b2).addcmul_(g, g, value=1 - b2)
                mhat = mom / (1 - b1 ** (it + 1))
                vhat = vel / (1 - b2 ** (it + 1))
                new.append(param + step * mhat / (vhat.sqrt() + eps_adam))  # ascent
            y, u = new
    return best_r.detach(), best_y.detach(), best_d.detach()


def _step_size(y: torch.Tensor, rel: float) -> torch.Tensor:
    return rel * (1.0 + y.detach().abs().amax(dim=1, keepdim=True))


def _power_step(g, y: torch.Tensor, v: torch.Tensor, iters: int,
                rel: float = 1e-7) -> tuple[torch.Tensor, torch.Tensor]:
    """``iters`` power iterations on :math:`J^TJ` of ``g`` at every row of ``y``, warm-started at ``v``
    (:math:`Jv` by a central difference of relative step ``rel``, :math:`J^Tu` by reverse-mode autograd);
    returns ``(||Jv|| (batch,), v)``.  Plain autograd: ``torch.func`` transforms cost ~100x more per call
    on the small per-layer operations of an unrolled network."""
    h = _step_size(y, rel)
    y = y.detach()
    for _ in range(iters):
        with torch.no_grad():
            Jv = (g(y + h * v) - g(y - h * v)) / (2 * h)
        yr = y.clone().requires_grad_(True)
        with torch.enable_grad():
            (JtJv,) = torch.autograd.grad(g(yr), yr, Jv)
        nrm = JtJv.norm(dim=1, keepdim=True)
        ok = (nrm[:, 0] > 0) & torch.isfinite(nrm[:, 0])
        v = torch.where(ok[:, None], JtJv / nrm.clamp_min(1e-300), v).detach()
    with torch.no_grad():
        Jv = (g(y + h * v) - g(y - h * v)) / (2 * h)
    return Jv.norm(dim=1), v


def _smooth_ascent(tf: TorchForm, Y0: torch.Tensor, steps: int, deadline: float | None, seed: int,
                   lr: float = 0.05, power: int = 1, tau_range: tuple[float, float] = (0.1, 1e-3),
                   check_every: int = 5, project: Any = None,
                   step_scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Gradient ascent on the Jacobian norm of the *smoothed* network, annealed to the exact one.

    For a piecewise-linear network :math:`\|J(y)\|` is piecewise constant: its gradient is zero almost
    everywhere.  Replacing every activation by its softplus smoothing at temperature :math:`\tau_k = c\,
    \mathrm{rms}(z_k)` (block k's pre-activations at the current point) makes :math:`\sigma_{\max}(J_\tau(y))`
    differentiable; Adam ascends it in ``y`` (the top right singular vector ``v`` is tracked by warm-started
    power iterations, the objective is :math:`\|J_\tau(y)v\|` by a central difference much finer than
    :math:`\tau`, differentiated by autograd) while :math:`c` decreases geometrically over ``tau_range``, so the
    search ends on the exact network.  Every ``check_every`` steps the Jacobian norm of the *exact* network at
    the current point is measured and the best point per start kept.  Returns ``(sigma_exact (batch,), y
    (batch, m), v (batch, m))``; the values are estimates, certified afterwards by float64 secants.
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    y = Y0.detach().clone()
    m = y.shape[1]
    scale = (y.norm(dim=1, keepdim=True) / math.sqrt(m)) if step_scale is None else step_scale
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    v = torch.randn(y.shape, generator=gen, dtype=y.dtype).to(y.device)
    v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)
    mom, vel = torch.zeros_like(y), torch.zeros_like(y)
    b1, b2, eps_adam = 0.9, 0.999, 1e-30
    best_sig, v_exact = _power_step(tf, y, v, 8)
    best_y, best_v = y.clone(), v_exact.clone()
    for it in range(steps):
        if deadline is not None and time.perf_counter() > deadline:
            break
        c = tau_range[0] * (tau_range[1] / tau_range[0]) ** (it / max(steps - 1, 1))
        with torch.no_grad():
            taus = [c * z.pow(2).mean(dim=1, keepdim=True).sqrt().clamp_min(1e-300)
                    for z in tf(y, return_pre=True)]

        def g(Y, taus=taus):
            return tf(Y, tau=taus)

        _, v = _power_step(g, y, v, power, rel=1e-3 * c)
        h = _step_size(y, 1e-3 * c)
        yy = y.clone().requires_grad_(True)
        with torch.enable_grad():
            Jv = (g(yy + h * v) - g(yy - h * v)) / (2 * h)
            (gy,) = torch.autograd.grad(Jv.norm(dim=1).sum(), yy)
        with torch.no_grad():
            gy = torch.nan_to_num(gy, 0.0)
            mom.mul_(b1).add_(gy, alpha=1 - b1)
            vel.mul_(b2).addcmul_(gy, gy, value=1 - b2)
            mhat = mom / (1 - b1 ** (it + 1))
            vhat = vel / (1 - b2 ** (it + 1))
            y = y + lr * scale * mhat / (vhat.sqrt() + eps_adam)
            if project is not None:
                y = project(y)
        if (it + 1) % check_every == 0 or it == steps - 1:
            sig, ve = _power_step(tf, y, v, 4)
            better = sig > best_sig
            best_sig = torch.where(better, sig, best_sig)
            best_y = torch.where(better[:, None], y, best_y)
            best_v = torch.where(better[:, None], ve, best_v)
    return best_sig.detach(), best_y.detach(), best_v.detach()


def lower_bound_impl(model_or_form: Any, *, data: Any = None,
                     scales: Sequence[float] = (0.01, 0.1, 1.0, 10.0, 100.0, 1e4, 1e6),
                     num_random: int = 256, power_iters: int = 40, ascent_steps: int = 100,
                     ascent_starts: int = 16, seed: int = 0, input_dim: int | None = None, device: Any = None,
                     time_limit: float | None = None, smooth_steps: int | None = None) -> Bound:
    start = time.perf_counter()
    deadline = None if time_limit is None else start + time_limit
    f, m, form = make_evaluator(model_or_form, input_dim=input_dim, device=device)
    dev = torch.device("cpu") if device is None else torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    parts, labels = [], []
    if data is not None:
        D = torch.tensor(as_batch(data, m, "data"), dtype=torch.float64)
        parts.append(D)
        labels += ["data"] * D.shape[0]
    per = max(1, num_random // max(len(scales), 1)) if num_random > 0 else 0
    for s in scales:
        if per:
            parts.append(float(s) * torch.randn(per, m, generator=gen, dtype=torch.float64))
            labels += [f"random(scale={s:g})"] * per
    if not parts:
        parts.append(torch.randn(1, m, generator=gen, dtype=torch.float64))
        labels.append("random(scale=1)")
    Y = torch.cat(parts).to(dev)
    with torch.no_grad():
        sig, V = _jac_candidates(f, Y, power_iters, seed)
    sig = torch.nan_to_num(sig, nan=-1.0)
    checks: dict = {"points": int(Y.shape[0])}
    if data is not None:
        nd = sum(1 for lab in labels if lab == "data")
        checks["max_jacobian_norm_data"] = float(sig[:nd].max())
    for s in scales:
        sel = [i for i, lab in enumerate(labels) if lab == f"random(scale={s:g})"]
        if sel:
            checks[f"max_jacobian_norm_random_{s:g}"] = float(sig[sel].max())
    order = torch.argsort(sig, descending=True)
    # candidates: (y, d, label); Jacobian directions realised by small secants
    cands = []
    for i in order[: max(ascent_starts, 8)].tolist():
        y = Y[i].cpu().numpy()
        v = V[i].cpu().numpy()
        cands.append((y, v, labels[i], float(sig[i])))
    # secant ascent from the best starts
    ascent_best = None
    if ascent_steps > 0 and (deadline is None or time.perf_counter() < deadline):
        idx = order[:ascent_starts]
        Y0 = Y[idx]
        V0 = V[idx]
        scale = Y0.norm(dim=1) / math.sqrt(m)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        r, by, bd = _ascent(f, Y0, V0, scale, ascent_steps, deadline=deadline)
        checks["max_ratio_ascent"] = float(r.max())
        with torch.no_grad():
            sig2, V2 = _jac_candidates(f, by, power_iters, seed + 7)
        checks["max_jacobian_norm_ascent"] = float(torch.nan_to_num(sig2, nan=-1.0).max())
        for j in torch.argsort(r, descending=True)[:4].tolist():
            cands.append((by[j].cpu().numpy(), bd[j].cpu().numpy(), "ascent(secant)", float(r[j])))
            cands.append((by[j].cpu().numpy(), V2[j].cpu().numpy(), "ascent(jacobian)", float(sig2[j])))
        ascent_best = float(r.max())
    # smoothed-Jacobian ascent (forms only: the smoothing needs the activations), from the best sampled points
    # and the secant-ascent points
    n_smooth = ascent_steps if smooth_steps is None else int(smooth_steps)
    if form is not None and n_smooth > 0 and (deadline is None or time.perf_counter() < deadline):
        tf = TorchForm(form, device=dev)
        half = max(1, ascent_starts // 2)
        starts = [Y[order[:half]]]
        if ascent_best is not None:
            starts.append(by[torch.argsort(r, descending=True)[:half]])
        sig3, by3, bv3 = _smooth_ascent(tf, torch.cat(starts), n_smooth, deadline, seed + 11)
        sig3 = torch.nan_to_num(sig3, nan=-1.0)
        checks["max_jacobian_norm_smooth_ascent"] = float(sig3.max())
        for j in torch.argsort(sig3, descending=True)[:6].tolist():
            cands.append((by3[j].cpu().numpy(), bv3[j].cpu().numpy(), "smooth_ascent(jacobian)",
                          float(sig3[j])))
    # certify: secants in float64 (rigorous with a form)
    best = (0.0, None)
    rigorous = True
    em = None if form is None else ErrorModel(form)
    for y, v, lab, est in cands:
        nv = float(np.linalg.norm(v))
        if not nv > 0 or not np.all(np.isfinite(v)) or not np.all(np.isfinite(y)):
            continue
        if lab == "ascent(secant)":
            eps_list = [1.0]
            dirs = [v]
        else:
            base = (1.0 + float(np.linalg.norm(y))) / nv
            eps_list = [1e-3 * base, 1e-5 * base, 1e-7 * base]
            dirs = [v] * 3
        for eps, dvec in zip(eps_list, dirs):
            d = eps * dvec
            r, info = certified_secant(em, f, y, d)
            rigorous = rigorous and info.get("rigorous", False)
            if r > best[0]:
                best = (r, {"y": y.copy(), "d": d.copy(), "source": lab, "estimate": est, **info})
    value, wit = best
    checks["best_source"] = None if wit is None else wit["source"]
    checks["rigorous_rounding"] = bool(rigorous)
    if ascent_best is not None:
        checks["ascent_best"] = ascent_best
    reason = ""
    certified = wit is not None and value > 0
    if not certified:
        reason = ("no input pair with a nonzero output change was found (0 is the trivial lower bound); try "
                  "other scales or data")
    # the budget counts steps; time_limit is a safety cap: past it, a phase may have been cut short (or
    # skipped), so another run could find a different (equally valid) lower bound
    converged = deadline is None or time.perf_counter() <= deadline
    checks["converged"] = converged
    return Bound(value=value, side="lower", certified=certified, method="sampled_secant",
                 quantity=QUANTITY, solver="torch (power iteration + Adam on secants), float64 secant check",
                 status="ok" if certified else "no witness", checks=checks, reason=reason, witness=wit,
                 seconds=time.perf_counter() - start, converged=converged)


def _step_to_boundary(p: np.ndarray, v: np.ndarray, center: np.ndarray, radius: float, norm: str) -> float:
    """Largest ``t >= 0`` with ``p + t v`` in the ball ``||. - center||_norm <= radius`` (``p`` inside), shrunk
    by a relative ``1e-9`` so the rounded point stays inside."""
    q = p - center
    if norm == "l2":
        b = float(q @ v)
        c = float(q @ q) - radius ** 2
        t = -b + math.sqrt(max(b * b - c, 0.0))
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            lim = np.where(v > 0, (radius - q) / v, np.where(v < 0, (-radius - q) / v, np.inf))
        t = float(np.min(lim))
    return max(t, 0.0) * (1 - 1e-9)


def _dist(q: np.ndarray, norm: str) -> float:
    return float(np.linalg.norm(q)) if norm == "l2" else float(np.max(np.abs(q)))


def ball_lower_bound(form: Any, center: np.ndarray, radius: float, norm: str = "l2", *, samples: int = 16,
                     ascent_steps: int = 100, power_iters: int = 40, seed: int = 0,
                     em: "ErrorModel | None" = None, tf: TorchForm | None = None) -> tuple[float, dict]:
    r"""Certified lower bound on the Lipschitz constant of the form restricted to a ball, attained in it.

    The Jacobian norm is estimated (power iteration, :func:`~._torch.jacobian_norms`) at the centre and at
    ``samples`` points drawn uniformly from the ball (seeded); from the best four, ``ascent_steps`` steps of the
    smoothed-Jacobian ascent (:func:`_smooth_ascent`) projected onto the ball look for a larger one; at the
    best eight points ``p`` of both a secant
    :math:`\|x(p + t v) - x(p)\|/(t\|v\|)` along the top right singular vector is evaluated in float64 with a
    rigorous rounding bound (:func:`~._torch.certified_secant`) for steps ``t`` from the largest that keeps
    ``p + t v`` in the ball down to :math:`10^{-6}` of it.  Both points of every secant lie in the ball (checked
    in float64 with a relative margin of :math:`10^{-12}`, far above the rounding of the distance), so the
    value is a lower bound on :math:`\sup\{\|x(y_1) - x(y_2)\|/\|y_1 - y_2\| : y_1, y_2 \in \mathcal B\}`.
    Returns ``(value, witness)`` with ``witness = {"y", "d", "rounding_bound"}`` (``None`` when every secant
    is 0).  ``em`` and ``tf`` (the form's error model and torch evaluator) are built once by callers that
    bound many balls.
    """
    center = np.asarray(center, dtype=np.float64)
    m = center.shape[0]
    rng = np.random.default_rng(seed)
    pts = [center]
    if samples > 0 and radius > 0:
        if norm == "l2":
            u = rng.standard_normal((samples, m))
            u /= np.linalg.norm(u, axis=1, keepdims=True)
            pts.extend(center + radius * u * rng.random((samples, 1)) ** (1.0 / m))
        else:
            pts.extend(center + radius * rng.uniform(-1.0, 1.0, (samples, m)))
    P = np.stack(pts)
    f = TorchForm(form) if tf is None else tf
    with torch.no_grad():
        sig, V = _jac_candidates(f, torch.tensor(P, dtype=torch.float64), power_iters, seed)
    sig = torch.nan_to_num(sig, nan=-1.0)
    if ascent_steps > 0 and radius > 0:
        c0 = torch.tensor(center, dtype=torch.float64)

        inner = radius * (1 - 1e-9)  # projected points stay strictly inside after rounding

        def project(Yb):
            q = Yb - c0
            if norm == "l2":
                return c0 + q * torch.clamp(inner / q.norm(dim=1, keepdim=True).clamp_min(1e-300), max=1.0)
            return c0 + q.clamp(-inner, inner)

        top = torch.argsort(sig, descending=True)[:4]
        Y0 = torch.tensor(P, dtype=torch.float64)[top]
        step = torch.full((Y0.shape[0], 1), radius / (math.sqrt(m) if norm == "l2" else 1.0), dtype=torch.float64)
        s2, y2, v2 = _smooth_ascent(f, Y0, ascent_steps, None, seed + 11, project=project, step_scale=step)
        P = np.concatenate([P, project(y2).numpy()])
        sig = torch.cat([sig, torch.nan_to_num(s2, nan=-1.0)])
        V = torch.cat([V, v2])
    sig = sig.numpy()
    V = V.numpy()
    em = ErrorModel(form) if em is None else em
    best, wit = 0.0, None
    for i in np.argsort(-sig)[:8]:
        v = V[i] / max(float(np.linalg.norm(V[i])), 1e-300)
        tmax = _step_to_boundary(P[i], v, center, radius, norm)
        for frac in (1.0, 1e-2, 1e-4, 1e-6):
            t = tmax * frac
            if not t > 0:
                continue
            d = t * v
            r, info = certified_secant(em, f, P[i], d)
            y2 = P[i] + d
            dist = max(_dist(y2 - center, norm), _dist(P[i] - center, norm))
            if r > best and dist <= radius * (1 - 1e-12):
                best, wit = float(r), {"y": P[i].copy(), "d": (y2 - P[i]).copy(), **info}
    return best, wit
