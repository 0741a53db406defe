"""The properties checked by :func:`~unfoldtheory.testing.check_architecture`.

Each property has a name, a description, a cost class (``cheap`` properties run ``max_examples`` examples,
``expensive`` ones run ``expensive_examples``), an applicability test on a probe model, extra values it draws and
a check ``check(ctx, instance, extra)`` that raises ``AssertionError`` with a message when the property fails.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ..errors import InvalidInputError, NotRepresentableError
from .declarations import declarations
from .strategies import EXTREME_SCALES, degenerate_matrices, perturb_parameters


class NotApplicable(Exception):
    """Raised by an applicability test: the property does not apply to the model (with the reason)."""


# ---------------------------------------------------------------------------------------------- context


class Context:
    """What the checks need: the factory and the options of the run."""

    def __init__(self, factory: Callable, *, num_deep_layers: int = 300, sdp_time_limit: float = 5.0,
                 lipschitz_methods: tuple = ("naive", "layerwise", "lipsdp"), float32_rtol: float = 1e-3,
                 shrink_time_limit: float = 20.0):
        self.factory = factory
        self.num_deep_layers = num_deep_layers
        self.sdp_time_limit = sdp_time_limit
        self.lipschitz_methods = tuple(lipschitz_methods)
        self.float32_rtol = float32_rtol
        self.shrink_time_limit = float(shrink_time_limit)
        self.takes_seed = _takes_seed(factory)
        #: notes a passing property reports (e.g. parameters that cannot influence the output)
        self.notes: dict[str, set] = {}

    def build(self, problem: Any, seed: int):
        """Call the factory (with the seed when it accepts one) and check it returned a torch module.

        A plain module (no ``forward(y, return_all=...)`` / ``num_layers``) is seen through
        :func:`unfoldtheory.models.adapt`: 1-D input, per-layer outputs and ``form()`` from its extracted
        analysis form (docs/your_model.md §6).  When its form cannot be extracted it is checked as built."""
        net = self.factory(problem, seed) if self.takes_seed else self.factory(problem)
        if not isinstance(net, torch.nn.Module):
            raise AssertionError(f"the factory returned {type(net).__name__}, not a torch.nn.Module.")
        from ..models.adapt import adapt, supports_return_all

        if not supports_return_all(net):
            A = getattr(problem, "A", None)
            try:
                net = adapt(net, input_dim=None if A is None else int(np.shape(A)[0]))
            except (InvalidInputError, NotRepresentableError):
                pass
        return net


def _takes_seed(factory: Callable) -> bool:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return False
    params = list(sig.parameters.values())
    if any(p.kind == p.VAR_POSITIONAL for p in params) or "seed" in sig.parameters:
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2


# ---------------------------------------------------------------------------------------------- helpers


def model_dtype_device(model: torch.nn.Module) -> tuple[torch.dtype, torch.device]:
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.dtype, t.device
    return torch.float32, torch.device("cpu")


def converted(model: torch.nn.Module, dtype: torch.dtype | None = None, device: Any = None) -> torch.nn.Module:
    """A deep copy of ``model`` in ``dtype`` on ``device``."""
    net = copy.deepcopy(model)
    if dtype is not None:
        net = net.to(dtype)
    if device is not None:
        net = net.to(device)
    return net


def leaves(out: Any) -> list[torch.Tensor]:
    """The tensors of an output (a tensor, or nested tuples/lists of tensors such as RPCA's (L, S))."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in leaves(o)]
    raise AssertionError(f"the model returned {type(out).__name__}; expected a tensor or a tuple of tensors.")


def run(model: torch.nn.Module, y: np.ndarray, return_all: bool = False, grad: bool = False):
    dtype, device = model_dtype_device(model)
    Y = torch.as_tensor(np.asarray(y), dtype=dtype, device=device)
    if grad:
        return model(Y, return_all=True) if return_all else model(Y)
    with torch.no_grad():
        return model(Y, return_all=True) if return_all else model(Y)


def as_np(out: Any) -> list[np.ndarray]:
    return [t.detach().to("cpu", torch.float64).numpy() for t in leaves(out)]


def _scale(arrs: list[np.ndarray]) -> float:
    return max([1.0] + [float(np.abs(a).max()) for a in arrs if a.size])


def _maxdiff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    if len(a) != len(b):
        raise AssertionError(f"outputs have different structures ({len(a)} vs {len(b)} tensors).")
    out = 0.0
    for u, v in zip(a, b):
        if u.shape != v.shape:
            raise AssertionError(f"outputs have different shapes {u.shape} and {v.shape}.")
        if u.size:
            out = max(out, float(np.abs(u - v).max()))
    return out


def _perturbed64(ctx: Context, inst, extra) -> torch.nn.Module:
    net = converted(ctx.build(inst.problem, inst.seed), torch.float64)
    if extra.get("perturbation", 0.0) > 0:
        perturb_parameters(net, extra["perturbation"], inst.seed + 1)
    return net


def _get_form(model):
    make = getattr(model, "form", None)
    if not callable(make):
        raise NotApplicable(f"{type(model).__name__} has no form() method (no analysis form).")
    try:
        return make()
    except NotRepresentableError as exc:
        raise NotApplicable(f"{type(model).__name__} refuses the analysis form: {exc}") from None


def _require_lasso(inst):
    if inst.kind != "lasso":
        raise NotApplicable("this property needs a LASSO problem (y -> x networks); the problems drawn are "
                            f"{type(inst.problem).__name__}.")


# ---------------------------------------------------------------------------------------------- properties


@dataclass
class Property:
    name: str
    description: str
    check: Callable
    applicable: Callable | None = None
    extra: Callable | None = None          # () -> dict of strategies
    expensive: bool = False


def _st():
    import hypothesis.strategies as st

    return st


def _perturbation_extra():
    st = _st()
    return {"perturbation": st.sampled_from([0.0, 0.01, 0.1])}


# -- interface ------------------------------------------------------------------------------------------------


def check_interface(ctx, inst, extra):
    net = ctx.build(inst.problem, inst.seed)
    out = as_np(run(net, inst.y))
    outs = run(net, inst.y, return_all=True)
    if not isinstance(outs, (list, tuple)) or len(outs) == 0:
        raise AssertionError("forward(y, return_all=True) must return a non-empty list of layer outputs; got "
                             f"{type(outs).__name__}.")
    for o in out:
        if o.shape[0] != inst.batch:
            raise AssertionError(f"forward(y) on a batch of {inst.batch} returned leading dimension {o.shape[0]}.")
    last = as_np(outs[-1])
    d = _maxdiff(out, last)
    if d > 1e-12 * _scale(out):
        raise AssertionError(f"forward(y, return_all=True)[-1] differs from forward(y) by {d:.3g}.")
    declared = getattr(net, "num_layers", None)
    if declared is not None and len(outs) != int(declared):
        raise AssertionError(f"return_all returned {len(outs)} layer outputs but the model has "
                             f"num_layers={declared}.")


# -- form faithfulness ----------------------------------------------------------------------------------------


def applicable_form(ctx, probe):
    _require_lasso(probe)
    _get_form(converted(ctx.build(probe.problem, probe.seed), torch.float64))


def check_form_faithful(ctx, inst, extra):
    net = _perturbed64(ctx, inst, extra)
    form = net.form()
    Y = inst.y * extra["input_scale"]
    outs = [as_np(o) for o in run(net, Y, return_all=True)]
    ref = outs[-1]
    scale = _scale(ref + [Y])
    tol = 1e-8 * scale
    got = form.evaluate(Y)
    d = _maxdiff(ref, [got])
    if d > tol:
        raise AssertionError(f"form().evaluate(y) differs from forward(y) by {d:.3g} (tolerance {tol:.3g}).")
    if form.num_layers == len(outs):
        for k, (a, b) in enumerate(zip(form.evaluate(Y, return_all=True), outs), start=1):
            d = _maxdiff(b, [a])
            if d > tol:
                raise AssertionError(f"layer {k}: form().evaluate(y, return_all=True) differs from "
                                     f"forward(y, return_all=True) by {d:.3g} (tolerance {tol:.3g}).")


def _critical_points(act) -> np.ndarray:
    """Kinks of an activation (per coordinate), where slope errors and jumps hide."""
    from ..form import Clip, SoftThreshold

    if isinstance(act, SoftThreshold):
        return np.stack([act.theta, -act.theta])
    if isinstance(act, Clip):
        return np.stack([act.lower, act.upper])
    return np.zeros((1, act.size))


def check_form_slopes(ctx, inst, extra):
    net = _perturbed64(ctx, inst, extra)
    form = net.form()
    rng = np.random.default_rng(inst.seed)
    s, h = extra["z_scale"], extra["step"]
    for blk in form.blocks:
        act = blk.activation
        lo, hi = act.slope_bounds()
        z1 = s * rng.standard_normal((16, act.size))
        crit = _critical_points(act)
        z1 = np.concatenate([z1, crit - h / 2 * np.abs(rng.standard_normal(crit.shape))])
        d = h * (0.5 + rng.random(z1.shape))
        z2 = z1 + d
        q = (act(z2) - act(z1)) / d
        tol = 1e-9 * (1 + np.abs(z1).max() / h)
        bad = (q < lo - tol) | (q > hi + tol)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise AssertionError(
                f"block {blk.name!r} ({type(act).__name__}, declared slopes [{lo[c]:g}, {hi[c]:g}]): difference "
                f"quotient {q[r, c]:.6g} between z={z1[r, c]:.6g} and z={z2[r, c]:.6g} (coordinate {c}) is outside "
                "the declared interval.")
        der = act.derivative(z1)
        if ((der < lo - 1e-12) | (der > hi + 1e-12)).any():
            raise AssertionError(f"block {blk.name!r}: derivative() returns values outside the declared slopes.")


# -- certificates ---------------------------------------------------------------------------------------------


def _segment_lower_bound(f, y0: np.ndarray, y1: np.ndarray, grid: int = 24, bisections: int = 20):
    """A secant lower bound on Lip(f) along the segment [y0, y1]: the best grid secant, then bisection keeping
    the half with the larger secant (never smaller, by the triangle inequality); a jump makes it blow up."""
    ts = np.linspace(0.0, 1.0, grid + 1)
    P = y0[None] + ts[:, None] * (y1 - y0)[None]
    F = f(P)
    seg = np.linalg.norm(np.diff(F, axis=0), axis=1) / (np.linalg.norm(y1 - y0) / grid)
    i = int(np.argmax(seg))
    a, b, fa, fb, best = P[i], P[i + 1], F[i], F[i + 1], float(seg[i])
    for _ in range(bisections):
        mid = (a + b) / 2
        fm = f(mid[None])[0]
        half = np.linalg.norm(b - a) / 2
        if half == 0:
            break
        left, right = np.linalg.norm(fm - fa) / half, np.linalg.norm(fb - fm) / half
        if left >= right:
            b, fb, r = mid, fm, left
        else:
            a, fa, r = mid, fm, right
        best = max(best, float(r))
    return best, {"y": a, "d": b - a}


def applicable_lipschitz(ctx, probe):
    applicable_form(ctx, probe)


def check_lipschitz_sound(ctx, inst, extra):
    from ..lipschitz import lower_bound, upper_bound
    from ..robustness import attack

    net = _perturbed64(ctx, inst, extra)
    net.eval()
    Y = inst.y
    uppers: dict = {}
    lowers: list = []

    def compare():
        for method, ub in uppers.items():
            for source, lbv, slack in lowers:
                if lbv > ub * (1 + slack) + 1e-12:
                    raise AssertionError(
                        f"certified Lipschitz upper bound {ub:.6g} ({method}) is below the lower bound {lbv:.6g} "
                        f"attained on the torch model by {source}: the certificate is unsound for this model (or "
                        "the form does not describe it).")

    def f(P):
        with torch.no_grad():
            return as_np(net(torch.as_tensor(P, dtype=torch.float64)))[0].reshape(P.shape[0], -1)

    # cheap bounds first, so failing examples (and hypothesis's shrinking) stay fast
    methods = sorted(ctx.lipschitz_methods, key=lambda m: m != "naive")
    b = upper_bound(net, methods[0], time_limit=ctx.sdp_time_limit)
    if b.certified:
        uppers[methods[0]] = b.value
    rng = np.random.default_rng(inst.seed)
    for r in range(Y.shape[0]):
        # a short segment (local behaviour) and a long one (crosses activation and selection boundaries)
        for length in (extra["eps"], 1.0 + np.linalg.norm(Y[r])):
            u = rng.standard_normal(Y.shape[1])
            val, _ = _segment_lower_bound(f, Y[r], Y[r] + length * u / np.linalg.norm(u))
            lowers.append((f"segment bisection from y[{r}] (length {length:.3g})", val, 1e-6))
    a = attack(net, Y, eps=extra["eps"], steps=15, seed=inst.seed)
    lowers.append(("attack(pgd)", a.value, 1e-9))
    compare()
    for method in methods[1:]:
        b = upper_bound(net, method, time_limit=ctx.sdp_time_limit)
        if b.certified:
            uppers[method] = b.value
        compare()
    lb = lower_bound(net, data=Y, num_random=24, power_iters=10, ascent_steps=15, ascent_starts=4,
                     seed=inst.seed % 2 ** 31, time_limit=5.0)
    lowers.append(("lower_bound(sampled_secant)", lb.value, 1e-9))
    compare()


def applicable_contraction(ctx, probe):
    from ..contraction import contraction_certificate

    applicable_form(ctx, probe)
    net = converted(ctx.build(probe.problem, probe.seed), torch.float64)
    if getattr(net, "num_layers", 1) < 2:
        raise NotApplicable("a single layer has no state-to-state map to contract.")
    try:
        contraction_certificate(net)
    except NotRepresentableError as exc:
        raise NotApplicable(f"no contraction certificate for this form: {exc}") from None


def check_contraction_sound(ctx, inst, extra):
    from ..contraction import contraction_certificate, layer_lipschitz
    from .declarations import form_layer_map

    net = _perturbed64(ctx, inst, extra)
    form = net.form()
    total = contraction_certificate(net).value
    per_layer = [b.value for b in layer_lipschitz(net)]
    rng = np.random.default_rng(inst.seed)
    n = form.blocks[0].size
    Y = inst.y
    s = extra["state_scale"]
    X1 = s * rng.standard_normal((Y.shape[0], n))
    X2 = X1 + s * extra["gap"] * rng.standard_normal(X1.shape)
    a, b = X1, X2
    d0 = np.linalg.norm(X1 - X2, axis=1)
    slack_total = 0.0
    for k in range(2, form.num_layers + 1):
        na, nb = form_layer_map(form, k, a, Y), form_layer_map(form, k, b, Y)
        # rounding of the two layer evaluations (the difference of the states may be at rounding level)
        slack = _rounding_slack(a, b, na, nb, Y)
        num, den = np.linalg.norm(na - nb, axis=1), np.linalg.norm(a - b, axis=1)
        bad = num > per_layer[k - 2] * (1 + 1e-9) * den + slack
        if np.any(bad):
            i = int(np.argmax(bad))
            raise AssertionError(f"layer {k}: observed contraction ratio {num[i] / den[i]:.6g} exceeds the certified "
                                 f"layer constant {per_layer[k - 2]:.6g} (||x - x'|| = {den[i]:.3g}).")
        slack_total = slack_total * per_layer[k - 2] + slack
        a, b = na, nb
    num = np.linalg.norm(a - b, axis=1)
    bad = num > total * (1 + 1e-8) * d0 + slack_total
    if np.any(bad):
        i = int(np.argmax(bad))
        raise AssertionError(f"observed contraction of x_1 -> x_K {num[i] / d0[i]:.6g} exceeds the certified "
                             f"factor {total:.6g}.")


def _rounding_slack(a, b, na, nb, Y) -> np.ndarray:
    """A generous bound on the rounding error of ||T(a) - T(b)|| (float64 layer evaluations)."""
    size = max(a.shape[1], Y.shape[1])
    mags = [np.abs(v).max(axis=1) for v in (a, b, na, nb, Y)]
    return 1e3 * size * np.finfo(float).eps * (1 + np.max(mags, axis=0)) * np.sqrt(a.shape[1])


# -- fixed points ---------------------------------------------------------------------------------------------


def applicable_fixed_point(ctx, probe):
    _require_lasso(probe)
    decl = declarations(converted(ctx.build(probe.problem, probe.seed), torch.float64))
    if decl.classical_problem is None:
        raise NotApplicable(decl.reason or "the model declares no classical algorithm (define classical_problem()).")
    if decl.layer is None or not decl.state_layers:
        raise NotApplicable("the model declares a classical problem but no layer reads the state "
                            "(one layer, or no fixed_point_layer).")


def _reference(problem, Y):
    from hypothesis import assume
    from hypothesis.control import currently_in_test_context

    from ..reference import solve

    sol = solve(problem, Y)
    ok = bool(np.all(np.asarray(sol.certified)))
    if currently_in_test_context():
        assume(ok)
    elif not ok:
        raise AssertionError("the reference optimum could not be certified for this instance (replay).")
    return np.atleast_2d(sol.x), np.atleast_1d(sol.objective)


def check_fixed_point(ctx, inst, extra):
    net = converted(ctx.build(inst.problem, inst.seed), torch.float64)
    decl = declarations(net)
    problem = decl.classical_problem
    Y = inst.y
    X, _ = _reference(problem, Y)
    tol = 1e-6 * (1 + np.linalg.norm(X, axis=1))
    for k in decl.state_layers:
        Xk = np.asarray(decl.layer(k, X, Y), dtype=float).reshape(X.shape)
        err = np.linalg.norm(Xk - X, axis=1)
        if np.any(err > tol):
            i = int(np.argmax(err - tol))
            raise AssertionError(
                f"the certified LASSO optimum x* (lam={problem.lam:.4g}) is not a fixed point of layer {k} "
                f"({decl.algorithm} declared): ||T_{k}(x*) - x*|| = {err[i]:.3g} > {tol[i]:.3g} on instance {i}.")


def applicable_deep(ctx, probe):
    applicable_fixed_point(ctx, probe)
    decl = declarations(converted(ctx.build(probe.problem, probe.seed), torch.float64))
    if decl.with_layers is None:
        raise NotApplicable("the model cannot be rebuilt deeper (define with_layers(num_layers)).")


def check_deep_convergence(ctx, inst, extra):
    net = converted(ctx.build(inst.problem, inst.seed), torch.float64)
    decl = declarations(net)
    problem = decl.classical_problem
    Y = inst.y
    X, F = _reference(problem, Y)
    K = ctx.num_deep_layers
    slack = 1e-9 * (1 + np.abs(F))

    def gap(num_layers):
        deep = converted(decl.with_layers(num_layers), torch.float64)
        XK = as_np(run(deep, Y))[0].reshape(X.shape)
        return np.asarray(problem.objective(XK, Y)) - F, XK

    gK, XK = gap(K)
    if decl.rate is not None:
        # a proven rate: the gap after K layers must be within it
        bound = np.asarray(decl.rate(K, X), dtype=float)
        bad = gK > bound + slack
        if np.any(bad):
            i = int(np.argmax(bad))
            raise AssertionError(
                f"{decl.algorithm} unrolled to K={K} layers violates its convergence rate: F(x_K) - F* = "
                f"{gK[i]:.3g} > {bound[i]:.3g} (||x_K - x*|| = {np.linalg.norm(XK[i] - X[i]):.3g}, instance {i}).")
        return
    # no rate declared (e.g. ADMM): the gap must be (numerically) zero or still shrink, by at least 10% from
    # K/10 to K layers (an algorithm stuck at a wrong point or diverging does not); a heuristic, not a theorem
    K0 = max(1, K // 10)
    g0, _ = gap(K0)
    bad = (gK > slack) & (gK > 0.9 * g0)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise AssertionError(
            f"{decl.algorithm} unrolled deeper does not converge to the certified LASSO optimum: F(x_K) - F* = "
            f"{g0[i]:.3g} at K={K0} and {gK[i]:.3g} at K={K} (||x_K - x*|| = "
            f"{np.linalg.norm(XK[i] - X[i]):.3g}, instance {i}).")


# -- consistency ----------------------------------------------------------------------------------------------


def check_batch_consistent(ctx, inst, extra):
    net = ctx.build(inst.problem, inst.seed)
    dtype, _ = model_dtype_device(net)
    Y = inst.y
    full = as_np(run(net, Y))
    rtol = 1e-5 if dtype == torch.float32 else 1e-10
    tol = rtol * _scale(full)
    perm = np.random.default_rng(inst.seed).permutation(Y.shape[0])
    permuted = as_np(run(net, Y[perm]))
    d = _maxdiff([a[perm] for a in full], permuted)
    if d > tol:
        raise AssertionError(f"permuting the batch changes the outputs by {d:.3g} (tolerance {tol:.3g}): "
                             "instances interact.")
    for i in range(Y.shape[0]):
        row = as_np(run(net, Y[i:i + 1]))
        d = _maxdiff([a[i:i + 1] for a in full], row)
        if d > tol:
            raise AssertionError(f"instance {i} alone (batch of 1) gives outputs differing by {d:.3g} from the "
                                 f"batched forward (tolerance {tol:.3g}).")
    try:
        single = as_np(run(net, Y[0]))
    except Exception:  # noqa: BLE001 - models may accept batches only
        return
    d = _maxdiff([a[0] for a in full], single)
    if d > tol:
        raise AssertionError(f"one unbatched instance gives outputs differing by {d:.3g} from the batched "
                             f"forward (tolerance {tol:.3g}).")


def check_dtype_consistent(ctx, inst, extra):
    net = ctx.build(inst.problem, inst.seed)
    Y = inst.y
    res = {}
    for dt in (torch.float32, torch.float64):
        m = converted(net, dt)
        out = run(m, Y)
        for t in leaves(out):
            if t.dtype != dt:
                raise AssertionError(f"the model converted to {dt} returned a {t.dtype} output.")
        res[dt] = as_np(out)
    d = _maxdiff(res[torch.float32], res[torch.float64])
    tol = ctx.float32_rtol * _scale(res[torch.float64] + [Y])
    if d > tol:
        raise AssertionError(f"float32 and float64 copies differ by {d:.3g} (tolerance {tol:.3g}).")


def applicable_device(ctx, probe):
    if not torch.cuda.is_available():
        raise NotApplicable("no CUDA device is available (the property compares CPU and CUDA runs).")


def check_device_consistent(ctx, inst, extra):
    net = ctx.build(inst.problem, inst.seed)
    a = as_np(run(converted(net, torch.float64, "cpu"), inst.y))
    g = converted(net, torch.float64, "cuda")
    out = run(g, inst.y)
    for t in leaves(out):
        if t.device.type != "cuda":
            raise AssertionError(f"the model moved to CUDA returned an output on {t.device}.")
    b = as_np(out)
    d = _maxdiff(a, b)
    tol = 1e-8 * _scale(a)
    if d > tol:
        raise AssertionError(f"CPU and CUDA float64 runs differ by {d:.3g} (tolerance {tol:.3g}).")


def check_deterministic(ctx, inst, extra):
    n1, n2 = ctx.build(inst.problem, inst.seed), ctx.build(inst.problem, inst.seed)
    s1, s2 = n1.state_dict(), n2.state_dict()
    if set(s1) != set(s2):
        raise AssertionError(f"two builds with the same seed have different state keys: {sorted(set(s1) ^ set(s2))}.")
    for k in s1:
        if not torch.equal(s1[k], s2[k]):
            raise AssertionError(f"two builds with the same problem and seed differ in {k!r}: the factory is not "
                                 "deterministic under a seed.")
    a, b, c = as_np(run(n1, inst.y)), as_np(run(n1, inst.y)), as_np(run(n2, inst.y))
    if _maxdiff(a, b) != 0:
        raise AssertionError("two forward passes of the same model on the same input differ.")
    if _maxdiff(a, c) != 0:
        raise AssertionError("two models built with the same seed give different outputs.")


def applicable_gradients(ctx, probe):
    net = ctx.build(probe.problem, probe.seed)
    if not [p for p in net.parameters() if p.requires_grad]:
        raise NotApplicable(f"{type(net).__name__} has no trainable parameters.")


def check_gradients(ctx, inst, extra):
    net0 = ctx.build(inst.problem, inst.seed)
    allowed = set(declarations(net0).no_gradient)
    names = [n for n, p in net0.named_parameters() if p.requires_grad]
    pending = {n for n in names if n not in allowed}
    found_zero = set()
    inputs = [inst.y * scale for scale in (1.0, 10.0, 0.1, 100.0)]
    required = 1  # inputs that are always tried, whatever the gradients found so far
    if inst.kind == "rpca":
        # matrices with exactly zero and exactly repeated singular values, where an SVD backward divides by
        # s_i^2 - s_j^2: constructed, not hoped for from the draw (see strategies.degenerate_matrices)
        degenerate = [degenerate_matrices(*inst.y.shape[1:], inst.y.shape[0], inst.seed + i) for i in range(4)]
        inputs = [inputs[0], *degenerate, *inputs[1:]]
        required += len(degenerate)
    for attempt, Y in enumerate(inputs):
        net = copy.deepcopy(net0)
        # first as built (perturbed as drawn), then near-trained: a zero-initialised weight (e.g. a correction
        # term's output layer) legitimately blocks the gradient of what lies behind it at initialisation
        perturb_parameters(net, extra["perturbation"] if attempt == 0 else 0.1, inst.seed + attempt)
        net.zero_grad(set_to_none=True)
        out = leaves(run(net, Y, grad=True))
        gen = torch.Generator(device="cpu").manual_seed(inst.seed % 2 ** 31 + attempt)
        loss = sum((t * torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t.device, t.dtype)).sum()
                   for t in out)
        if not loss.requires_grad:
            raise AssertionError("the output does not depend on any trainable parameter (no autograd graph).")
        loss.backward()
        params = dict(net.named_parameters())
        where = "" if attempt < 1 or attempt >= required else " at an exactly degenerate input (zero and repeated " \
            "singular values)"
        for n in names:
            g = params[n].grad
            if g is not None and not torch.isfinite(g).all():
                raise AssertionError(f"parameter {n!r} has a non-finite gradient{where}.")
        for n in sorted(pending):
            g = params[n].grad
            if g is None:
                raise AssertionError(f"parameter {n!r} receives no gradient (it is not connected to the output); "
                                     "declare it in `no_gradient` if that is intended.")
            if bool((g != 0).any()):
                pending.discard(n)
                found_zero.discard(n)
            else:
                found_zero.add(n)
        if not pending and attempt + 1 >= required:
            return
    inert = _without_influence(net0, sorted(pending), inputs[:2], inst.seed)
    if inert:
        ctx.notes.setdefault("gradients", set()).add(
            f"parameters {inert} cannot influence the output (a random change leaves every output bit-identical, "
            "e.g. W2_1 multiplying x_0 = 0), so they need no gradient")
        pending -= set(inert)
    if not pending:
        return
    raise AssertionError(f"parameters {sorted(pending)} have an identically zero gradient on every try (inputs "
                         "scaled by 1, 10, 0.1, 100 and perturbed weights).")


def _without_influence(net0, names: list, inputs: list, seed: int) -> list:
    """The parameters among ``names`` whose random perturbation leaves the outputs on ``inputs`` bit-identical
    (they cannot influence the output, like LISTA's W2_1, which multiplies x_0 = 0)."""
    base = [leaves(run(net0, Y)) for Y in inputs]
    out = []
    for i, n in enumerate(names):
        net = copy.deepcopy(net0)
        p = dict(net.named_parameters())[n]
        gen = torch.Generator(device="cpu").manual_seed(seed % 2 ** 31 + 7919 * (i + 1))
        with torch.no_grad():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.device, p.dtype)
            p.add_(0.5 * noise * (p.abs() + 1))
        if all(all(torch.equal(a, b) for a, b in zip(leaves(run(net, Y)), ref)) for Y, ref in zip(inputs, base)):
            out.append(n)
    return out


