"""Speed-up of a verification run on local worker processes against the serial run, in the same process.

    python verification/benchmarks/bench_scaleout.py [--profile quick] [--workers 2] [--cached] [--only ...]

Runs the suite serially (the baseline) and then with ``--workers`` local processes, each with a fresh model
cache (so both include the training of the zoo) unless ``--cached`` (then the models are trained once before
either timing, and both runs load them).  Claim records are never reused.  Prints both wall times, the ratio,
the load average of the machine before and after (a loaded machine makes the ratio meaningless), and whether
every claim has the same status, bound and empirical value in both runs; values of searches stopped by their time
limit (the Lipschitz lower bounds of the quick profile are capped at a few seconds) may differ, and are listed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def values(res) -> dict:
    return {r["id"]: (r["status"], r["bound"] and r["bound"]["value"], r["empirical"]) for r in res.records}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="quick")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--only", nargs="+", default=None)
    p.add_argument("--cached", action="store_true", help="train the models first; time claims only")
    p.add_argument("--no-comparative", action="store_true")
    args = p.parse_args()

    import unfoldtheory as ut

    kw = {"only": args.only, "comparative": not args.no_comparative, "progress": False, "reuse": False}
    with tempfile.TemporaryDirectory() as tmp:
        caches = [os.path.join(tmp, "cache")] * 2 if args.cached else [os.path.join(tmp, "c1"),
                                                                         os.path.join(tmp, "c2")]
        if args.cached:
            ctx = ut.suite.Context.create(args.profile, cache_dir=caches[0], progress=False)
            for c in ut.suite.select(ut.suite.catalogue(), args.only):
                for m in c.models:
                    ctx.model(m)
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        serial = ut.suite.run(args.profile, os.path.join(tmp, "serial"), cache_dir=caches[0], **kw)
        t_serial = time.perf_counter() - t0
        load1 = os.getloadavg()
        t0 = time.perf_counter()
        par = ut.suite.run(args.profile, os.path.join(tmp, "par"), cache_dir=caches[1], executor=args.workers, **kw)
        t_par = time.perf_counter() - t0
        load2 = os.getloadavg()
    a, b = values(serial), values(par)
    differ = sorted(k for k in a if a[k] != b.get(k))
    print(f"profile {args.profile}, {len(a)} claims, models {'cached' if args.cached else 'trained in each run'}, "
          f"comparative study {'off' if args.no_comparative else 'on'}, {os.cpu_count()} CPUs")
    print(f"load average (1 min) before / between / after: {load0[0]:.2f} / {load1[0]:.2f} / {load2[0]:.2f}")
    print(f"serial:        {t_serial:8.1f} s   {serial}")
    print(f"{args.workers} workers:     {t_par:8.1f} s   {par}")
    print(f"speed-up: {t_serial / t_par:.2f}x")
    print(f"identical status, bound and empirical value: {len(a) - len(differ)} of {len(a)} claims")
    for k in differ:
        print(f"  differs: {k}: serial {a[k]} vs workers {b.get(k)}")


if __name__ == "__main__":
    main()
