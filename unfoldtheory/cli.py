"""The ``unfoldtheory`` command line (see :data:`EPILOG` for what ``--help`` prints).

``verify`` runs the verification suite and writes ``report.md``, ``results.json`` and figures; its exit status
is 1 when a claim on a bound is violated or raises (a violated *finding*, a property of a trained model such as
"the network is a contraction", is reported but does not fail the run).  ``bounds`` computes every applicable
bound for a model saved with :func:`unfoldtheory.models.save` (e.g. after :func:`unfoldtheory.training.train`),
a ``torch.export`` archive (``.pt2``) or ``module.py:factory`` with ``--weights`` (docs/your_model.md §6) and
prints a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import InvalidInputError, NotRepresentableError, UnfoldTheoryError

EPILOG = """\
commands:
  unfoldtheory verify [--profile quick|full|smoke] [--out DIR] [--only PATTERN ...] [--workers N]
      run the verification suite; writes report.md, results.json and figures; exit status 1 when a claim is
      violated or raises
  unfoldtheory bounds MODEL_FILE [--json] [--time-limit SECONDS] [--weights STATE_DICT] [--input-dim M]
      every applicable bound of a model saved with unfoldtheory.models.save, of a torch.export archive
      (.pt2), or of module.py:factory (a function returning the module; --weights state_dict.pt)
  unfoldtheory claims
      list the claims of the verification suite
  unfoldtheory sweep --grid layers=2,4,8 seed=0,1,2 [--profile smoke] [--only PATTERN ...] --out DIR
      run claims over a grid of profile fields (resumable); writes sweep.csv and figures