def check_finite_outputs(ctx, inst, extra):
    net = ctx.build(inst.problem, inst.seed)
    dtype, _ = model_dtype_device(net)
    s = extra["scale"]
    if dtype == torch.float32 and s > 1e8:
        s = 1e8
    Y = inst.y * s
    for k, out in enumerate(run(net, Y, return_all=True), start=1):
        for t in leaves(out):
            if not torch.isfinite(t).all():
                raise AssertionError(f"layer {k} returns non-finite values for inputs scaled by {s:g} "
                                     f"(|y|max = {np.abs(Y).max():.3g}).")


# -- declared -------------------------------------------------------------------------------------------------


def _declared_nonexpansive(ctx, net, inst, extra):
    decl = declarations(net)
    if decl.layer is None:
        raise AssertionError("nonexpansive_layers is declared but the model has no layer map "
                             "(define fixed_point_layer(k, x, y) or a chain form).")
    rng = np.random.default_rng(inst.seed)
    Y = inst.y
    n = _zero_state(net, Y).shape[1]
    s = extra["state_scale"]
    X1 = s * rng.standard_normal((Y.shape[0], n))
    X2 = X1 + s * extra["gap"] * rng.standard_normal(X1.shape)
    for k in decl.state_layers:
        a, b = decl.layer(k, X1, Y), decl.layer(k, X2, Y)
        num, den = np.linalg.norm(a - b, axis=1), np.linalg.norm(X1 - X2, axis=1)
        bad = num > (1 + 1e-9) * den + _rounding_slack(X1, X2, a, b, Y)
        if np.any(bad):
            i = int(np.argmax(bad))
            raise AssertionError(f"layer {k} is declared nonexpansive but expands a pair of states by "
                                 f"{num[i] / den[i]:.6g} > 1.")


