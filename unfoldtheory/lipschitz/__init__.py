r"""Lipschitz certificates for unrolled networks: upper bounds (naive, LipSDP-Layer, LipSDP-Neuron), lower
bounds attained by witnesses, local constants on a ball (and bracketed around many data points:
:func:`local_sandwich`), and the Lipschitz constant in the parameters.

Every function reads the analysis form (:mod:`unfoldtheory.form`) of a model, :math:`z = Aw + By + b,\ w =
\sigma(z),\ x = Cw`, and returns a :class:`~unfoldtheory.bounds.Bound`.

Upper-bound methods (l2 Lipschitz constant of :math:`y \mapsto x`)
--------------------------------------------------------------------
================ ======================================================= ================================
method           what                                                    cost
================ ======================================================= ================================
``naive``        :math:`a_k = \sum_j\|L_kA_{kj}\|a_j + \|L_kB_k\|`       K SVDs
                 (exact spectral norms, L_k = slope magnitudes)
``layerwise``    LipSDP-Layer: one multiplier per block, structured      K variables, block Cholesky/eval
``lipsdp``       LipSDP-Neuron: one multiplier per neuron, block-        N variables, block Cholesky/eval
                 tridiagonal Cholesky + Schur complement, L-BFGS (+
                 Newton barrier polish when N + m <= 600)
``lipsdp_dense`` the same SDP as one dense cvxpy LMI (reference)         interior point, order N+m <= 400
================ ======================================================= ================================

SeqLip (Virmaux & Scaman 2018) is not offered as an upper bound: its greedy/L-BFGS inner maximisation over
activation patterns is a heuristic that can land below the true value (anchors: lipEstimation issue #3), so it
is not sound; LipSDP-Layer plays the role of the tighter layer-wise composition here.

The SDP-based values satisfy ``lipsdp <= layerwise <= naive`` (up to the optimiser's accuracy: every method
starts from multipliers that certify the naive bound and only improves on them).  Every SDP value is
re-verified in float64 (block Cholesky with an a-posteriori backward-error bound) before ``certified=True``;
thresholds and biases never enter an incremental bound.

References
----------
M. Fazlyab, A. Robey, H. Hassani, M. Morari, G. J. Pappas, "Efficient and accurate estimation of Lipschitz
constants for deep neural networks", NeurIPS 2019 (LipSDP-Neuron/-Layer, Theorem 2).

A. Virmaux, K. Scaman, "Lipschitz regularity of deep neural networks: analysis and efficient estimation",
NeurIPS 2018 (AutoLip/SeqLip; lower bounds by gradient-norm maximisation).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any, Sequence

import numpy as np

from .._validation import check_int, check_observations, check_scalar
from ..bounds import Bound
from ..errors import InvalidInputError, NotRepresentableError
from ..form import require_form
from . import _lipsdp
from ._depth import bounds_vs_depth, plot_bounds_vs_depth, truncate
from ._local import interval_bounds, refined_slopes
from ._naive import naive_multipliers, naive_terms
from ._net import Net, eliminate_fixed, from_form, spectral_norm_upper, with_slopes

log = logging.getLogger(__name__)

QUANTITY = "Lipschitz constant of y -> x (l2 -> l2)"
METHODS = ("naive", "layerwise", "lipsdp", "lipsdp_dense")
_U = np.finfo(np.float64).eps / 2
#: Below this naive bound the SDP methods return the naive certificate unchanged (no optimisation).
_NEGLIGIBLE = 1e-100

__all__ = ["upper_bound", "lower_bound", "exact", "domain_upper_bound", "region_search", "relaxation_floor",
           "local_upper_bound", "local_sandwich", "parameter_upper_bound", "bounds_vs_depth",
           "plot_bounds_vs_depth", "truncate", "METHODS", "QUANTITY"]


#: precisions of the multiplier optimisation (``upper_bound(dtype=...)``)
DTYPES = ("auto", "float64", "float32")


def _sqrt_up(rho: float) -> float:
    if rho <= 0:
        return 0.0
    return float(np.nextafter(math.sqrt(rho) * (1 + 2 * _U), np.inf))


def _get_form(model_or_form: Any, method: str, on_unrepresentable: str):
    if on_unrepresentable not in ("raise", "inf"):
        raise InvalidInputError(f"on_unrepresentable must be 'raise' or 'inf'; got {on_unrepresentable!r}.")
    try:
        return require_form(model_or_form), None
    except NotRepresentableError as exc:
        if on_unrepresentable == "inf":
            return None, Bound(value=math.inf, side="upper", certified=False, method=method,
                               quantity=QUANTITY,
                               reason=f"no analysis form, so no finite certificate: {exc}")
        raise


# ---------------------------------------------------------------------------------------------- upper bounds


def upper_bound(model_or_form: Any, method: str = "lipsdp", *, time_limit: float = 60.0,
                max_evaluations: int | None = None, dtype: str = "auto", on_unrepresentable: str = "raise",
                max_dense_order: int = 400, max_fill_bytes: int = 2 * 1024 ** 3,
                polish_max_order: int = 600, polish_steps: int = 200) -> Bound:
    r"""Certified upper bound on the l2 Lipschitz constant of :math:`y \mapsto x` (the form's output).

    Parameters
    ----------
    model_or_form : Form or model with ``.form()``
        Models without a form (or with a non-elementwise / discontinuous layer) are refused with
        :class:`~unfoldtheory.errors.NotRepresentableError`, or with ``on_unrepresentable="inf"`` answered by
        an explicitly infinite, uncertified upper bound that says why.
    method : {"lipsdp", "layerwise", "naive", "lipsdp_dense"}
        See the module docstring.  ``lipsdp`` is LipSDP-Neuron (Fazlyab et al. 2019) with the input injected
        into every layer, solved through the block structure (docs/theory/lipschitz.md §3): for multipliers :math:`t`
        with :math:`X(t) \succ 0`, :math:`\rho^\star(t) = \lambda_{\max}(Q^TX(t)^{-1}Q - R)` is a valid
        squared bound; it is convex in :math:`t` and minimised by smoothed L-BFGS, starting from multipliers
        that certify the naive bound (so ``lipsdp <= naive``).  ``layerwise`` restricts to one multiplier
        scale per block (LipSDP-Layer).  ``lipsdp_dense`` solves the same SDP as one dense LMI with cvxpy
        (small forms only).
    time_limit : float
        A safety cap in seconds on the whole optimisation (the certification afterwards is extra), not its
        budget: the budget counts work (``max_evaluations``, ``polish_steps``), so the same call gives the
        same number whatever the machine's load.  A run the cap stops is still a valid certificate, marked
        ``converged=False`` (another run may give a different, valid value).
    max_evaluations : int, optional
        Budget of objective evaluations (each: one block Cholesky and one m x m eigenproblem), split between
        the layer stage (a quarter) and the neuron stage; default ``max(1000, 5 N)`` for N neurons (a
        16-layer, 64-wide ALISTA needs about 3600 to converge; 1000 left its bound 3.5x higher).
    dtype : {"auto", "float64", "float32"}
        Precision of the optimisation (``auto``: float32 from 3000 neurons).  Certification is always float64.
    max_dense_order, max_fill_bytes : int
        Size limits of ``lipsdp_dense`` (LMI order) and of the structured factor (memory).
    polish_max_order : int
        ``lipsdp`` only: when the LMI order N + m is at most this, the L-BFGS multipliers are polished by an
        own dense Newton barrier method (:mod:`._polish`, O((N+m)^3) per step), which reaches the SDP optimum
        to ~1e-8 relative.
    polish_steps : int
        Budget of Newton steps of the polish (each O((N+m)^3)).

    Returns
    -------
    Bound
        ``side="upper"``; ``certified=True`` when the LMI was verified in float64 at the returned multipliers
        (``witness={"t": ..., "rho": ...}``); ``checks`` hold the verification margins, the naive value, the
        optimiser log and every certified candidate (``checks["candidates"]``).  The value is the smallest
        certified bound computed on the way (the naive bound; for ``lipsdp`` also the layer stage, which is
        the ``layerwise`` computation), so ``lipsdp <= layerwise <= naive`` holds exactly for every network.

    Raises
    ------
    NotRepresentableError
        The model has no analysis form.
    InvalidInputError
        Unknown method, NaN/Inf weights, or a network too large for the chosen method (the message names a
        method that works).
    SolverError
        ``lipsdp_dense``: every cvxpy solver failed.
    """
    if method == "lipsdp_layer":
        method = "layerwise"
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {METHODS}; got {method!r}.")
    if dtype not in DTYPES:
        raise InvalidInputError(f"dtype must be one of {DTYPES} (the precision of the multiplier optimisation; "
                                f"certification is always float64); got {dtype!r}.")
    time_limit = check_scalar(time_limit, "time_limit", low=0.0)
    if max_evaluations is not None:
        max_evaluations = check_int(max_evaluations, "max_evaluations", minimum=1)
    form, refusal = _get_form(model_or_form, method, on_unrepresentable)
    if refusal is not None:
        return refusal
    start = time.perf_counter()
    net = from_form(form)
    if method == "naive":
        terms = naive_terms(net)
        return Bound(value=terms["value"], side="upper", certified=True, method="naive", quantity=QUANTITY,
                     solver="numpy SVD (outward rounded)", status="closed form",
                     checks={"a": [float(v) for v in terms["a"]]}, seconds=time.perf_counter() - start)
    polish_steps = check_int(polish_steps, "polish_steps", minimum=0)
    return _sdp_bound(net, method, time_limit=time_limit, max_evaluations=max_evaluations, dtype=dtype,
                      max_dense_order=max_dense_order, max_fill_bytes=max_fill_bytes, start=start,
                      polish_max_order=polish_max_order, polish_steps=polish_steps)


def _linear_bound(net: Net, method: str, start: float, extra: dict | None = None) -> Bound:
    value = 0.0 if net.direct is None else spectral_norm_upper(net.direct)
    return Bound(value=value, side="upper", certified=True, method=method, quantity=QUANTITY,
                 solver="numpy SVD (outward rounded)", status="exact: the network is linear",
                 checks={"exact": True, **(extra or {})}, seconds=time.perf_counter() - start)


def _sdp_bound(net: Net, method: str, *, time_limit: float, max_evaluations: int | None, dtype: str,
               max_dense_order: int, max_fill_bytes: int, start: float, extra: dict | None = None,
               polish_max_order: int = 600, polish_steps: int = 200) -> Bound:
    checks: dict = dict(extra or {})
    red = eliminate_fixed(net)
    checks["pinned_neurons_eliminated"] = net.num_neurons - red.num_neurons
    if red.num_blocks == 0:
        return _linear_bound(red, method, start, checks)
    terms = naive_terms(red)
    checks["naive"] = float(terms["value"])
    if terms["value"] <= _NEGLIGIBLE:
        # e.g. an all-zero network: the naive certificate is already (numerically) zero, and an SDP at this
        # scale would only meet underflow and overflow; it is the best bound any method can return
        full_naive = float(naive_terms(net)["value"])
        return Bound(value=min(float(terms["value"]), full_naive), side="upper", certified=True, method=method,
                     quantity=QUANTITY, solver="numpy SVD (outward rounded)",
                     status=f"the naive bound is negligible (<= {_NEGLIGIBLE:g}); nothing to optimise",
                     checks=checks, seconds=time.perf_counter() - start)
    if max_evaluations is None:
        max_evaluations = max(1000, 5 * red.num_neurons)
    if method == "lipsdp_dense":
        order = red.num_neurons + red.m
        if order > max_dense_order:
            raise InvalidInputError(
                f"the network is too large for method 'lipsdp_dense' (LMI of order {order} > max_dense_order="
                f"{max_dense_order}); use method='lipsdp' (structured, same SDP) or 'naive'.")
    lmi = _lipsdp.StructuredLMI(red, max_fill_bytes=max_fill_bytes)
    if lmi.fill_bytes > max_fill_bytes:
        raise InvalidInputError(
            f"the network is too large for method {method!r}: its block Cholesky factor needs "
            f"{lmi.fill_bytes / 2**30:.2f} GiB (> max_fill_bytes={max_fill_bytes / 2**30:.2f} GiB); use "
            "method='naive', or raise max_fill_bytes.")
    t0, _ = naive_multipliers(red, terms)
    shift = lmi.margin()
    f0, lmax0, _ = lmi.evaluate(t0, 0.0, grad=False, shift=shift)
    for floor in (1e-6, 1e-3, 1e-1):
        if math.isfinite(lmax0):
            break
        t0, _ = naive_multipliers(red, terms, floor=floor)
        f0, lmax0, _ = lmi.evaluate(t0, 0.0, grad=False, shift=shift)
    if not math.isfinite(lmax0):
        return Bound(value=terms["value"], side="upper", certified=True, method=method, quantity=QUANTITY,
                     solver="naive fallback",
                     status="multipliers from the naive bound were not strictly feasible",
                     checks=checks, seconds=time.perf_counter() - start)
    checks["start_value"] = math.sqrt(max(lmax0, 0.0))
    solver, status = "", ""
    t_layer = None
    if method == "lipsdp_dense":
        from ._dense import solve_dense

        sol = solve_dense(red)
        t_best, lmax_best = sol["t"], sol["rho"]
        solver, status = f"cvxpy/{sol['solver']} (dense LMI), float64 re-certified", sol["status"]
    else:
        layer_only = method == "layerwise"
        # The budget counts work (evaluations), split between the stages by count, never by time, so the
        # result does not depend on the machine's load; ``time_limit`` is one safety cap for the whole call
        # (a stage it cuts short makes the result converged=False).  The layer stage is the same computation
        # for both methods, and its certificate is among the candidates of ``lipsdp`` (so lipsdp <= layerwise).
        deadline = start + time_limit
        res1 = _lipsdp.optimize(lmi, t0, layer=True, max_iter=max(1, max_evaluations // 4),
                                time_limit=max(deadline - time.perf_counter(), 0.0), dtype=dtype,
                                mu_schedule=(1e-2, 1e-3, 1e-4, 1e-5, 1e-6))
        t_best, lmax_best = res1["t"], res1["lmax"]
        t_layer = None if layer_only else res1["t"]
        lmax_layer = res1["lmax"]
        runs = [res1]
        if not layer_only:
            res2 = _lipsdp.optimize(lmi, t_best, layer=False,
                                    max_iter=max(1, max_evaluations - res1["evaluations"]),
                                    time_limit=max(deadline - time.perf_counter(), 0.0), dtype=dtype)
            runs.append(res2)
            if res2["lmax"] <= lmax_best:
                t_best, lmax_best = res2["t"], res2["lmax"]
        timed_out = any(r.get("timed_out") for r in runs)
        checks["evaluations"] = int(sum(r["evaluations"] for r in runs))
        checks["optimizer_dtype"] = runs[-1]["dtype"]
        stops = [s["stop"] for r in runs for s in r["stages"]]
        status = stops[-1] if stops else "start"
        solver = "structured block-Cholesky Schur complement + L-BFGS (smoothed lambda_max)"
        order = red.num_neurons + red.m
        lm_now = math.inf
        if order <= polish_max_order:
            lm_now = lmi.evaluate(t_best, 0.0, grad=False, shift=shift)[1]
        if not layer_only and math.isfinite(lm_now) and polish_steps > 0:
            from ._polish import polish

            # the starting rho is recomputed here, not taken from the optimiser
            lmax_best = lm_now
            rho_start = lm_now + 1e-6 * abs(lm_now) + 1e-300
            pol = polish(red, t_best, rho_start, deadline=deadline, max_newton=polish_steps)
            checks["polish"] = {"newton_steps": pol["newton_steps"], "stop": pol["stop"]}
            timed_out = timed_out or pol["stop"] == "time"
            if math.isfinite(pol["rho"]):
                # keep the certification margin: step back towards the L-BFGS point if needed
                for theta in (0.0, 1e-4, 1e-3, 1e-2, 1e-1):
                    t_pol = (1 - theta) * pol["t"] + theta * t_best
                    lm_pol = lmi.evaluate(t_pol, 0.0, grad=False, shift=shift)[1]
                    if math.isfinite(lm_pol):
                        break
                if lm_pol < lmax_best:
                    t_best, lmax_best = t_pol, lm_pol
                    solver += " + Newton barrier polish (dense, own)"

    checks["optimized_value_float"] = math.sqrt(max(lmax_best, 0.0)) if math.isfinite(lmax_best) else math.inf
    cert = _lipsdp.certify(lmi, t_best, lmax_best)
    repaired = None
    if not cert["certified"]:
        # repair: move towards strictly feasible multipliers (the layer-stage point, then the naive ones);
        # the domain is convex and rho* is convex in t, so the blends stay feasible and close in value
        anchors = [("naive", t0)] if t_layer is None else [("layer", t_layer), ("naive", t0)]
        tb = np.asarray(t_best, float)
        finite = np.all(np.isfinite(tb)) and not np.any(tb < 0)
        for name, anchor in anchors:
            for theta in ((1e-4, 1e-3, 1e-2, 1e-1, 0.5, 1.0) if finite else (1.0,)):
                t_try = (1 - theta) * tb + theta * anchor if theta < 1.0 else anchor
                c2 = _lipsdp.certify(lmi, t_try, None)
                if c2["certified"]:
                    repaired = {"theta": theta, "towards": name, "first_reason": cert["reason"]}
                    cert, t_best = c2, t_try
                    break
            if repaired is not None:
                break
    converged = method == "lipsdp_dense" or not timed_out
    checks["converged"] = converged
    # every certified bound computed on the way is a candidate: the naive bound (of the full and of the
    # reduced network) and, for lipsdp, the layer stage's certificate; the best one is returned, so
    # lipsdp <= layerwise <= naive holds for every network (docs/theory/lipschitz.md §4)
    candidates: list[tuple[float, str, dict | None]] = [
        (float(terms["value"]), "naive bound of the reduced network", None)]
    full_naive = float(naive_terms(net)["value"]) if red is not net else float(terms["value"])
    candidates.append((full_naive, "naive bound", None))
    if t_layer is not None:
        c_layer = _lipsdp.certify(lmi, t_layer, lmax_layer)  # exactly the layerwise method's certification
        if c_layer["certified"]:
            candidates.append((_sqrt_up(c_layer["rho"]), "layer-stage (LipSDP-Layer) certificate",
                               {"t": np.asarray(t_layer), "rho": c_layer["rho"]}))
    seconds = time.perf_counter() - start
    if cert["certified"]:
        checks.update({"lmi_shift": float(cert["shift"]), "lmi_error_bound": float(cert["margin_needed"]),
                       "certified_rho": float(cert["rho"])})
        own = _sqrt_up(cert["rho"])
    else:
        checks["float64_reverification"] = f"failed: {cert['reason']}"
        own = math.inf
    if repaired is not None:
        checks["repaired"] = repaired
        status = (f"{status}; repaired towards the {repaired['towards']} multipliers "
                  f"(theta={repaired['theta']:g})")
    best_other = min(candidates, key=lambda c: c[0])
    checks["candidates"] = {name: value for value, name, _ in candidates}
    if best_other[0] < own:
        checks["optimized_certificate"] = own
        status = (f"{status}; the {best_other[1]} ({best_other[0]:.6g}) is smaller than the optimised "
                  f"certificate ({own:.6g}) and is returned")
        return Bound(value=best_other[0], side="upper", certified=True, method=method, quantity=QUANTITY,
                     solver=solver, status=status, checks=checks, witness=best_other[2], seconds=seconds,
                     converged=converged)
    return Bound(value=own, side="upper", certified=True, method=method, quantity=QUANTITY,
                 solver=solver, status=status, checks=checks,
                 witness={"t": np.asarray(t_best), "rho": cert["rho"]},
                 seconds=seconds, converged=converged)


# ---------------------------------------------------------------------------------------------- lower bounds


def lower_bound(model_or_form: Any, *, data: Any = None,
                scales: Sequence[float] = (0.01, 0.1, 1.0, 10.0, 100.0, 1e4, 1e6), num_random: int = 256,
                power_iters: int = 40, ascent_steps: int = 100, ascent_starts: int = 16,
                seed: int = 0, input_dim: int | None = None, device: Any = None,
                time_limit: float | None = None, smooth_steps: int | None = None) -> Bound:
    r"""Lower bound on the l2 Lipschitz constant of :math:`y \mapsto x`, attained by an explicit input pair.

    Searches (batched torch, float64, ``device``) for pairs :math:`(y, y + d)` with a large ratio
    :math:`\|f(y+d)-f(y)\|/\|d\|`: Jacobian spectral norms (power iteration) at ``data`` and at Gaussian
    inputs of per-coordinate standard deviation in ``scales``, then Adam ascent on the central secant ratio
    from the best points and, for models with a form, ``smooth_steps`` (default: ``ascent_steps``) steps of
    Adam ascent on the Jacobian norm of the softplus-smoothed network, annealed to the exact one (the exact
    Jacobian norm is piecewise constant, so it has no useful gradient itself).  The large scales (1e4, 1e6) probe the asymptotic activation patterns, where
    thresholds and biases are negligible.  The reported value is a *secant* ratio re-evaluated in float64
    (with a rigorous rounding-error bound when the model has a form), so it is a true lower bound even where a
    Jacobian is only a Clarke element.  Works for any torch module (``input_dim`` if it has no attribute
    ``m``), with or without a form: lower bounds never need the form.

    Returns
    -------
    Bound
        ``side="lower"``, ``certified=True`` with ``witness={"y", "d", "source", ...}`` (the value is the
        float64 secant ratio of the pair ``(y, y + d)``, rounding errors subtracted); ``checks`` hold the
        largest Jacobian norm found on the data, per random scale and after each ascent.
    """
    from ._lower import lower_bound_impl

    num_random = check_int(num_random, "num_random", minimum=0)
    power_iters = check_int(power_iters, "power_iters", minimum=1)
    ascent_steps = check_int(ascent_steps, "ascent_steps", minimum=0)
    ascent_starts = check_int(ascent_starts, "ascent_starts", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    if smooth_steps is not None:
        smooth_steps = check_int(smooth_steps, "smooth_steps", minimum=0)
    if time_limit is not None:
        time_limit = check_scalar(time_limit, "time_limit", low=0.0, low_inclusive=False)
    if input_dim is not None:
        input_dim = check_int(input_dim, "input_dim", minimum=1)
    if isinstance(scales, (str, bytes)) or not hasattr(scales, "__iter__"):
        raise InvalidInputError(f"scales must be a sequence of positive numbers; got {scales!r}.")
    scales = tuple(check_scalar(s, "scales", low=0.0, low_inclusive=False) for s in scales)
    return lower_bound_impl(model_or_form, data=data, scales=scales, num_random=num_random,
                            power_iters=power_iters, ascent_steps=ascent_steps, ascent_starts=ascent_starts,
                            seed=seed, input_dim=input_dim, device=device, time_limit=time_limit,
                            smooth_steps=smooth_steps)


# ---------------------------------------------------------------------------------------------- exact


def exact(model_or_form: Any, norm: str = "linf", *, domain: Any = None, max_neurons: int = 120,
          node_limit: int | None = 200_000, time_limit: float | None = None, mip_rel_gap: float = 1e-7,
          l2_rounds: int = 6, seed: int = 0, l2_lipsdp: bool = True, starts: Any = None) -> Bound:
    r"""The exact Lipschitz constant of :math:`y \mapsto x` for small unrolled networks (mixed-integer program).

    The network is piecewise affine (every supported activation is), so on a convex domain its Lipschitz
    constant is the largest operator norm of the Jacobian of an activation region with nonempty interior
    there.  One binary per linear piece of every neuron selects the region, a second linear copy of the
    network carries the directional derivative, and HiGHS (``scipy.optimize.milp``) solves the mixed-integer
    program by branch and bound (LipMIP, Jordan & Dimakis 2020, written for the analysis form; details and
    proofs in ``docs/theory/exact_lipschitz.md §1-§4``).

    Parameters
    ----------
    model_or_form : Form or model with ``.form()``
    norm : {"linf", "l2"}
        ``"linf"``: :math:`\|\cdot\|_\infty \to \|\cdot\|_\infty` (max row l1-norm of the Jacobian), solved
        exactly (up to ``mip_rel_gap``).  ``"l2"``: a certified bracket, lower end the spectral norm of an
        attained region Jacobian (alternating MILPs over directions), upper end
        :math:`\sqrt{\max\|J\|_{\infty\to\infty}\,\max\|J\|_{1\to 1}}` (``§3``).
    domain : None, (lower, upper) or {"center": c, "radius": r}
        ``None``: all of :math:`\mathbb{R}^m` (homogenised, ``§2``); a box; or an l-infinity ball.
    max_neurons : int
        Refuse networks with more piecewise-linear (non-identity) neurons (``InvalidInputError``): the branch
        and bound is exponential in the number of neurons whose piece the domain does not fix.  Measured
        (``verification/benchmarks/bench_exact.py``): trained nets with m = 5, n = 10 close the gap in seconds
        at 2-3 layers; at 4-6 layers the node/time budget usually ends with a bracket.
    node_limit : int or None
        Branch-and-bound node budget per MILP (the work budget; deterministic).  When reached the result is
        still a certified bracket with ``converged=False``.
    time_limit : float or None
        Safety cap in seconds over all MILPs; reaching it sets ``converged=False`` (never a wrong value).
    mip_rel_gap : float
        Relative gap at which HiGHS stops.
    l2_rounds : int
        ``l2`` only: rounds of the alternating fixed-direction MILPs that improve the lower end.
    seed : int
        Seed of the random points that seed the branch and bound with a certified witness.
    starts : array (k, m) or Bound, optional
        Points whose activation regions seed the branch and bound (e.g. data, or the witness of
        :func:`lower_bound`: pass its Bound); the best certified one is the first cut-off.
    l2_lipsdp : bool
        ``l2`` only: also compute the certified LipSDP-Neuron bound (on a box domain: :func:`domain_upper_bound`)
        and use it as the upper end when it is smaller (the exact value lies below every certified upper
        bound); ``checks["lipsdp_upper"]``.

    Returns
    -------
    Bound
        ``side="upper"``, ``value`` = the upper end, ``interval=(lo, hi)``: ``lo`` is the norm of the Jacobian
        of a region that was certified to have nonempty interior (an interior point found by LP and checked in
        float64, the Jacobian recomputed from the form there, rounding subtracted), ``hi`` the solver's dual
        bound inflated for its tolerances (``§4``).  ``witness={"y", "pattern", "jacobian",
        "interior_margin"}``; ``converged`` is True when the gap closed within the node budget; ``checks``
        hold each MILP's size, nodes, status and values.  ``checks["lower_end_certified"]`` says ``lo`` was
        re-verified in float64.  ``hi`` is a finite dual bound of a completed or stopped branch and bound: it
        rests on HiGHS's floating-point LP bounds and is not re-derived independently (the tests compare it
        with brute-force region enumeration), so the Bound is ``certified=False`` with that reason, unless the
        l2 upper end is the re-verified LipSDP certificate (``l2_lipsdp``), which makes it ``certified=True``.

    Raises
    ------
    InvalidInputError
        Unknown norm, a network above ``max_neurons``, or a malformed domain (the message names the fix).
    NotRepresentableError
        The model has no analysis form.
    """
    from ._exact import exact_impl

    if norm not in ("linf", "l2"):
        raise InvalidInputError(f"norm must be 'linf' or 'l2'; got {norm!r}.")
    max_neurons = check_int(max_neurons, "max_neurons", minimum=1)
    if node_limit is not None:
        node_limit = check_int(node_limit, "node_limit", minimum=1)
    if time_limit is not None:
        time_limit = check_scalar(time_limit, "time_limit", low=0.0)
    mip_rel_gap = check_scalar(mip_rel_gap, "mip_rel_gap", low=0.0, high=1.0)
    l2_rounds = check_int(l2_rounds, "l2_rounds", minimum=0)
    form = require_form(model_or_form)
    if isinstance(starts, Bound):
        starts = (starts.witness or {}).get("y")
    if starts is not None:
        starts, _ = check_observations(starts, form.input_dim, "starts")
    b = exact_impl(form, norm, domain, max_neurons, node_limit, time_limit, mip_rel_gap, l2_rounds, seed,
                   starts=starts)
    if norm != "l2" or not l2_lipsdp or b.interval is None:
        return b
    # the exact value lies below every certified upper bound: the global LipSDP certificate may close the bracket
    tl = 60.0 if time_limit is None else max(time_limit * 0.25, 1.0)
    up = upper_bound(form, "lipsdp", time_limit=tl) if domain is None else domain_upper_bound(form, domain,
                                                                                            time_limit=tl)
    checks = dict(b.checks, lipsdp_upper=up.value if up.certified else None)
    lo, hi = b.interval
    if not (up.certified and up.value < hi):
        return dataclasses.replace(b, checks=checks)
    hi = max(up.value, lo)
    tol = max(mip_rel_gap, 1e-6)
    # the upper end is now the re-verified LipSDP certificate, the lower end the witness region: both certified
    return dataclasses.replace(b, checks=checks, value=hi, interval=(lo, hi), converged=bool(hi - lo <= tol * hi),
                               certified=bool(checks.get("lower_end_certified")), reason="",
                               status=b.status + "; upper end from the certified LipSDP bound",
                               solver=b.solver + " + LipSDP-Neuron (certified) for the l2 upper end")


def region_search(model_or_form: Any, start: Any, norm: str = "l2", *, rounds: int = 20,
                  max_uncertain: int = 30, node_limit: int | None = 2000, time_limit: float | None = None,
                  seed: int = 0, restarts: int = 1, flips: int = 50, patience: int = 0,
                  samples: int = 0, jumps: int = 0) -> Bound:
    r"""Lower bound by a search over reachable activation regions, warm-started from given points.

    From the best start point (its region certified as in :func:`exact`), repeat: take the region's top
    singular pair :math:`(u, v)` (l2) or its largest row (l-inf), choose a box around the witness small enough
    that at most ``max_uncertain`` neurons can change piece, and solve exactly, by MILP, :math:`\max u^TJ(y)v`
    over the regions meeting the box; move to the certified region found (``docs/theory/exact_lipschitz.md
    §6``).  Every step is an attained region, so the value only increases and stays a true lower bound; it
    scales to large nets because only the box's undecided neurons get binaries.

    Parameters
    ----------
    start : array (m,) or (k, m), a Bound with ``witness["y"]``, or a list of these
        Start points: a lower bound's witness (its secant ``(y, y + d)`` is sampled at 33 points), an
        :func:`exact` witness, or data; a list pools them.
    rounds : int
        Number of neighbourhood MILPs per trajectory (the work budget, with ``node_limit`` nodes each).
    restarts : int
        Number of trajectories, each from another start region (the start points of largest Jacobian norm
        whose certified regions differ); the best region over all trajectories is returned.
    flips : int
        Budget of moves (per trajectory) of the greedy walk over adjacent regions that runs before the MILPs
        and after every MILP improvement (no MILP: it scales to deep nets; ``§6``).  ``rounds=0`` with
        ``flips > 0`` is the walk alone.
    patience : int
        0 (default): the walk is greedy.  ``> 0``: a non-greedy (tabu) walk that moves to the best unvisited
        certified neighbour even when it is not larger, going back to the best region after ``patience``
        moves without a new best (``docs/theory/exact_lipschitz.md §11``); ``flips`` still bounds its moves.
    samples : int
        Extra start points ranked by their Jacobian norm with the given ones (0, the default: none): the given
        points scaled by log-uniform factors in [1e-2, 1e2] and random directions of log-uniform norms
        (``§12``); costs ``samples`` Jacobian evaluations.
    jumps : int
        Line jumps per trajectory (0, the default: none): when the walk stops, the Jacobian norms at points on
        lines through the witness (its ray ``t y``, its top singular directions, random ones; 418 points) are
        ranked and the largest certified as regions; the walk goes on from a larger one (``§12``).
    max_uncertain : int
        Undecided neurons allowed in a neighbourhood (grows when a neighbourhood holds nothing better).

    Returns
    -------
    Bound
        ``side="lower"``, ``certified=True``, ``witness={"y", "pattern", "jacobian"}``; ``checks["rounds"]``
        logs each neighbourhood (radius, undecided neurons, status, value).
    """
    from ._exact import region_search_impl

    if norm not in ("linf", "l2"):
        raise InvalidInputError(f"norm must be 'linf' or 'l2'; got {norm!r}.")
    form = require_form(model_or_form)
    items = list(start) if isinstance(start, (list, tuple)) and any(isinstance(s, Bound) for s in start) \
        else [start]
    Y = np.concatenate([_start_points(s, form.input_dim) for s in items])
    rounds = check_int(rounds, "rounds", minimum=0)
    max_uncertain = check_int(max_uncertain, "max_uncertain", minimum=1)
    if node_limit is not None:
        node_limit = check_int(node_limit, "node_limit", minimum=1)
    if time_limit is not None:
        time_limit = check_scalar(time_limit, "time_limit", low=0.0)
    restarts = check_int(restarts, "restarts", minimum=1)
    flips = check_int(flips, "flips", minimum=0)
    patience = check_int(patience, "patience", minimum=0)
    samples = check_int(samples, "samples", minimum=0)
    jumps = check_int(jumps, "jumps", minimum=0)
    if rounds == 0 and flips == 0:
        raise InvalidInputError("region_search needs rounds >= 1 or flips >= 1 (both are 0: nothing to search).")
    return region_search_impl(form, Y, norm, rounds, max_uncertain, node_limit, time_limit, seed, restarts,
                              flips, patience, samples, jumps)


def _start_points(start: Any, m: int) -> np.ndarray:
    """Start points of :func:`region_search` from an array or a Bound's witness (k, m)."""
    if isinstance(start, Bound):
        wit = start.witness or {}
        if wit.get("y") is None:
            raise InvalidInputError("start is a Bound without witness['y']; pass points or a lower bound's Bound.")
        y0 = np.asarray(wit["y"], dtype=float)
        if wit.get("d") is not None:
            # a secant (y, y + d) averages the Jacobian along the segment: some point on it has a Jacobian at
            # least as large as the ratio, so the segment's points are the starts
            d = np.asarray(wit["d"], dtype=float)
            start = y0[None, :] + np.linspace(0.0, 1.0, 33)[:, None] * d[None, :]
        else:
            start = y0
    Y, _ = check_observations(start, m, "start")
    return Y