verify and sweep use the local cores (--workers N; 1 runs serially) or a Dask cluster
(--scheduler tcp://host:8786); see docs/scaleout.md.

threads: every command pins torch to --threads threads (default 1, the fastest setting for the small
networks analysed here, and far faster than torch's default on a loaded machine); --threads 0 keeps
torch's default.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="unfoldtheory", description="Check the theory of deep unfolding against "
                                "trained networks.", formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=EPILOG)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    common.add_argument("--threads", type=int, default=1, help="torch threads (default 1: fastest for these "
                        "small networks; 0 keeps torch's default)")
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
    v.add_argument("--inject-failure", nargs="+", default=(), metavar="CLAIM_ID",
                   help="testing aid: make these claims' bounds wrong; the report must show them violated")
    b = sub.add_parser("bounds", parents=[common], help="every applicable bound for a saved model",
                       description="Load a model and print its certified bounds (Lipschitz upper and lower, "
                       "contraction), each with its side. MODEL_FILE is a file written by "
                       "unfoldtheory.models.save, a torch.export archive (.pt2), or module.py:factory (a "
                       "function returning the torch module, weights from --weights state_dict.pt); a model "
                       "without form() gets its analysis form extracted from its torch code.")
    b.add_argument("model_file", metavar="MODEL_FILE")
    b.add_argument("--weights", metavar="STATE_DICT", default=None,
                   help="with module.py:factory: a state_dict file (torch.save(model.state_dict(), ...))")
    b.add_argument("--input-dim", type=int, default=None, metavar="M",
                   help="dimension m of y, for a plain module whose input size cannot be inferred")
    b.add_argument("--json", action="store_true", help="print JSON instead of a table")
    b.add_argument("--time-limit", type=float, default=60.0,
                   help="safety cap in seconds per SDP bound (default 60); the bounds' budgets count work "
                        "(evaluations), so the numbers do not depend on the machine's load unless this cap stops "
                        "a computation, which is then reported as NOT converged")
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
    from .suite._core import LOOSE_FACTOR
    from .suite._report import failed_assumption_text
    from .verdicts import Verdict

    out = Path(args.out) if args.out else _default_out(args.profile)
    results = suite.run(args.profile, out, only=args.only, cache_dir=args.cache, device=args.device,
                        inject_failure=args.inject_failure, comparative=not args.no_comparative,
                        progress=not args.no_progress, threads=args.threads or None,
                        reuse=not args.recompute, executor=_executor(args))
    (out / "results.schema.json").write_text(json.dumps(suite.results_schema(), indent=1))
    s = results.summary
    print(f"{s['total']} claims: {s['holds']} hold, {s['vacuous']} vacuous, {s['not applicable']} not applicable, "
          f"{s['violated']} violated ({s['violated findings']} of them findings on the trained models), "
          f"{s['error']} errors; {s['loose']} loose bounds (> {LOOSE_FACTOR:g}x), {s['not converged']} not "
          f"converged ({results.data['seconds']:.0f} s)")
    for r in results.records:
        if r["status"] == Verdict.VIOLATED:
            failed = [name for name, ok in r["checks"].items() if not ok]
            kind = "FINDING (does not hold)" if r.get("finding") else "VIOLATED"
            why = "; ".join(failed_assumption_text(f) for f in failed) if failed else (
                f"empirical {r['empirical']} vs bound {r['bound']['value'] if r['bound'] else None}")
            print(f"  {kind}: {r['id']}: {r['title']}: {why}")
        elif r["status"] in (Verdict.ERROR, Verdict.VACUOUS):
            print(f"  {r['status'].upper()}: {r['id']}: {r['error'] or r.get('vacuous_reason')}")
    print(f"report: {results.paths['report']}\nresults: {results.paths['results']}")
    return results.exit_code


def model_bounds(model, time_limit: float = 30.0, progress: bool = True, form=None,
                 input_dim: int | None = None) -> list[dict]:
    """Every applicable bound of a model: rows ``{"quantity", "bound", "note"}`` with ``bound`` a
    :class:`~unfoldtheory.bounds.Bound` (``None`` where the quantity is not applicable; the note says why).

    ``form``: the model's analysis form when already known (an extracted one); otherwise ``model.form()`` or,
    for a plain module, the form extracted by :func:`unfoldtheory.form.extract` (``input_dim`` if given)."""
    from . import contraction, lipschitz
    from ._progress import progress as make_progress
    from .bounds import Bound
    from .form import require_form

    rows: list[dict] = []
    bar = make_progress(6, f"bounds of {type(model).__name__}", enabled=progress)

    def add(name, bound=None, note=""):
        rows.append({"quantity": name, "bound": bound, "note": note})
        bar.update(1)

    why = ""
    if form is None:
        try:
            form = require_form(model, input_dim=input_dim)
        except NotRepresentableError as exc:
            form, why = None, str(exc)
    if form is None:
        add("Lipschitz constant of y -> x_K", note=f"not applicable: {why}")
    else:
        for method in ("naive", "layerwise", "lipsdp"):
            add(f"Lipschitz constant of y -> x_K ({method})", lipschitz.upper_bound(form, method, time_limit=time_limit))
        add("Lipschitz constant of y -> x_K (attained)", lipschitz.lower_bound(form, time_limit=time_limit))
        try:
            c = contraction.contraction_certificate(form)
            add("contraction factor of x_1 -> x_K (fixed y)", c,
                note="a contraction" if c.value < 1 else "not certified a contraction (>= 1)")
        except NotRepresentableError as exc:
            add("contraction factor of x_1 -> x_K (fixed y)", note=f"not applicable: {exc}")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    add("trainable parameters", Bound(value=float(trainable), side="measured", certified=False, method="count",
                                      reason="counted (exact)"))
    bar.close()
    return rows


def _load_plain(spec: str, weights: str | None, input_dim: int | None):
    """``(model, form_or_None, dtype, input_dim)`` for a ``.pt2`` archive or ``module.py:factory``, else None."""
    import torch

    if spec.endswith(".pt2"):
        path = Path(spec)
        if not path.is_file():
            raise InvalidInputError(f"MODEL_FILE {spec!r} does not exist; pass a torch.export archive (.pt2).")
        if weights is not None:
            raise InvalidInputError("--weights goes with module.py:factory; a .pt2 archive holds its weights.")
        from .form import extract

        import warnings

        with warnings.catch_warnings():   # torch's own deprecation notices while unpickling its tree specs
            warnings.simplefilter("ignore", FutureWarning)
            ep = torch.export.load(os.fspath(path))
        users = list(ep.graph_signature.user_inputs)
        nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
        if len(users) != 1 or users[0] not in nodes or len(nodes[users[0]].meta["val"].shape) != 2:
            raise InvalidInputError(f"{spec!r} must export forward(y) with one input y of shape (batch, m); it "
                                    f"has the inputs {users}.")
        b, m = nodes[users[0]].meta["val"].shape
        m = int(m) if input_dim is None else int(input_dim)
        batch = int(b) if isinstance(b, int) else None   # exported without a dynamic batch dimension
        module = ep.module()
        dtype = next((t.dtype for t in list(module.parameters()) + list(module.buffers())
                      if t.is_floating_point()), torch.float64)
        return module, extract(module, m, batch=batch), dtype, m
    file, sep, name = spec.rpartition(":")
    if not sep or not file.endswith(".py"):
        if weights is not None:
            raise InvalidInputError("--weights needs MODEL_FILE of the form module.py:factory.")
        return None
    if not Path(file).is_file():
        raise InvalidInputError(f"{file!r} (from {spec!r}) does not exist; pass module.py:factory.")
    import importlib.util

    mod_spec = importlib.util.spec_from_file_location(Path(file).stem, file)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    factory = getattr(mod, name, None)
    if not callable(factory):
        raise InvalidInputError(f"{file!r} has no callable {name!r}; pass module.py:factory with a function "
                                "returning the torch module.")
    model = factory()
    if not isinstance(model, torch.nn.Module):
        raise InvalidInputError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module.")
    if weights is not None:
        if not Path(weights).is_file():
            raise InvalidInputError(f"--weights {weights!r} does not exist; pass a file written by "
                                    "torch.save(model.state_dict(), path).")
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    dtype = next((t.dtype for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()),
                 torch.float32)
    return model.to("cpu", torch.float64), None, dtype, input_dim


def _bounds(args) -> int:
    from .models import load

    plain = _load_plain(args.model_file, args.weights, args.input_dim)
    path = Path(args.model_file)
    if plain is not None:
        model, form, saved_dtype, input_dim = plain
        rows = model_bounds(model, time_limit=args.time_limit, form=form, input_dim=input_dim)
    else:
        if not path.exists():
            raise InvalidInputError(f"MODEL_FILE {os.fspath(path)!r} does not exist; pass a file written by "
                                    "unfoldtheory.models.save, a .pt2 archive or module.py:factory.")
        if path.is_dir():
            raise InvalidInputError(f"MODEL_FILE {os.fspath(path)!r} is a directory; pass a model file.")
        import torch

        saved = load(path, device="cpu")
        saved_dtype = saved.dtype
        model = saved.to(torch.float64)  # analyses run in float64 whatever the model was saved in
        rows = model_bounds(model, time_limit=args.time_limit)
    if args.json:
        from ._json import jsonable

        # one serializer: Bound.to_dict (loss-free, non-finite numbers as "inf"/"-inf"/"nan")
        out = [{"quantity": r["quantity"], "note": r["note"], "bound": jsonable(r["bound"])} for r in rows]
        print(json.dumps({"model": type(model).__name__, "file": os.fspath(path), "bounds": out}, indent=1,
                         allow_nan=False))
        return 0
    print(f"{type(model).__name__} from {os.fspath(path)} (saved as {str(saved_dtype).replace('torch.', '')}; "
          f"bounds computed in float64): {model}")
    width = max(len(r["quantity"]) for r in rows)
    print(f"{'quantity':<{width}}  {'side':<8} {'value':>12}  {'certified':<9}  method / note")
    for r in rows:
        b = r["bound"]
        if b is None:
            print(f"{r['quantity']:<{width}}  {'-':<8} {'-':>12}  {'-':<9}  {r['note']}")
            continue
        note = r["note"] or (b.reason if not b.certified else "")
        if not b.converged:
            note = (note + "; " if note else "") + "NOT converged (stopped by the --time-limit safety cap)"
        cert = "measured" if b.side == "measured" else str(b.certified)
        print(f"{r['quantity']:<{width}}  {b.side:<8} {b.value:>12.6g}  {cert:<9}  {b.method}"
              + (f"; {note}" if note else ""))
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
    logging.getLogger("unfoldtheory.progress").setLevel(logging.INFO)  # progress lines when not on a terminal
    try:
        if args.threads < 0:
            raise InvalidInputError(f"--threads must be >= 0 (0 keeps torch's default); got {args.threads}.")
        from ._device import torch_threads

        with torch_threads(args.threads or None):
            return {"verify": _verify, "bounds": _bounds, "claims": _claims, "sweep": _sweep}[args.command](args)
    except (UnfoldTheoryError, FileNotFoundError) as exc:
        print(f"unfoldtheory {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
