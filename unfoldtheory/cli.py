"""The ``unfoldtheory`` command line.

    unfoldtheory verify [--profile quick|full|smoke] [--out DIR] [--only PATTERN ...]
    unfoldtheory bounds MODEL_FILE [--json] [--time-limit SECONDS]
    unfoldtheory claims                       # list the claims of the verification suite
    unfoldtheory sweep --grid layers=2,4,8 seed=0,1,2 [--profile smoke] [--only PATTERN ...] --out DIR

``verify`` and ``sweep`` use the local cores (``--workers N``; 1 runs serially) or a Dask cluster
(``--scheduler tcp://host:8786``); see docs/scaleout.md.

``verify`` runs the verification suite and writes ``report.md``, ``results.json`` and figures; its exit status
is 1 when a claim is violated or raises.  ``bounds`` computes every applicable bound for a model saved with
:func:`unfoldtheory.models.save` (e.g. after :func:`unfoldtheory.training.train`) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import InvalidInputError, NotRepresentableError, UnfoldTheoryError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="unfoldtheory", description="Check the theory of deep unfolding against "
                                "trained networks.", formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True, metavar="{verify,bounds,claims,sweep}")
    scale = argparse.ArgumentParser(add_help=False)
    scale.add_argument("--workers", type=int, default=None, metavar="N", help="worker processes (default: "
                       "$UNFOLDTHEORY_WORKERS, else the local cores, at most 8; 1 runs everything in this process)")
    scale.add_argument("--scheduler", default=None, metavar="ADDRESS", help="run the tasks on a Dask cluster "
                       "(e.g. tcp://host:8786; needs the [dask] extra); the cache and output folders must be "
                       "shared with its workers")
    v = sub.add_parser("verify", parents=[common, scale], help="run the verification suite and write its report",
                       description="Train the zoo once (cached by configuration hash), check every claim against "
                       "its empirical counterpart, write report.md, results.json and figures. Exit status 1 if a "
                       "claim is violated or raises.")
    v.add_argument("--profile", default="quick", choices=["quick", "full", "smoke"],
                   help="quick: CPU, a few minutes (default); full: m=250, n=500, K=16 (for a GPU); smoke: tiny")
    v.add_argument("--out", default=None, help="output folder (default verification/out/<profile> in a checkout of "
                   "the repository, else ./unfoldtheory-report-<profile>)")
    v.add_argument("--only", nargs="+", metavar="PATTERN", help="run only claims whose id matches (glob)")
    v.add_argument("--cache", default=None, help="trained-model cache (default $UNFOLDTHEORY_CACHE or "
                   "~/.cache/unfoldtheory/models)")
    v.add_argument("--device", default=None, help="training device (default: cuda when available, else cpu)")
    v.add_argument("--no-comparative", action="store_true", help="skip the comparative study of the paradigms")
    v.add_argument("--no-progress", action="store_true", help="no progress bars")
    v.add_argument("--recompute", action="store_true", help="recompute every claim (default: reuse records cached "
                   "by a run with the same profile, device and source code; trained models are always reused)")
    v.add_argument("--threads", type=int, default=1, help="torch threads (default 1: fastest for these small "
                   "networks; 0 keeps torch's default)")
    v.add_argument("--inject-failure", nargs="+", default=(), metavar="CLAIM_ID",
                   help="testing aid: make these claims' bounds wrong; the report must show them violated")
    b = sub.add_parser("bounds", parents=[common], help="every applicable bound for a saved model",
                       description="Load a model saved with unfoldtheory.models.save and print its certified "
                       "bounds (Lipschitz upper and lower, contraction, sensitivity), each with its side.")
    b.add_argument("model_file", metavar="MODEL_FILE")
    b.add_argument("--json", action="store_true", help="print JSON instead of a table")
    b.add_argument("--time-limit", type=float, default=30.0, help="seconds per SDP bound (default 30)")
    sub.add_parser("claims", parents=[common], help="list the claims of the verification suite")
    w = sub.add_parser("sweep", parents=[common, scale], help="run claims over a grid of profile fields",
                       description="Run the chosen claims at every point of a grid of profile fields (product of "
                       "the values), resumable (finished tasks in OUT/tasks are not redone), and write "
                       "OUT/sweep.csv and OUT/figures (bound and empirical value against each swept field, "
                       "spread over seeds).")
    w.add_argument("--grid", nargs="+", required=True, metavar="FIELD=V1,V2,...",
                   help="profile fields and their values, e.g. layers=2,4,8 seed=0,1,2 (tuple values: 20:80)")
    w.add_argument("--profile", default="smoke", choices=["quick", "full", "smoke"], help="base profile "
                   "(default smoke)")
    w.add_argument("--only", nargs="+", metavar="PATTERN", help="claims whose id matches (glob; default all)")
    w.add_argument("--out", required=True, help="output folder (reuse it to resume)")
    w.add_argument("--cache", default=None, help="trained-model cache (as for verify)")
    w.add_argument("--device", default=None, help="training device (default: cuda when available, else cpu)")
    w.add_argument("--threads", type=int, default=1, help="torch / BLAS threads per task (default 1)")
    w.add_argument("--max-tasks", type=int, default=None, metavar="N", help="run at most N claim tasks now and "
                   "leave the rest for a later call")
    w.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _executor(args):
    """The executor of ``--workers`` / ``--scheduler`` (a Dask address, a worker count)."""
    if args.scheduler and args.workers is not None:
        raise InvalidInputError("--workers and --scheduler exclude each other: the Dask cluster has its own "
                                "workers.")
    if args.scheduler:
        return args.scheduler
    if args.workers is not None and args.workers < 1:
        raise InvalidInputError(f"--workers must be >= 1; got {args.workers}.")
    return args.workers if args.workers is not None else "local"


def _grid(items: Sequence[str]) -> dict:
    grid = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name or not values:
            raise InvalidInputError(f"--grid takes FIELD=V1,V2,... (e.g. layers=2,4,8); got {item!r}.")

        def parse(v: str):
            if ":" in v:
                return tuple(parse(x) for x in v.split(":"))
            try:
                return json.loads(v)
            except ValueError:
                return v

        grid[name] = [parse(v) for v in values.split(",")]
    return grid


def _sweep(args) -> int:
    from . import suite

    res = suite.sweep(_grid(args.grid), args.profile, out=args.out, only=args.only, executor=_executor(args),
                      cache_dir=args.cache, device=args.device, threads=args.threads or None,
                      max_tasks=args.max_tasks, progress=not args.no_progress)
    errors = sum(r["status"] == "error" for r in res.rows)
    violated = sum(r["status"] == "violated" for r in res.rows)
    print(f"{len(res.rows)} rows ({res.computed} tasks run now, {res.reused} finished earlier, {res.remaining} "
          f"left); {violated} violated, {errors} errors")
    print(f"table: {res.table}")
    for f in res.figures:
        print(f"figure: {f}")
    return 1 if violated or errors else 0


def _default_out(profile: str) -> Path:
    repo = Path(__file__).resolve().parents[1]
    if (repo / "verification").is_dir() and (repo / "pyproject.toml").is_file():
        return repo / "verification" / "out" / profile
    return Path.cwd() / f"unfoldtheory-report-{profile}"


def _verify(args) -> int:
    from . import suite

    out = Path(args.out) if args.out else _default_out(args.profile)
    results = suite.run(args.profile, out, only=args.only, cache_dir=args.cache, device=args.device,
                        inject_failure=args.inject_failure, comparative=not args.no_comparative,
                        progress=not args.no_progress, threads=args.threads or None,
                        reuse=not args.recompute, executor=_executor(args))
    (out / "results.schema.json").write_text(json.dumps(suite.results_schema(), indent=1))
    s = results.summary
    print(f"{s['total']} claims: {s['holds']} hold, {s['not applicable']} not applicable, {s['violated']} violated, "
          f"{s['error']} errors ({results.data['seconds']:.0f} s)")
    for r in results.records:
        if r["status"] in ("violated", "error"):
            print(f"  {r['status'].upper()}: {r['id']}: {r['error'] or r['title']}")
    print(f"report: {results.paths['report']}\nresults: {results.paths['results']}")
    return results.exit_code


def model_bounds(model, time_limit: float = 30.0) -> list[dict]:
    """Every applicable bound of a model, one row per quantity (name, side, value, certified, method, note)."""
    from . import contraction, lipschitz

    rows: list[dict] = []

    def add(name, bound=None, note=""):
        if bound is None:
            rows.append({"quantity": name, "side": "-", "value": None, "certified": False, "method": "-",
                         "note": note})
        else:
            rows.append({"quantity": name, "side": bound.side, "value": bound.value, "certified": bound.certified,
                         "method": bound.method, "note": note or bound.reason})

    try:
        form = model.form()
    except NotRepresentableError as exc:
        form, why = None, str(exc)
    if form is None:
        add("Lipschitz constant of y -> x_K", note=f"not applicable: {why}")
    else:
        for method in ("naive", "layerwise", "lipsdp"):
            add(f"Lipschitz constant of y -> x_K ({method})", lipschitz.upper_bound(form, method, time_limit=time_limit))
        add("Lipschitz constant of y -> x_K (attained)", lipschitz.lower_bound(form, time_limit=time_limit))
        try:
            c = contraction.contraction_certificate(model)
            add("contraction factor of x_1 -> x_K (fixed y)", c,
                note="a contraction" if c.value < 1 else "not certified a contraction (>= 1)")
        except NotRepresentableError as exc:
            add("contraction factor of x_1 -> x_K (fixed y)", note=f"not applicable: {exc}")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    rows.append({"quantity": "trainable parameters", "side": "exact", "value": float(trainable), "certified": True,
                 "method": "count", "note": ""})
    return rows


def _bounds(args) -> int:
    from .models import load

    path = Path(args.model_file)
    if not path.exists():
        raise InvalidInputError(f"MODEL_FILE {os.fspath(path)!r} does not exist; pass a file written by "
                                "unfoldtheory.models.save.")
    if path.is_dir():
        raise InvalidInputError(f"MODEL_FILE {os.fspath(path)!r} is a directory; pass a model file.")
    import torch

    model = load(path, device="cpu", dtype=torch.float64)
    rows = model_bounds(model, time_limit=args.time_limit)
    if args.json:
        from ._json import jsonable

        clean = [{k: (None if isinstance(v, float) and not math.isfinite(v) else jsonable(v)) for k, v in r.items()}
                 for r in rows]
        print(json.dumps({"model": type(model).__name__, "file": os.fspath(path), "bounds": clean}, indent=1))
        return 0
    print(f"{type(model).__name__} from {os.fspath(path)}: {model}")
    width = max(len(r["quantity"]) for r in rows)
    print(f"{'quantity':<{width}}  {'side':<8} {'value':>12}  {'certified':<9}  method / note")
    for r in rows:
        val = "-" if r["value"] is None else f"{r['value']:.6g}"
        note = f"{r['method']}" + (f"; {r['note']}" if r["note"] else "")
        print(f"{r['quantity']:<{width}}  {r['side']:<8} {val:>12}  {r['certified']!s:<9}  {note}")
    return 0


def _claims(_args) -> int:
    from .suite import catalogue

    for c in catalogue():
        print(f"{c.id:<36} [{c.relation:>6}] {c.title}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return {"verify": _verify, "bounds": _bounds, "claims": _claims, "sweep": _sweep}[args.command](args)
    except (UnfoldTheoryError, FileNotFoundError) as exc:
        print(f"unfoldtheory {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
