"""Worst case of N steps of gradient descent, proximal gradient (gamma = 1/L) and FISTA's momentum schedule:
our PEP engine vs PEPit, from short to long horizons.

    python verification/benchmarks/bench_pep.py [--steps 50 100 200 500 1000]
                                                [--methods gd prox_grad momentum]
                                                [--pepit-timeout 60] [--skip-pepit-above N]
                                                [--pepit-solver CLARABEL] [--repeat 1]

For each method (``gd``: f(x_N) - f*, tight value L/(4N+2); ``prox_grad``: F(x_N) - F*, tight value L/(4N);
``momentum``: ``momentum_prox_grad`` with FISTA's schedule, no closed form, compared with PEPit and with
Beck & Teboulle's bound L/(2 t_N^2)) and each N, prints the wall time, the value and its relative error
against the closed form for our engine (:func:`unfoldtheory.convergence.worst_case`, median of ``--repeat``
runs after a warm-up) and for PEPit (same problem, one run, same solver, in a child process killed after
``--pepit-timeout`` seconds: the table says "timeout"), and the speed ratio PEPit / ours.

Goals (issue 15): gradient descent at N = 1000 equal to L/(4N+2) to 1e-6 relative in under 60 s; 200-step
proximal gradient and momentum in under 30 s.  The machine may be shared: the load average is printed, and
timings may be contended.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

import unfoldtheory.convergence as conv
from unfoldtheory import symbolic
from unfoldtheory.models.momentum import fista_momentum

CLOSED = {"gd": symbolic.gd_unit_step_rate, "prox_grad": symbolic.prox_grad_unit_step_rate}


#: seed of the "learned" momentum schedule (a fixed random perturbation of FISTA's)
LEARNED_SEED = 15


def learned_schedule(N: int, seed: int = LEARNED_SEED) -> tuple[list[float], list[float]]:
    """A fixed-seed stand-in for a trained schedule: steps uniform in [0.7, 1.3] (units of 1/L) and FISTA's
    momentum times a factor uniform in [0.8, 1.0] (beta_k < 1: a factor above 1 makes beta_k > 1 at long
    horizons, a divergent schedule)."""
    rng = np.random.default_rng(seed)
    steps = rng.uniform(0.7, 1.3, N)
    betas = np.asarray(fista_momentum(N)) * rng.uniform(0.8, 1.0, N)
    return steps.tolist(), betas.tolist()


def _problem(method: str, N: int) -> dict:
    if method == "momentum":
        return {"steps": [1.0] * N, "method": "momentum_prox_grad", "momentum": list(fista_momentum(N))}
    if method == "momentum_learned":
        steps, betas = learned_schedule(N)
        return {"steps": steps, "method": "momentum_prox_grad", "momentum": betas}
    return {"steps": [1.0] * N, "method": method}


def _beck_teboulle(N: int) -> float:
    t = [1.0]
    for _ in range(N):
        t.append((1 + math.sqrt(1 + 4 * t[-1] ** 2)) / 2)
    return 1.0 / (2 * t[N - 1] ** 2)


def _pepit_child(N: int, method: str, solver: str, queue) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            kw = _problem(method, N)
            t0 = time.perf_counter()
            v = conv.pepit_worst_case(kw["steps"], method=kw["method"], solver=solver,
                                      momentum=kw.get("momentum")).value
            queue.put(("ok", v, time.perf_counter() - t0))
        except Exception as exc:  # noqa: BLE001 - reported in the table
            queue.put(("failed", type(exc).__name__, math.nan))


def pepit_worst_case(N: int, method: str, solver: str, timeout: float) -> tuple[str, float | str, float]:
    """PEPit's value and solve time for N steps with step 1/L, in a fresh child process (spawned: a forked
    child of a process that has run torch / BLAS threads can deadlock) stopped after ``timeout`` seconds."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_pepit_child, args=(N, method, solver, queue))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.terminate()
        proc.join()
        return "timeout", f"> {timeout:g} s", math.nan
    return queue.get() if not queue.empty() else ("failed", f"exit {proc.exitcode}", math.nan)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, nargs="+", default=[50, 100, 200, 500, 1000])
    p.add_argument("--methods", nargs="+", default=["gd", "prox_grad", "momentum", "momentum_learned"])
    p.add_argument("--pepit-timeout", type=float, default=60.0, metavar="S",
                   help="stop PEPit after S seconds (default 60; the issue allows up to 600)")
    p.add_argument("--skip-pepit-above", type=int, default=200, metavar="N",
                   help="do not run PEPit for N larger than this (default 200: PEPit's memory grows "
                        "like N^2, about 4 GB within a minute at N = 200)")
    p.add_argument("--momentum-max-n", type=int, default=500, metavar="N",
                   help="skip our momentum PEP above this N (default 500: at N = 1000 the float64 "
                        "certificate's dense eigensolves of dimension 2000 and the solve take minutes on "
                        "2 cores, see docs/theory/pep.md section 4)")
    p.add_argument("--pepit-solver", default="CLARABEL")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()

    try:
        import PEPit  # noqa: F401
        have_pepit = True
    except ImportError:
        have_pepit = False
    import cvxpy

    print(f"# bench_pep  python {platform.python_version()}, cvxpy {cvxpy.__version__}, "
          f"{os.cpu_count()} CPUs, load average at start {tuple(round(x, 2) for x in os.getloadavg())}")
    print("# timings may be contended (shared machine); ours = median of "
          f"{args.repeat} runs after a warm-up, PEPit = one run (solver {args.pepit_solver})")
    if not have_pepit:
        print("# PEPit is not installed: only our engine is timed (pip install pepit)")
    conv.worst_case([1.0, 1.0], method="prox_grad")      # warm-up: imports cvxpy, compiles nothing cached

    header = (f"{'method':<10}{'N':>5} | {'ours [s]':>9} {'value':>14} {'rel.err':>9} {'exact':>6} "
              f"{'cert':>5} | {'PEPit [s]':>10} {'value':>14} {'rel.err':>9} | {'|ours-PEPit|/ref':>16} "
              f"{'speed-up':>9}")
    print(header)
    print("-" * len(header))
    results = []
    for method in args.methods:
        for N in args.steps:
            ref = CLOSED[method](N) if method in CLOSED else None
            times, b, fail = [], None, ""
            if method.startswith("momentum") and N > args.momentum_max_n:
                print(f"{method:<10}{N:>5} | skipped (N > --momentum-max-n={args.momentum_max_n}; raise it "
                      f"to run)", flush=True)
                continue
            for _ in range(max(1, args.repeat)):
                t0 = time.perf_counter()
                try:
                    kw = _problem(method, N)
                    b = conv.worst_case(kw["steps"], method=kw["method"], momentum=kw.get("momentum"))
                except Exception as exc:  # noqa: BLE001 - reported in the table
                    fail = type(exc).__name__
                times.append(time.perf_counter() - t0)
            t_ours = statistics.median(times)
            if b is None:
                ours = f"{t_ours:>9.3f} {'failed: ' + fail:>24} {'':>6} {'':>5}"
                err, value = math.nan, math.nan
            else:
                value = b.value
                err = abs(value - ref) / ref if ref else math.nan
                ours = (f"{t_ours:>9.3f} {value:>14.9g} {err:>9.1e} {b.checks['exact']!s:>6} "
                        f"{b.certified!s:>5}")
            t_pep = None
            if args.skip_pepit_above is None or N <= args.skip_pepit_above:
                if have_pepit:
                    t0 = time.perf_counter()
                    kind, v_pep, t_solve = pepit_worst_case(N, method, args.pepit_solver, args.pepit_timeout)
                    dt = time.perf_counter() - t0
                    if kind == "ok":
                        t_pep = t_solve            # PEPit's own time (not the child's start-up)
                        perr = abs(v_pep - ref) / ref if ref else math.nan
                        rel = abs(value - v_pep) / abs(v_pep) if v_pep else math.nan
                        pep = (f"{t_pep:>10.2f} {v_pep:>14.9g} {perr:>9.1e} | {rel:>16.1e} "
                               f"{t_pep / t_ours:>8.1f}x")
                    else:
                        pep = f"{dt:>10.2f} {kind + ': ' + str(v_pep):>24} | {'':>16} {'':>9}"
                else:
                    pep = f"{'no PEPit':>10} {'':>14} {'':>9} | {'':>16} {'':>9}"
            else:
                pep = f"{'skipped':>10} {'':>14} {'':>9} | {'':>16} {'':>9}"
            extra = f"  (Beck-Teboulle bound {_beck_teboulle(N):.6g})" if method == "momentum" else ""
            print(f"{method:<10}{N:>5} | {ours} | {pep}{extra}", flush=True)
            results.append((method, N, t_ours, err, b is not None and b.certified, t_pep))
    print(f"# load average at end {tuple(round(x, 2) for x in os.getloadavg())}")
    for method, N, limit, need_err in (("gd", 1000, 60.0, 1e-6), ("prox_grad", 200, 30.0, 1e-6),
                                       ("momentum", 200, 30.0, None), ("momentum_learned", 200, 30.0, None)):
        row = [r for r in results if r[0] == method and r[1] == N]
        if not row:
            continue
        _, _, t, e, c, tp = row[0]
        ok = t < limit and c and (need_err is None or e <= need_err)
        err_txt = f", rel. err {e:.1e} (<= {need_err:g})" if need_err else ""
        pep_txt = f"PEPit {tp:.1f} s ({tp / t:.1f}x)" if tp is not None else "PEPit did not finish / not run"
        print(f"# goal {method} N={N}: {t:.1f} s (< {limit:g} s){err_txt}, certified {c}: "
              f"{'MET' if ok else 'NOT MET'}; {pep_txt}")


if __name__ == "__main__":
    main()
