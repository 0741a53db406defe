"""Benchmark of the LASSO reference paths: the fast batched path against per-instance cvxpy.

Instances: ``SparseRecovery.gaussian(m=250, n=500, p=0.1)`` (the LISTA-CP / ALISTA set-up, noiseless), LASSO
weight ``lam = 0.1`` by default (about 4% of ``||A^T y||_inf`` for these instances, which gives supports of
about 60 coordinates; the script prints the ratio).  Three timings in the same run:

* ``fast``: ``ut.reference.solve(prob, Y)`` on all ``--num`` instances (a fresh problem object, so the Gram
  matrix and Lipschitz constant are included);
* ``plain loop``: the naive baseline, a fresh ``cp.Problem`` built and solved with Clarabel per instance (no
  parameters), on the first ``--loop-subset`` instances;
* ``compiled once``: ``ut.reference.solve(prob, Y, method="cvxpy")`` on the same subset (``y`` a DPP
  parameter, compiled once; Clarabel plus the polish and the certificate).

Goal: the fast path at least 100x the plain loop, with every relative duality gap <= 1e-8 (computed by the
library, not claimed by a solver).  Run::

    python verification/benchmarks/bench_reference.py [--num 1000] [--loop-subset 20] [--lam 0.1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import unfoldtheory as ut


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=1000, help="instances for the fast path (default 1000)")
    parser.add_argument("--loop-subset", type=int, default=20,
                        help="instances for the per-instance cvxpy loops (default 20)")
    parser.add_argument("--m", type=int, default=250)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--p", type=float, default=0.1, help="Bernoulli sparsity of x* (default 0.1)")
    parser.add_argument("--lam", type=float, default=0.1, help="LASSO weight (default 0.1)")
    parser.add_argument("--snr-db", type=float, default=None, help="noise level in dB (default: noiseless)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tol", type=float, default=1e-8, help="relative-gap tolerance (default 1e-8)")
    args = parser.parse_args(argv)

    gen = ut.problems.SparseRecovery.gaussian(m=args.m, n=args.n, p=args.p, snr_db=args.snr_db,
                                              seed=args.seed)
    Y = gen.sample(args.num, seed=args.seed + 1).y
    k = min(args.loop_subset, args.num)
    A, lam = gen.A, args.lam
    print(f"LASSO m={args.m} n={args.n} p={args.p} lam={lam:g} snr_db={args.snr_db}: {args.num} instances "
          f"(lam / ||A^T y||_inf: median {np.median(lam / np.abs(Y @ A).max(axis=1)):.3f})")

    # ---- fast path, all instances (cold: fresh problem object)
    prob = ut.problems.Lasso(A, lam)
    t0 = time.perf_counter()
    fast = ut.reference.solve(prob, Y, method="fast", tol=args.tol)
    t_fast = time.perf_counter() - t0
    fell_back = int(np.sum(fast.solver != "fast"))

    # ---- plain per-instance cvxpy loop (naive baseline)
    import cvxpy as cp

    warm = cp.Variable(2)
    cp.Problem(cp.Minimize(cp.sum_squares(warm - 1) + cp.norm1(warm))).solve(solver="CLARABEL")  # imports
    X_plain = np.empty((k, args.n))
    t0 = time.perf_counter()
    for i in range(k):
        x = cp.Variable(args.n)
        problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(A @ x - Y[i]) + lam * cp.norm1(x)))
        problem.solve(solver="CLARABEL")
        X_plain[i] = x.value
    t_plain = time.perf_counter() - t0

    # ---- compiled-once cvxpy path (the library's reference), same subset, fresh problem object
    prob_c = ut.problems.Lasso(A, lam)
    t0 = time.perf_counter()
    ref = ut.reference.solve(prob_c, Y[:k], method="cvxpy", tol=args.tol)
    t_comp = time.perf_counter() - t0

    rate_fast, rate_plain, rate_comp = args.num / t_fast, k / t_plain, k / t_comp
    diff = np.linalg.norm(fast.x[:k] - ref.x, axis=1) / np.maximum(np.linalg.norm(ref.x, axis=1), 1e-300)
    plain_gap = prob.duality_gap(X_plain, Y[:k], relative=True)
    plain_res = prob.optimality_residual(X_plain, Y[:k], relative=True)

    print(f"fast path          : {args.num:5d} instances in {t_fast:8.3f} s = {rate_fast:10.1f} instances/s")
    print(f"plain cvxpy loop   : {k:5d} instances in {t_plain:8.3f} s = {rate_plain:10.1f} instances/s")
    print(f"compiled-once cvxpy: {k:5d} instances in {t_comp:8.3f} s = {rate_comp:10.1f} instances/s")
    print(f"speed-up fast / plain loop        : {rate_fast / rate_plain:8.1f}x")
    print(f"speed-up fast / compiled-once     : {rate_fast / rate_comp:8.1f}x")
    print(f"fast path: largest relative gap {np.max(fast.relative_gap):.3e}, largest relative residual "
          f"{np.max(fast.residual):.3e}, certified {int(np.sum(fast.certified))}/{args.num}, "
          f"fell back to cvxpy: {fell_back}")
    print(f"compiled-once cvxpy: largest relative gap {np.max(ref.relative_gap):.3e}, largest relative "
          f"residual {np.max(ref.residual):.3e}")
    print(f"plain loop (Clarabel as is, no polish): largest relative gap {plain_gap.max():.3e}, largest "
          f"relative residual {plain_res.max():.3e}")
    print(f"fast vs compiled-once cvxpy on the subset: largest relative x difference {diff.max():.3e}")
    ok = rate_fast >= 100 * rate_plain and bool(np.all(fast.relative_gap <= 1e-8))
    print(f"goal (>= 100x the plain loop, every relative gap <= 1e-8): {'MET' if ok else 'NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
