"""Worst case of N steps of gradient descent and proximal gradient (gamma = 1/L): our PEP engine vs PEPit.

    python verification/benchmarks/bench_pep.py [--steps 10 20 30 50] [--skip-pepit-above N]
                                                [--pepit-solver CLARABEL] [--repeat 3]

For each method (``gd``: f(x_N) - f*, tight value L/(4N+2); ``prox_grad``: F(x_N) - F*, tight value L/(4N))
and each N, prints the wall time, the value and its relative error against the closed form for our engine
(:func:`unfoldtheory.convergence.worst_case`, median of ``--repeat`` runs after a warm-up) and for PEPit
(same problem, one run, same solver), and the speed ratio PEPit / ours.  PEPit needs minutes for 50 steps
of proximal gradient; ``--skip-pepit-above N`` skips PEPit for larger N (the table says so).

Goal (issue 5): 50-step proximal gradient in under 5 s with relative error <= 1e-6, at least 20x faster than
PEPit.  The machine may be shared: the load average is printed, and timings may be contended.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings


sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

import unfoldtheory.convergence as conv  # noqa: E402
from unfoldtheory import symbolic  # noqa: E402

CLOSED = {"gd": symbolic.gd_unit_step_rate, "prox_grad": symbolic.prox_grad_unit_step_rate}


def pepit_worst_case(N: int, method: str, solver: str) -> float:
    """PEPit's value for N steps with step 1/L (warnings silenced: PEPit reports inaccurate solves itself)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return conv.pepit_worst_case([1.0] * N, method=method, solver=solver).value


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, nargs="+", default=[10, 20, 30, 50])
    p.add_argument("--methods", nargs="+", default=["gd", "prox_grad"])
    p.add_argument("--skip-pepit-above", type=int, default=None, metavar="N",
                   help="do not run PEPit for N larger than this (it needs minutes at N=50 for prox_grad)")
    p.add_argument("--pepit-solver", default="CLARABEL")
    p.add_argument("--repeat", type=int, default=3)
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

    header = (f"{'method':<10}{'N':>4} | {'ours [s]':>9} {'value':>14} {'rel.err':>9} {'exact':>6} "
              f"{'cert':>5} | {'PEPit [s]':>10} {'value':>14} {'rel.err':>9} | {'|ours-PEPit|/ref':>16} "
              f"{'speed-up':>9}")
    print(header)
    print("-" * len(header))
    results = []
    for method in args.methods:
        for N in args.steps:
            ref = CLOSED[method](N)
            times, b = [], None
            for _ in range(max(1, args.repeat)):
                t0 = time.perf_counter()
                b = conv.worst_case([1.0] * N, method=method)
                times.append(time.perf_counter() - t0)
            t_ours = statistics.median(times)
            err = abs(b.value - ref) / ref
            t_pep = None
            if have_pepit and (args.skip_pepit_above is None or N <= args.skip_pepit_above):
                t0 = time.perf_counter()
                try:
                    v_pep = pepit_worst_case(N, method, args.pepit_solver)
                    t_pep = time.perf_counter() - t0
                    pep = (f"{t_pep:>10.2f} {v_pep:>14.9g} {abs(v_pep - ref) / ref:>9.1e} | "
                           f"{abs(b.value - v_pep) / ref:>16.1e} {t_pep / t_ours:>8.0f}x")
                except Exception as exc:  # PEPit/solver failure: report it, keep going
                    failed = "failed: " + type(exc).__name__
                    pep = f"{time.perf_counter() - t0:>10.2f} {failed:>24} | {'':>16} {'':>9}"
            else:
                pep = f"{'skipped':>10} {'':>14} {'':>9} | {'':>16} {'':>9}"
            print(f"{method:<10}{N:>4} | {t_ours:>9.3f} {b.value:>14.9g} {err:>9.1e} "
                  f"{str(b.checks['exact']):>6} {str(b.certified):>5} | {pep}", flush=True)
            results.append((method, N, t_ours, err, b.certified, t_pep))
    print(f"# load average at end {tuple(round(x, 2) for x in os.getloadavg())}")
    goal = [r for r in results if r[0] == "prox_grad" and r[1] == 50]
    if goal:
        _, _, t, e, c, tp = goal[0]
        ok = t < 5.0 and e <= 1e-6 and c
        met = "MET" if tp is not None and tp / t >= 20 else "NOT MET"
        speed = (f"PEPit {tp:.1f} s, {tp / t:.0f}x faster (goal >= 20x: {met})" if tp is not None
                 else "PEPit not timed at N=50 (see --skip-pepit-above)")
        print(f"# goal 50-step prox_grad: {t:.2f} s (< 5 s), rel. err {e:.1e} (<= 1e-6), certified {c}: "
              f"{'MET' if ok else 'NOT MET'}; {speed}")


if __name__ == "__main__":
    main()
