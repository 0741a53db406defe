"""Import cost of unfoldtheory beyond torch (goal: well under 2 s), measured in fresh interpreters.

    python verification/benchmarks/bench_import.py [--repeat 5]

Prints the median time of ``import torch`` alone and of ``import torch; import unfoldtheory`` (each in a
fresh process, so nothing is cached in memory), their difference, and which optional heavy modules the import
pulled in (must be none of cvxpy, sympy, hypothesis, matplotlib).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBE = """
import json, sys, time
t0 = time.perf_counter(); import torch; t1 = time.perf_counter()
{extra}
t2 = time.perf_counter()
print(json.dumps({{"torch": t1 - t0, "extra": t2 - t1,
                  "heavy": [m for m in ("cvxpy", "sympy", "hypothesis", "matplotlib") if m in sys.modules]}}))
"""


def run(extra: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE.format(extra=extra)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    base = [run("pass") for _ in range(args.repeat)]
    ours = [run("import unfoldtheory") for _ in range(args.repeat)]
    t_torch = statistics.median(r["torch"] for r in base)
    t_ours = statistics.median(r["extra"] for r in ours)
    print(f"import torch                 : {t_torch:.3f} s (median of {args.repeat})")
    print(f"import unfoldtheory after it : {t_ours:.3f} s  (goal < 2 s)  ratio to torch: {t_ours / t_torch:.2f}")
    print(f"heavy optional modules loaded: {sorted(set(sum((r['heavy'] for r in ours), []))) or 'none'}")


if __name__ == "__main__":
    main()