def _zero_state(net, Y):
    n = getattr(net, "n", None)
    if n is None:
        n = as_np(run(net, Y))[0].reshape(Y.shape[0], -1).shape[1]
    return np.zeros((Y.shape[0], int(n)))


def _declared_monotone(ctx, net, inst, extra):
    decl = declarations(net)
    problem = decl.classical_problem
    if problem is None:
        raise AssertionError("monotone_objective is declared but the model declares no classical_problem().")
    Y = inst.y
    vals = [np.asarray(problem.objective(as_np(o)[0].reshape(Y.shape[0], -1), Y)) for o in
            run(net, Y, return_all=True)]
    vals = [np.asarray(problem.objective(np.zeros((Y.shape[0], problem.n)), Y))] + vals
    for k in range(1, len(vals)):
        inc = vals[k] - vals[k - 1]
        tol = 1e-10 * (1 + np.abs(vals[k - 1]))
        if np.any(inc > tol):
            raise AssertionError(f"the objective increases from layer {k - 1} to layer {k} by {inc.max():.3g} "
                                 "although monotone_objective is declared.")


BUILTIN_DECLARED_CHECKS = {"nonexpansive_layers": _declared_nonexpansive, "monotone_objective": _declared_monotone}


def declared_property(name: str, check: Callable | None) -> Property:
    def run_check(ctx, inst, extra):
        net = converted(ctx.build(inst.problem, inst.seed), torch.float64)
        if check is None:
            BUILTIN_DECLARED_CHECKS[name](ctx, net, inst, extra)
        else:
            check(net, inst)

    def extras():
        st = _st()
        return {"state_scale": st.sampled_from([0.01, 1.0, 10.0]), "gap": st.sampled_from([1e-3, 1.0])}

    return Property(f"declared:{name}", f"the model's declared property {name!r} holds", run_check,
                    applicable=None, extra=extras)