# ---------------------------------------------------------------------------------------------- domain


def domain_preactivations(form: Any, domain: Any, propagation: str = "linear") -> tuple[list, str]:
    """Sound pre-activation intervals ``[(l_k, u_k)]`` of ``form`` over ``domain`` (a box ``(lower, upper)``,
    ``{"center", "radius"}`` an l-infinity ball, or with ``"norm": "l2"`` an l2 ball) by
    bound propagation (``propagation``: "linear", "alpha" or "interval", as in :func:`domain_upper_bound`), and
    the domain's label; shared by :func:`domain_upper_bound` and
    :func:`relaxation_floor`."""
    from ._exact import parse_domain

    _check_ball_args(None, "lipsdp", propagation)
    m = form.input_dim
    if isinstance(domain, dict) and domain.get("norm", "linf") == "l2":
        if set(domain) - {"center", "radius", "norm"}:
            raise InvalidInputError(f"unknown domain keys {sorted(set(domain) - {'center', 'radius', 'norm'})}.")
        Y, _ = check_observations(domain.get("center"), m, "domain['center']")
        radius = check_scalar(domain.get("radius"), "domain['radius']", low=0.0)
        center, rad, nrm = Y[0], radius, "l2"
        label = f"l2 ball of radius {radius:g}"
    else:
        lo, hi = parse_domain(domain, m)
        center, rad, nrm = (lo + hi) / 2, (hi - lo) / 2, "linf"
        label = f"box [{np.array2string(lo, precision=4)}, {np.array2string(hi, precision=4)}]"
    return _ball_pre(form, center, rad, nrm, propagation), label