def standard_properties() -> list[Property]:
    st = _st()
    return [
        Property("interface", "factory builds a torch module; forward(y) and forward(y, return_all=True) agree",
                 check_interface),
        Property("form_faithful", "form().evaluate(y) reproduces forward(y), per layer", check_form_faithful,
                 applicable_form, lambda: {**_perturbation_extra(),
                                           "input_scale": st.sampled_from([1.0, 0.1, 10.0])}),
        Property("form_slopes", "every activation of the form stays in its declared slope interval",
                 check_form_slopes, applicable_form,
                 lambda: {**_perturbation_extra(), "z_scale": st.sampled_from([1.0, 0.01, 100.0]),
                          "step": st.sampled_from([1e-3, 1e-6, 0.1])}),
        Property("lipschitz_sound", "certified Lipschitz upper bounds >= attack / secant lower bounds on the model",
                 check_lipschitz_sound, applicable_lipschitz,
                 lambda: {**_perturbation_extra(), "eps": st.sampled_from([0.1, 1.0, 0.01])}, expensive=True),
        Property("contraction_sound", "certified layer / end-to-end contraction >= observed contraction",
                 check_contraction_sound, applicable_contraction,
                 lambda: {**_perturbation_extra(), "state_scale": st.sampled_from([1.0, 0.01, 10.0]),
                          "gap": st.sampled_from([1e-3, 1.0])}),
        Property("fixed_point", "the certified LASSO optimum is a fixed point of every layer (declared classical "
                 "algorithm at initialisation)", check_fixed_point, applicable_fixed_point, expensive=True),
        Property("deep_convergence", "the declared classical algorithm unrolled deep converges to the LASSO optimum",
                 check_deep_convergence, applicable_deep, expensive=True),
        Property("batch_consistent", "outputs do not depend on batching or batch order", check_batch_consistent),
        Property("dtype_consistent", "float32 and float64 copies agree and keep their dtype", check_dtype_consistent),
        Property("device_consistent", "CPU and CUDA copies agree", check_device_consistent, applicable_device),
        Property("deterministic", "the same problem and seed give the same weights and outputs", check_deterministic),
        Property("gradients", "every trainable parameter receives a finite, nonzero gradient", check_gradients,
                 applicable_gradients, _perturbation_extra),
        Property("finite_outputs", "finite outputs on extreme inputs (zero, tiny, huge)", check_finite_outputs,
                 None, lambda: {"scale": st.sampled_from(EXTREME_SCALES + (1e15,))}),
    ]


__all__ = ["Property", "NotApplicable", "Context", "standard_properties", "declared_property",
           "BUILTIN_DECLARED_CHECKS"]