def domain_upper_bound(model_or_form: Any, domain: Any, *, method: str = "lipsdp", time_limit: float = 60.0,
                       max_evaluations: int | None = None, dtype: str = "auto", polish_steps: int = 200,
                       propagation: str = "linear") -> Bound:
    r"""Certified upper bound on the l2 Lipschitz constant of :math:`y \mapsto x` restricted to a domain.

    The quantity is :math:`\sup\{\|x(y_1)-x(y_2)\|_2/\|y_1-y_2\|_2 : y_1, y_2 \in D\}` for a box
    ``domain=(lower, upper)`` (e.g. the data region), an l-infinity ball ``{"center": c, "radius": r}`` or an
    l2 ball ``{"center": c, "radius": r, "norm": "l2"}``.  Interval bound propagation over :math:`D` fixes
    every neuron that stays inside one linear piece there (its slope becomes a constant and it is eliminated
    exactly); the others keep their slope interval; then ``method`` ("lipsdp", "layerwise", "naive") bounds
    the refined network (per-neuron slope intervals; ``docs/theory/exact_lipschitz.md §5``).  The result is
    labelled with the domain in ``quantity`` and ``method="domain_<method>"``; it is at most the global bound
    of the same method up to optimiser accuracy, and at least the domain's exact constant
    (:func:`exact` with the same box).  ``max_evaluations`` and ``polish_steps`` are the work budgets of
    :func:`upper_bound`.

    ``propagation``: ``"linear"`` (default) bounds the pre-activations by linear (CROWN / Fast-Lin-style)
    bound propagation, intersected with the interval one, which stays tight with depth where intervals
    explode (``docs/theory/exact_lipschitz.md §7``); ``"alpha"`` also optimises the relaxation slopes
    (alpha-CROWN, never wider than ``"linear"``, ``ALPHA_STEPS`` gradient steps per block of
    :mod:`._linear`); ``"interval"`` uses interval propagation only.  ``checks["propagation"]`` records the
    choice.
    """
    form = require_form(model_or_form)
    _check_ball_args(None, method, propagation)
    pre, label = domain_preactivations(form, domain, propagation)
    quantity = f"Lipschitz constant of y -> x on the domain {label} (l2 -> l2)"
    polish_steps = check_int(polish_steps, "polish_steps", minimum=0)
    b = _refined_bound(form, pre, method, {"domain": label, "propagation": propagation}, quantity,
                       time_limit=time_limit, max_evaluations=max_evaluations, dtype=dtype,
                       polish_steps=polish_steps)
    return dataclasses.replace(b, method=f"domain_{b.method}")


def _refined_bound(form: Any, bounds: Any, method: str, extra: dict, quantity: str, *, time_limit: float,
                   max_evaluations: int | None, dtype: str, polish_steps: int = 200) -> Bound:
    """``method``'s bound of the network whose slopes are narrowed by the pre-activation ``bounds`` of a
    domain (:mod:`._local`): neurons fixed to one linear piece are substituted exactly, the others keep their
    (narrowed) slope interval.  Shared by :func:`local_upper_bound` and :func:`domain_upper_bound`."""
    start = time.perf_counter()
    alpha, beta = refined_slopes(form, bounds)
    net = with_slopes(from_form(form), alpha, beta)
    fixed = int(sum(int(np.sum(a == b)) for a, b in zip(alpha, beta)))
    extra = {"fixed_neurons": fixed, "uncertain_neurons": net.num_neurons - fixed, **extra}
    if method == "naive":
        red = eliminate_fixed(net)
        if red.num_blocks == 0:
            b = _linear_bound(red, "naive", start, extra)
        else:
            terms = naive_terms(red)
            b = Bound(value=terms["value"], side="upper", certified=True, method="naive", quantity=quantity,
                      solver="numpy SVD (outward rounded)", status="closed form", checks=extra,
                      seconds=time.perf_counter() - start)
    else:
        b = _sdp_bound(net, method, time_limit=time_limit, max_evaluations=max_evaluations, dtype=dtype,
                       max_dense_order=400, max_fill_bytes=2 * 1024 ** 3, start=start, extra=extra,
                       polish_steps=polish_steps)
    return dataclasses.replace(b, quantity=quantity)


# ---------------------------------------------------------------------------------------------- floor


def relaxation_floor(model_or_form: Any, *, domain: Any = None, restarts: int = 6, moves: int = 400,
                     candidates: int = 16, seed: int = 0, start: Any = None, propagation: str = "linear",
                     exhaustive: bool | None = None, time_limit: float | None = None) -> Bound:
    r"""Certified lower bound on every certificate that only knows per-neuron slope intervals (the floor).

    Every slope-interval certificate (``naive``, ``layerwise``, ``lipsdp`` and their domain / local versions)
    bounds every linear network :math:`w = Dz` with :math:`D_i \in [\alpha_i, \beta_i]` as well, so it is at
    least

    .. math:: F = \max_{D \in \prod_i[\alpha_i, \beta_i]} \|J(D)\|_2,

    the *relaxation floor*; :math:`J(D)` is multi-affine in :math:`D`, so :math:`\|J(D)\|_2` is convex in each
    :math:`D_i` and the maximum is attained at a vertex pattern :math:`D_i \in \{\alpha_i, \beta_i\}`
    (Fazlyab et al. 2019, slope-restricted nonlinearities; ``docs/theory/relaxation_floor.md §1-§2``).  The
    vertex patterns are searched by steepest ascent over single flips (each flip is an exact rank-one change
    :math:`\delta g_i h_i^T` of the Jacobian, scored by the top singular value; ``§3``) from the all-upper
    pattern, ``start`` patterns, random patterns and kicks of the best one.  If ``F`` exceeds 3 x a witnessed
    lower bound, no slope-interval certificate can reach ratio 3 unless the true constant is above ``F / 3``.

    Parameters
    ----------
    model_or_form : Form or model with ``.form()``
    domain : None, (lower, upper), {"center", "radius"} or {"center", "radius", "norm": "l2"}
        As in :func:`domain_upper_bound`: the slope intervals are narrowed by bound propagation over the
        domain (``propagation``), giving the floor of the domain certificates.  ``None``: the global slopes.
    restarts : int
        Number of ascent trajectories (the ``start`` patterns first, then the all-upper pattern, then random
        patterns and random kicks of the best pattern, seeded by ``seed``).
    moves : int
        Budget of accepted flips per trajectory (the work budget; each move is one forward and one backward
        pass with ``m`` and ``out`` columns plus ``candidates`` small SVDs).
    candidates : int
        Flips evaluated exactly per move (the best by their two-dimensional subspace score).
    start : Bound, array (N,) or (k, N), or a list of these, optional
        Start patterns: a region witness (``witness["pattern"]`` of :func:`region_search` / :func:`exact`,
        so the floor is at least that region's value) or slope vectors (one slope per neuron, form order).
    exhaustive : bool, optional
        Evaluate every single flip exactly before declaring a local maximum (default: when affordable).
    time_limit : float, optional
        Safety cap in seconds (then ``converged=False``); the budget is ``restarts`` x ``moves``.

    Returns
    -------
    Bound
        ``side="lower"``, ``certified=True``: ``value`` is :math:`\|J(D)v\|/\|v\|` for the best vertex
        pattern found and its float top right singular vector, re-evaluated in float64 with a rigorous rounding
        bound and rounded down (``§4``), a lower bound on ``F`` and so on every slope-interval certificate --
        *not* on the Lipschitz constant.  ``witness={"slopes", "upper", "v"}`` (slope per neuron, whether it
        is the upper one, test vector); ``checks`` hold the number of moves, every trajectory's value and
        whether it ended at a local maximum over single flips (``converged``: all did, no cap).

    Raises
    ------
    InvalidInputError
        Bad budgets, malformed domain or start (the message names the argument).
    NotRepresentableError
        The model has no analysis form.
    """
    from ._floor import QUANTITY as FLOOR_QUANTITY
    from ._floor import floor_impl, start_slopes

    restarts = check_int(restarts, "restarts", minimum=1)
    moves = check_int(moves, "moves", minimum=0)
    candidates = check_int(candidates, "candidates", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    if exhaustive is not None and not isinstance(exhaustive, bool):
        raise InvalidInputError(f"exhaustive must be None, True or False; got {exhaustive!r}.")
    if time_limit is not None:
        time_limit = check_scalar(time_limit, "time_limit", low=0.0)
    form = require_form(model_or_form)
    net = from_form(form)
    extra: dict = {}
    quantity = FLOOR_QUANTITY
    if domain is not None:
        pre, label = domain_preactivations(form, domain, propagation)
        alpha, beta = refined_slopes(form, pre)
        net = with_slopes(net, alpha, beta)
        extra = {"domain": label, "propagation": propagation}
        quantity = f"{FLOOR_QUANTITY}; slopes narrowed on the domain {label}"
    starts = start_slopes(form, net, start)
    return floor_impl(form, net, restarts=restarts, moves=moves, candidates=candidates, seed=seed,
                      starts=starts, time_limit=time_limit, exhaustive=exhaustive, extra=extra,
                      quantity=quantity)


# ---------------------------------------------------------------------------------------------- local


def local_upper_bound(model_or_form: Any, y: Any, radius: float, *, norm: str = "l2", method: str = "lipsdp",
                      time_limit: float = 60.0, max_evaluations: int | None = None,
                      dtype: str = "auto", propagation: str = "linear") -> Bound:
    r"""Upper bound on the Lipschitz constant of :math:`y \mapsto x` restricted to a ball around ``y``.

    The quantity is :math:`\sup\{\|x(y_1)-x(y_2)\|_2/\|y_1-y_2\|_2 : y_1, y_2 \in \mathcal{B}\}` with
    :math:`\mathcal{B} = \{\|y' - y\|_{p} \le r\}`, :math:`p` = ``norm`` ("l2" or "linf").  Bound propagation
    over the ball (``propagation="linear"``: linear bounds intersected with intervals,
    ``docs/theory/exact_lipschitz.md §7``; ``"alpha"``: the same with optimised relaxation slopes, tighter and
    slower; ``"interval"``: intervals only) fixes the slope of every neuron that
    stays inside one linear piece; those neurons are substituted exactly and the remaining ones keep their
    slope interval.  If every neuron is fixed, the map is linear on the ball and the returned value is the norm
    of that linear map (tight, ``checks["exact"]``). Otherwise ``method`` ("lipsdp", "layerwise" or "naive")
    bounds the refined network; the local bound is at most the global one of the same method up to optimiser
    accuracy.  :func:`local_sandwich` brackets the local constants around many data points at once.
    """
    form = require_form(model_or_form)
    Y, single = check_observations(y, form.input_dim, "y")
    if not single:
        raise InvalidInputError("local_upper_bound takes one centre y of shape (m,); for many centres use "
                                "local_sandwich(model, Y, radius).")
    radius = check_scalar(radius, "radius", low=0.0)
    _check_ball_args(norm, method, propagation)
    quantity = f"local Lipschitz constant of y -> x on the {norm} ball of radius {radius:g} (l2 -> l2)"
    b = _refined_bound(form, _ball_pre(form, Y[0], radius, norm, propagation), method,
                       {"radius": radius, "norm": norm, "propagation": propagation}, quantity,
                       time_limit=time_limit, max_evaluations=max_evaluations, dtype=dtype)
    return dataclasses.replace(b, method=f"local_{b.method}")


_PROPAGATION_LABEL = {"alpha": "optimised-slope linear (alpha-CROWN)", "linear": "linear (CROWN)",
                      "interval": "interval"}


def _check_ball_args(norm: str | None, method: str, propagation: str) -> None:
    if norm is not None and norm not in ("l2", "linf"):
        raise InvalidInputError(f"norm must be 'l2' or 'linf'; got {norm!r}.")
    if method not in ("lipsdp", "layerwise", "naive"):
        raise InvalidInputError(f"method must be 'lipsdp', 'layerwise' or 'naive'; got {method!r}.")
    if propagation not in ("alpha", "linear", "interval"):
        raise InvalidInputError(f"propagation must be 'alpha', 'linear' or 'interval'; got {propagation!r}.")


def _ball_pre(form: Any, center: np.ndarray, radius: Any, norm: str, propagation: str) -> list:
    """Pre-activation bounds over a ball (l2) or box (``norm="linf"``, ``radius`` a scalar or per coordinate):
    the one bound-propagation step of :func:`domain_preactivations` (so of :func:`domain_upper_bound` and
    :func:`relaxation_floor`), :func:`local_upper_bound` and :func:`local_sandwich`."""
    if propagation == "alpha":
        from ._linear import alpha_bounds

        return alpha_bounds(form, center, radius, norm)
    if propagation == "linear":
        from ._linear import linear_bounds

        return linear_bounds(form, center, radius, norm)
    return interval_bounds(form, center, radius, norm)


def local_sandwich(model_or_form: Any, Y: Any, radius: float, *, norm: str = "l2", samples: int = 16,
                   ascent_steps: int = 100, max_evaluations: int | None = 250, time_limit: float = 300.0, seed: int = 0,
                   show_progress: bool | None = None, propagation: str = "auto") -> Bound:
    r"""Certified upper and attained lower bounds on the Lipschitz constant around data points.

    For centres :math:`y_1, \dots, y_p` (rows of ``Y``) and balls :math:`\mathcal B_i = \{\|y - y_i\|_{p}
    \le r\}` the quantity is the Lipschitz constant on their union, the ``r``-neighbourhood of the points,

    .. math:: L(D_r) = \sup_{y, y' \in D_r} \frac{\|x(y) - x(y')\|_2}{\|y - y'\|_2}, \qquad
              D_r = \textstyle\bigcup_i \mathcal B_i,

    the robustness constant that matters for perturbations of size ``r`` of these inputs.  It is the larger
    of the local constants (pairs in one ball) and the pairs that straddle two balls.  Per ball, the upper end
    is :func:`local_upper_bound` (bound propagation over the ball, ``propagation``, fixes the neurons that cannot
    change piece, then LipSDP-Neuron with ``max_evaluations`` objective evaluations, re-verified in float64) and the
    lower end a certified float64 secant between two points of the ball (Jacobian power iteration at the
    centre and ``samples`` seeded points of the ball, then ``ascent_steps`` steps of the smoothed-Jacobian
    ascent projected onto the ball).  A straddling pair is bounded through the centres,
    :math:`(\|x(y_i) - x(y_j)\| + (U_i + U_j) \rho) / (\|y_i - y_j\| - 2\rho)` (:math:`\rho` the l2 radius
    of a ball; balls closer than :math:`4\rho` are covered by one ball around their midpoint), and the
    centres' secant is attained (:mod:`._union`).  The result is ``side="upper"`` with ``value`` = the upper end, ``interval = (lower,
    upper)``, ``checks["balls"]`` (one record per centre: ``upper``, ``lower``, ``fixed_neurons``,
    ``uncertain_neurons``, ``certified``, ``converged``), ``checks["within"]`` (both ends over pairs in one
    ball) and ``checks["across"]`` (both ends over straddling pairs, and the pairs attaining them).  As
    :math:`r \to 0` the within-ball ends meet at the largest Jacobian norm at the centres (where no centre sits
    on a kink); as :math:`r` grows the upper end rises to the global certificate.  Theory:
    ``docs/theory/robustness.md §3``.

    Parameters
    ----------
    Y : array (p, m) or (m,)
        The centres (e.g. test inputs).
    radius : float
        Radius of every ball in ``norm`` ("l2" or "linf").
    samples, ascent_steps : int
        Points drawn in each ball for the lower end (besides the centre), and steps of the projected ascent
        from the best four of them (work budgets).
    max_evaluations : int or None
        Work budget of each ball's LipSDP (``time_limit``, in seconds per ball, is only a safety cap: the
        budget decides the result; a capped ball is reported not converged).
    show_progress : bool, optional
        Progress bar on a terminal, log lines otherwise; default: on from 8 centres.
    propagation : {"auto", "alpha", "linear", "interval"}
        Bound propagation of every ball's upper end (:func:`local_upper_bound`); ``"auto"``: ``"alpha"`` (the
        optimised slopes) for forms of at most ``ALPHA_AUTO_MAX_NEURONS`` (2048) neurons, where it narrows the
        balls' upper ends at a modest cost (``docs/theory/exact_lipschitz.md §7``), ``"linear"`` above.
        ``checks["propagation"]`` records the choice.
    """
    from .._progress import progress
    from ._lower import ball_lower_bound
    from ._torch import ErrorModel, TorchForm
    from ._union import cross_ball_terms

    start = time.perf_counter()
    form = require_form(model_or_form)
    C, _ = check_observations(Y, form.input_dim, "Y")
    radius = check_scalar(radius, "radius", low=0.0)
    if propagation == "auto":
        from ._linear import ALPHA_AUTO_MAX_NEURONS

        propagation = "alpha" if form.num_neurons <= ALPHA_AUTO_MAX_NEURONS else "linear"
    elif propagation not in _PROPAGATION_LABEL:
        raise InvalidInputError(f"propagation must be 'auto', 'alpha', 'linear' or 'interval'; got {propagation!r}.")
    _check_ball_args(norm, "lipsdp", propagation)
    samples = check_int(samples, "samples", minimum=0)
    ascent_steps = check_int(ascent_steps, "ascent_steps", minimum=0)
    if max_evaluations is not None:
        max_evaluations = check_int(max_evaluations, "max_evaluations", minimum=1)
    em, tf = ErrorModel(form), TorchForm(form)
    balls = []
    show = C.shape[0] >= 8 if show_progress is None else bool(show_progress)
    with progress(C.shape[0], f"local Lipschitz sandwich ({C.shape[0]} balls, r={radius:g})",
                  enabled=show) as bar:
        for i, c in enumerate(C):
            up = local_upper_bound(form, c, radius, norm=norm, time_limit=time_limit,
                                   max_evaluations=max_evaluations, propagation=propagation)
            lo, wit = ball_lower_bound(form, c, radius, norm, samples=samples, ascent_steps=ascent_steps,
                                       seed=seed + i, em=em, tf=tf)
            balls.append({"index": i, "upper": up.value, "lower": lo, "certified": up.certified,
                          "converged": up.converged, "fixed_neurons": up.checks.get("fixed_neurons"),
                          "uncertain_neurons": up.checks.get("uncertain_neurons"), "witness": wit,
                          "reason": up.reason})
            bar.update(1)
            bar.set_postfix(upper=f"{max(b['upper'] for b in balls):.4g}",
                            lower=f"{max(b['lower'] for b in balls):.4g}")
    within = (max(b["lower"] for b in balls), max(b["upper"] for b in balls))
    ilo = int(np.argmax([b["lower"] for b in balls]))
    enclosing_balls: list = []

    def enclosing(centre: np.ndarray, rad: float) -> float:
        b = local_upper_bound(form, centre, rad, norm=norm, time_limit=time_limit, max_evaluations=max_evaluations,
                              propagation=propagation)
        enclosing_balls.append(b)
        return b.value

    across = cross_ball_terms(em, C, radius, norm, np.array([b["upper"] for b in balls]), enclosing)
    lo, hi = max(within[0], across["lower"]), max(within[1], across["upper"])
    witness = balls[ilo]["witness"]
    if across["lower"] > within[0]:
        i, j = across["lower_pair"]
        witness = {"y": C[i], "d": C[j] - C[i], "between_centres": (i, j)}
    certified = all(b["certified"] for b in balls) and all(b.certified for b in enclosing_balls)
    converged = all(b["converged"] for b in balls) and all(b.converged for b in enclosing_balls)
    reasons = sorted({b["reason"] for b in balls if b["reason"]} | {b.reason for b in enclosing_balls if b.reason})
    checks = {"radius": radius, "norm": norm, "propagation": propagation, "centres": int(C.shape[0]),
              "samples": samples,
              "ascent_steps": ascent_steps,
              "ratio": hi / lo if lo > 0 else math.inf, "within": within, "across": across,
              "balls": [{k: v for k, v in b.items() if k != "witness"} for b in balls]}
    quantity = (f"Lipschitz constant of y -> x on the union of the {norm} balls of radius {radius:g} around "
                f"{C.shape[0]} given points (their r-neighbourhood; l2 -> l2)")
    return Bound(value=hi, side="upper", certified=certified, method="local_lipsdp", quantity=quantity,
                 solver=f"{_PROPAGATION_LABEL[propagation]} bound propagation + LipSDP-Neuron per ball (float64 "
                        "re-verified), straddling pairs through the centres; float64 secants for the lower end",
                 status="ok" if certified else "uncertified ball", checks=checks,
                 reason="; ".join(reasons), witness=witness, interval=(lo, hi),
                 converged=converged, seconds=time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------- parameters


def parameter_upper_bound(model: Any, y_norm: float, *, W1_norm: Any = None, W2_norm: Any = None) -> Bound:
    r"""Lipschitz constant of the parameters :math:`\mapsto x_K(y)` for a LISTA-type chain, on a bounded set.

    The set is :math:`\{\|W_1^{(k)}\|_2 \le \beta_k,\ \|W_2^{(k)}\|_2 \le \omega_k,\ \theta_k \ge 0\}` with
    inputs :math:`\|y\|_2 \le` ``y_norm``; ``W1_norm``/``W2_norm`` give :math:`\beta_k, \omega_k` (scalars or
    per layer) and default to the model's own spectral norms (the smallest such set containing the model).
    The constant is

    .. math:: L = \Big(\sum_{k=1}^K \Pi_k^2 (X_{k-1}^2 + R^2 + c_\theta)\Big)^{1/2},\quad \Pi_k =
              \prod_{j>k}\omega_j,\ X_0 = 0,\ X_k = \omega_kX_{k-1} + \beta_k R,

    for the Euclidean norm of the stacked parameters (Frobenius for matrices), :math:`c_\theta = n` for scalar
    thresholds and 1 for per-coordinate ones; ``checks`` give the per-group constants (derivation in
    :mod:`._parameter`).  An upper bound, not tight in general.  Uses: covering-number generalisation bounds
    (Behboodi, Rauhut, Schnoor 2022).
    """
    from ._parameter import model_norms, parameter_constants, weights_of

    start = time.perf_counter()
    y_norm = check_scalar(y_norm, "y_norm", low=0.0)
    W1, W2, theta, tied = weights_of(model)
    K = len(W1)
    for k in range(K):
        if not (np.all(np.isfinite(W1[k])) and np.all(np.isfinite(W2[k])) and np.all(np.isfinite(theta[k]))):
            raise InvalidInputError(f"layer {k + 1} has NaN/Inf weights; pass finite weights.")
    n = int(np.asarray(W1[0]).shape[0])
    b_own, w_own = model_norms(W1, W2)
    from ._parameter import _per_layer

    beta = b_own if W1_norm is None else _per_layer(W1_norm, K, "W1_norm")
    omega = w_own if W2_norm is None else _per_layer(W2_norm, K, "W2_norm")
    th_arr = [np.asarray(t, dtype=float) for t in theta]
    scalar_theta = all(t.size == 1 for t in th_arr)
    if hasattr(model, "theta") and hasattr(model.theta, "shape"):
        scalar_theta = int(model.theta.shape[-1]) == 1
    c = parameter_constants(beta, omega, y_norm, n, scalar_theta, tied)
    return Bound(value=c["total"], side="upper", certified=True, method="closed_form",
                 quantity="Lipschitz constant of parameters (W1, W2, theta) -> x_K(y), Euclidean/Frobenius, "
                          "uniformly over ||y|| <= y_norm and the parameter set",
                 solver="closed form (outward rounded)", status="ok",
                 checks={"L_W1": c["W1"], "L_W2": c["W2"], "L_theta": c["theta"], "tied": tied,
                         "scalar_theta": scalar_theta, "W1_norm": [float(v) for v in beta],
                         "W2_norm": [float(v) for v in omega], "iterate_norm_bounds": [float(v) for v in
                                                                                      c["iterate_norms"]]},
                 seconds=time.perf_counter() - start)
