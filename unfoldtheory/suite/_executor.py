"""Independent work of a verification run or a sweep, dispatched as tasks to an executor (docs/scaleout.md).

The library never schedules: it splits the work into tasks (the training of each zoo model, each group of claims
that share a computation, the comparative study) and submits them to whatever has a ``submit(fn, *args)`` method
returning futures:

* ``None`` / ``1`` / ``"serial"``: no executor, the run stays in this process (the historical path);
* an ``int`` n > 1 or ``"local"`` (n = :func:`default_workers`): a :class:`concurrent.futures.ProcessPoolExecutor`
  with the ``spawn`` start method, created and shut down by the library;
* a Dask scheduler address (``"tcp://host:8786"``; ``distributed`` is imported lazily, extra ``[dask]``): a
  ``distributed.Client`` and its ``get_executor()``;
* any object with ``submit``: ``client.get_executor()`` of Dask, a ``submitit.AutoExecutor`` (SLURM), a Ray
  adapter (``ray.remote(fn).remote(*args).future()``), a user's own pool.  Such an executor is not shut down.

Each task rebuilds the run's :class:`~unfoldtheory.suite.Context` from a picklable :class:`RunSpec` (profile,
cache folder, device, output folder, threads), pins its torch / BLAS threads, seeds the global random generators
from the profile seed and the claim id, and returns plain records.  Trained models and figures travel through the
cache and output folders, which must therefore be shared by all workers (a shared file system for a cluster).
A task that raises, or whose worker dies, becomes ``error`` records of its claims and the run goes on.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import dataclasses
import logging
import os
import random
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._device import torch_threads
from ..errors import InvalidInputError

log = logging.getLogger("unfoldtheory.suite")

#: Most local worker processes :func:`default_workers` picks (each holds a torch runtime, ~300 MB).
MAX_DEFAULT_WORKERS = 8
#: Environment variables that size the BLAS / OpenMP thread pools of a freshly started worker process.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "NUMEXPR_NUM_THREADS")


def default_workers() -> int:
    """Worker processes of ``executor="local"``: ``$UNFOLDTHEORY_WORKERS`` if set, else the cores this process
    may use (``os.sched_getaffinity``), at most :data:`MAX_DEFAULT_WORKERS`."""
    env = os.environ.get("UNFOLDTHEORY_WORKERS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise InvalidInputError(f"$UNFOLDTHEORY_WORKERS must be a positive integer; got {env!r}.") from None
        if n < 1:
            raise InvalidInputError(f"$UNFOLDTHEORY_WORKERS must be a positive integer; got {env!r}.")
        return n
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_WORKERS))


# --------------------------------------------------------------------------------------------- inside a task

def task_seed(profile_seed: int, item: str) -> int:
    """The seed of one task: a stable function of the profile seed and the task's name (claim id)."""
    return (int(profile_seed) * 1_000_003 + zlib.crc32(item.encode())) % (2 ** 31 - 1)


def seed_globals(seed: int) -> None:
    """Seed the global generators of ``random``, numpy and torch (claims should use their own generators; this
    makes any that do not independent of which claims ran before them in the same process)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def execute_claim(claim, ctx, inject: bool = False) -> dict:
    """Check one claim as every executor does: global generators seeded from the profile seed and the claim id,
    then :func:`unfoldtheory.suite._runner.run_claim` (which never raises)."""
    from ._runner import run_claim

    seed_globals(task_seed(ctx.profile.seed, claim.id))
    return run_claim(claim, ctx, inject=inject)


@dataclass(frozen=True)
class RunSpec:
    """What a worker needs to rebuild the context of a run (picklable, hashable)."""

    profile: Any
    cache_dir: str
    device: str
    out: str | None
    threads: int | None = 1

    @classmethod
    def of(cls, ctx, threads: int | None) -> RunSpec:
        return cls(ctx.profile, str(ctx.cache_dir), ctx.device, None if ctx.out is None else str(ctx.out), threads)


#: Contexts of the last runs this worker process served (their problem, reference optima and models are reused by
#: the next task of the same run, as in a serial run).
_CONTEXTS: collections.OrderedDict = collections.OrderedDict()
_CONTEXTS_KEPT = 2


def worker_context(spec: RunSpec):
    """The context of ``spec`` in this process (created once, kept for the next tasks of the same run)."""
    from ._context import Context

    ctx = _CONTEXTS.pop(spec, None)
    if ctx is None:
        ctx = Context.create(spec.profile, cache_dir=spec.cache_dir, device=spec.device, progress=False,
                             out=spec.out)
    _CONTEXTS[spec] = ctx
    while len(_CONTEXTS) > _CONTEXTS_KEPT:
        _CONTEXTS.popitem(last=False)
    return ctx


@dataclass(frozen=True)
class _Pickled:
    """A claim serialised with cloudpickle (its check is a closure that plain pickle refuses)."""

    blob: bytes


def portable(claim) -> Any:
    """What to send for a custom claim: the claim itself when :mod:`pickle` takes it, else its cloudpickle
    serialisation (cloudpickle comes with Dask), else None (then it runs in the submitting process)."""
    import pickle

    try:
        pickle.dumps(claim)
        return claim
    except Exception as exc:  # noqa: BLE001 - closures, lambdas, local classes
        log.debug("claim %s is not picklable (%s); trying cloudpickle", claim.id, exc)
    try:
        import cloudpickle
    except ImportError:
        return None
    try:
        return _Pickled(cloudpickle.dumps(claim))
    except Exception:  # noqa: BLE001
        return None


def resolve_claims(items: Sequence) -> list:
    """Claims from ids of the built-in catalogue (rebuilt in the worker: the checks are closures), objects, or
    cloudpickled objects."""
    if any(isinstance(c, _Pickled) for c in items):
        import cloudpickle

        items = [cloudpickle.loads(c.blob) if isinstance(c, _Pickled) else c for c in items]
    ids = [c for c in items if isinstance(c, str)]
    table = {}
    if ids:
        from ._runner import catalogue

        table = {c.id: c for c in catalogue()}
    out = []
    for c in items:
        if isinstance(c, str):
            if c not in table:
                raise InvalidInputError(f"claim {c!r} is not in this worker's catalogue; is the same version of "
                                        "unfoldtheory installed on every worker?")
            out.append(table[c])
        else:
            out.append(c)
    return out


def train_task(spec: RunSpec, name: str) -> dict:
    """Train (or load from the shared cache) the zoo model ``name``; returns its model-log entry."""
    with torch_threads(spec.threads):
        ctx = worker_context(spec)
        if name in ctx._models:  # trained or loaded by an earlier task of this worker
            return {**ctx.model_log.get(name, {}), "cached": True}
        seed_globals(task_seed(spec.profile.seed, "train:" + name))
        ctx.model(name)
        return dict(ctx.model_log.get(name, {}))


def claims_task(spec: RunSpec, claims: Sequence, inject: Sequence[str] = (), record_dir: str | None = None,
                extra: dict | None = None) -> list[dict]:
    """Check a group of claims in one context (they share its memoised computations); returns their records.

    With ``record_dir`` each record is also written there atomically as ``<claim id>.json`` (with ``extra``
    fields), so a sweep keeps every finished task even when the submitting process is interrupted.
    """
    import json

    from .._json import jsonable
    from ._files import atomic_write_text

    with torch_threads(spec.threads):
        ctx = worker_context(spec)
        records = []
        for claim in resolve_claims(claims):
            rec = execute_claim(claim, ctx, inject=claim.id in set(inject))
            records.append(rec)
            if record_dir is not None:
                folder = Path(record_dir)
                folder.mkdir(parents=True, exist_ok=True)
                atomic_write_text(folder / f"{claim.id}.json",
                                  json.dumps(jsonable({**rec, **(extra or {})}), allow_nan=False))
        return records


#: What the comparative study reads of a memoised Lipschitz computation (``_claims_bounds.lipschitz_bounds``).
LIPSCHITZ_FIELDS = ("naive", "layerwise", "lipsdp", "lower", "attack", "best_lower")


def _lipschitz_memos(ctx, skip: Iterable[str] = ()) -> dict:
    """The Bounds of the Lipschitz computations memoised in ``ctx`` (except the keys ``skip``), by model."""
    return {key.split(":", 1)[1]: {f: value[f] for f in LIPSCHITZ_FIELDS} for key, value in ctx._memo.items()
            if key.startswith("lipschitz:") and key not in set(skip)}


def claims_with_memos_task(spec: RunSpec, claims: Sequence, inject: Sequence[str] = ()) -> dict:
    """:func:`claims_task`, also returning the Lipschitz bounds it computed (``{"records", "lipschitz"}``), which
    the comparative study reuses instead of computing them again."""
    before = set(worker_context(spec)._memo)
    records = claims_task(spec, claims, inject)
    return {"records": records, "lipschitz": _lipschitz_memos(worker_context(spec), skip=before)}


def lipschitz_task(spec: RunSpec, name: str) -> dict:
    """The Lipschitz bounds of one model for the comparative study (models no claim of the run covers);
    ``{}`` for a model without an analysis form."""
    from ..errors import NotRepresentableError
    from ._claims_bounds import lipschitz_bounds

    with torch_threads(spec.threads):
        ctx = worker_context(spec)
        seed_globals(task_seed(spec.profile.seed, "lipschitz:" + name))
        try:
            lipschitz_bounds(ctx, name)
        except NotRepresentableError:
            return {}
        return {name: _lipschitz_memos(ctx)[name]}


def comparative_task(spec: RunSpec, lipschitz: dict | None = None) -> dict:
    """The comparative study of the paradigms (one task), reusing the Lipschitz bounds ``lipschitz`` (by model)
    computed by other tasks of the run."""
    from .._json import jsonable
    from ._comparative import comparative_study

    with torch_threads(spec.threads):
        ctx = worker_context(spec)
        seeded = {f"lipschitz:{name}": b for name, b in (lipschitz or {}).items()}
        # a copy: the worker's context keeps only complete memos (a later claim may need all of an entry)
        study_ctx = dataclasses.replace(ctx, _memo={**seeded, **ctx._memo})
        seed_globals(task_seed(spec.profile.seed, "comparative"))
        return jsonable(comparative_study(study_ctx))


def claim_groups(claims: Sequence) -> list[list]:
    """Claims that share a memoised computation go in one task: ``lipschitz.<M>`` and ``robustness.<M>`` reuse
    the Lipschitz bounds of model M (``ctx.memo("lipschitz:M")``); every other claim is a task of its own."""
    groups: dict[str, list] = {}
    for c in claims:
        topic, _, rest = c.id.partition(".")
        key = f"lipschitz-robustness:{rest}" if topic in ("lipschitz", "robustness") else c.id
        groups.setdefault(key, []).append(c)
    return list(groups.values())


def error_record(claim, ctx, message: str, inject: bool = False) -> dict:
    """The record of a claim whose task failed outside the claim (a dead worker, an unpicklable task, ...)."""
    from ._runner import run_claim

    def failed(_ctx):
        raise TaskError(message.removeprefix("TaskError: "))

    failed.__doc__ = claim.check.__doc__
    from dataclasses import replace

    rec = run_claim(replace(claim, check=failed), ctx, inject=inject)
    rec["seconds"] = 0.0
    return rec


class TaskError(RuntimeError):
    """A task failed outside its claims: its worker died, or it could not be sent or run."""


# --------------------------------------------------------------------------------------------- dispatching

@dataclass
class Task:
    """One unit of work: ``fn(*args)`` in some worker; ``key`` names it in logs and results."""

    key: str
    fn: Callable
    args: tuple
    marker: str | None = field(default=None, repr=False)


def _tracked(marker: str, fn: Callable, *args):
    """Run ``fn(*args)`` after leaving the file ``marker``: after a worker died, the tasks with a marker were
    running (one of them killed it), the others had not started."""
    Path(marker).touch()
    return fn(*args)


def _local_pool(workers: int) -> cf.ProcessPoolExecutor:
    import multiprocessing as mp

    # spawn: a clean interpreter per worker (no forked torch / OpenMP state, no inherited locks)
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))


@contextlib.contextmanager
def _thread_environment(threads: int | None) -> Iterator[None]:
    """Size the BLAS pools of worker processes started in the block (they read these variables at start-up)."""
    if threads is None:
        yield
        return
    saved = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    for k in THREAD_VARIABLES:
        os.environ[k] = str(int(threads))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _is_address(s: str) -> bool:
    return "://" in s or s.count(":") == 1 and s.rsplit(":", 1)[1].isdigit()


class Dispatcher:
    """Runs :class:`Task` s serially or through an executor; failures become outcomes, never exceptions.

    Use as a context manager: an executor created here (local processes, a Dask client) is shut down on exit.
    """

    def __init__(self, executor: Any = None, threads: int | None = 1):
        self.threads = threads
        self.workers: int | None = None
        self.executor = None
        self.kind = "serial"
        self._owned = False
        self._client = None
        self._stack = contextlib.ExitStack()
        if executor is None or executor == "serial":
            return
        if isinstance(executor, bool):
            raise InvalidInputError(f"executor must be None, 'local', a worker count, a Dask scheduler address or an "
                                    f"object with submit(); got {executor!r}.")
        if isinstance(executor, int):
            if executor < 1:
                raise InvalidInputError(f"executor (workers) must be >= 1; got {executor}.")
            self.workers = executor
        elif executor == "local":
            self.workers = default_workers()
        elif isinstance(executor, str):
            if not _is_address(executor):
                raise InvalidInputError(f"executor {executor!r} is neither 'local', 'serial' nor a Dask scheduler "
                                        "address like 'tcp://host:8786'.")
            self.kind = "dask"
            self._address = executor
        elif callable(getattr(executor, "submit", None)):
            self.executor = executor
            self.kind = "external"
        else:
            raise InvalidInputError(f"executor must be None, 'local', a worker count, a Dask scheduler address or an "
                                    f"object with submit(fn, *args) returning futures; got {type(executor).__name__}.")
        if self.workers is not None:
            self.kind = "serial" if self.workers == 1 else "local"

    @property
    def serial(self) -> bool:
        return self.kind == "serial"

    def __enter__(self) -> Dispatcher:  # noqa: PYI034
        if self.kind == "local":
            self._stack.enter_context(_thread_environment(self.threads))
            self.executor = _local_pool(self.workers)
            self._owned = True
            import shutil
            import tempfile

            self._markers = tempfile.mkdtemp(prefix="unfoldtheory-tasks-")
            self._stack.callback(shutil.rmtree, self._markers, ignore_errors=True)
        elif self.kind == "dask":
            try:
                from distributed import Client
            except ImportError:
                raise InvalidInputError("a Dask scheduler address needs the 'distributed' package: "
                                        "pip install 'unfoldtheory[dask]'.") from None
            try:
                self._client = Client(self._address)  # waits distributed.comm.timeouts.connect (30 s)
            except (OSError, TimeoutError) as exc:
                raise InvalidInputError(f"could not connect to the Dask scheduler at {self._address!r} (executor / "
                                        f"--scheduler): {exc}. Start one with 'dask scheduler' and workers with "
                                        "'dask worker ADDRESS --nthreads 1'.") from None
            self._stack.callback(self._client.close)
            self.executor = self._client.get_executor(pure=False)  # tasks write files: never deduplicate
        return self

    def __exit__(self, *exc) -> None:
        if self._owned and self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
        self.executor = None
        self._stack.close()

    def describe(self) -> str:
        if self.kind == "local":
            return f"{self.workers} local worker processes"
        if self.kind == "dask":
            return f"Dask scheduler {self._address}"
        if self.kind == "external":
            return type(self.executor).__name__
        return "serial"

    # ---------------------------------------------------------------- running tasks
    def map(self, tasks: Iterable[Task]) -> Iterator[tuple[Task, bool, Any]]:
        """Yield ``(task, ok, value)`` for every task as it finishes: ``value`` is the result when ``ok``, else
        a one-line description of the failure."""
        tasks = list(tasks)
        if self.serial:
            for t in tasks:
                try:
                    yield t, True, t.fn(*t.args)
                except Exception as exc:  # noqa: BLE001 - a failed task is an outcome
                    yield t, False, f"{type(exc).__name__}: {exc}"
            return
        yield from self._map_executor(tasks)

    def _map_executor(self, tasks: list[Task]) -> Iterator[tuple[Task, bool, Any]]:
        from concurrent.futures.process import BrokenProcessPool

        pending, isolated = tasks, []
        while pending:
            broken: list[Task] = []
            unsent: list[Task] = []
            for t, fut in self._submit_all(pending, unsent):
                if isinstance(fut, str):  # submit itself failed (e.g. the task cannot be pickled)
                    yield t, False, fut
                    continue
                try:
                    yield t, True, fut.result()
                except BrokenProcessPool:
                    broken.append(t)
                except Exception as exc:  # noqa: BLE001 - raised in the task, or a lost worker (Dask)
                    yield t, False, f"{type(exc).__name__}: {exc}"
            pending = unsent
            if not (broken or unsent):
                break
            if not self._owned:  # not ours to restart
                for t in broken + unsent:
                    yield t, False, "TaskError: the executor's worker process died (BrokenProcessPool)"
                break
            self._renew()
            for t in broken:  # the tasks that were running when the worker died are retried one by one
                (isolated if t.marker and os.path.exists(t.marker) else pending).append(t)
            log.warning("a worker process died; %d task(s) that were running are retried alone, %d that had not "
                        "started go to fresh workers", len(isolated), len(pending))
            for t in isolated:  # alone in a fresh single worker: a task that still kills it is the culprit
                yield self._run_alone(t)
            isolated = []

    def _submit_all(self, tasks: list[Task], unsent: list[Task]) -> Iterator[tuple[Task, Any]]:
        """Submit ``tasks``; yield ``(task, future)`` as they finish, ``(task, message)`` for a failed submit.
        Tasks that could not be submitted because the pool broke meanwhile are appended to ``unsent``."""
        from concurrent.futures.process import BrokenProcessPool

        futures, failed = [], []
        for i, t in enumerate(tasks):
            try:
                if self._owned:
                    t.marker = os.path.join(self._markers, f"{id(t)}-{time.monotonic_ns()}")
                    futures.append((t, self.executor.submit(_tracked, t.marker, t.fn, *t.args)))
                else:
                    futures.append((t, self.executor.submit(t.fn, *t.args)))
            except BrokenProcessPool:
                unsent.extend(tasks[i:])
                break
            except Exception as exc:  # noqa: BLE001
                failed.append((t, f"{type(exc).__name__}: could not submit the task: {exc}"))
        yield from failed
        index = {id(f): (t, f) for t, f in futures}
        if all(isinstance(f, cf.Future) for _, f in futures):
            for f in cf.as_completed([f for _, f in futures]):
                yield index[id(f)]
            return
        waiting = futures  # futures of another kind (e.g. submitit jobs): poll done()
        while waiting:
            still = []
            for t, f in waiting:
                if f.done():
                    yield t, f
                else:
                    still.append((t, f))
            waiting = still
            if waiting:
                time.sleep(0.5)

    def _renew(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = _local_pool(self.workers)

    def _run_alone(self, t: Task) -> tuple[Task, bool, Any]:
        from concurrent.futures.process import BrokenProcessPool

        if not self._owned:
            return t, False, "TaskError: the worker running this task died"
        with _local_pool(1) as pool:
            try:
                return t, True, pool.submit(t.fn, *t.args).result()
            except BrokenProcessPool:
                return t, False, ("TaskError: the worker process running this task died (killed, out of memory or "
                                  "a crash in native code), also when retried alone")
            except Exception as exc:  # noqa: BLE001
                return t, False, f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------------------------- a run, in tasks

def train_parallel(pool: Dispatcher, ctx, names: Sequence[str]) -> None:
    """Train (or load) the models ``names`` as one task each; their log entries go to ``ctx.model_log``."""
    spec = RunSpec.of(ctx, pool.threads)
    for t, ok, value in pool.map(Task(f"train:{n}", train_task, (spec, n)) for n in names):
        name = t.args[1]
        if ok:
            ctx.model_log[name] = value
        else:  # reported by the claims that need the model
            log.error("training %s failed: %s", name, value)


def run_parallel(pool: Dispatcher, ctx, claims: Sequence, inject: set, cache, comparative: bool, builtin: bool,
                 progress: bool) -> tuple[list[dict], dict | None]:
    """The claims (grouped by :func:`claim_groups`) and the comparative study as tasks; cached records are
    reused as in the serial run.  Returns the records in the order of ``claims`` and the study."""
    from tqdm.auto import tqdm

    spec = RunSpec.of(ctx, pool.threads)
    records: dict[str, dict] = {}
    todo = []
    for c in claims:
        rec = None if c.id in inject else cache.get(c.id)
        if rec is None:
            todo.append(c)
        else:
            records[c.id] = rec
    sent = {c.id: c.id if builtin else portable(c) for c in todo}
    local = [c for c in todo if sent[c.id] is None]  # cannot be sent: run here, after the tasks
    if local:
        log.warning("claims %s cannot be pickled (install cloudpickle); they run in this process",
                    [c.id for c in local])
    groups = {",".join(c.id for c in g): g for g in claim_groups([c for c in todo if sent[c.id] is not None])}
    tasks = [Task(key, claims_with_memos_task, (spec, [sent[c.id] for c in g], sorted(inject & {c.id for c in g})))
             for key, g in groups.items()]
    study = cache.get("comparative") if comparative else None
    memos: dict = {}
    if comparative and study is None:  # Lipschitz bounds the study needs and no claim task computes
        from ._claims_bounds import LIPSCHITZ_MODELS
        from ._context import SPARSE_ZOO

        covered = {c.id.split(".", 1)[1] for c in todo if c.id.split(".", 1)[0] in ("lipschitz", "robustness")
                   and sent[c.id] is not None and c.id.split(".", 1)[1] in LIPSCHITZ_MODELS}
        tasks += [Task(f"lipschitz:{n}", lipschitz_task, (spec, n)) for n in ["ISTA", *SPARSE_ZOO]
                  if n not in covered]
    # the Lipschitz tasks (LipSDP, attacks: most of a run) first, so that the short ones fill the gaps at the end
    tasks.sort(key=lambda t: not t.key.startswith(("lipschitz", "robustness")))
    log.info("running %d task(s) on %s", len(tasks), pool.describe())
    bar = tqdm(total=len(todo), desc="claims", unit="claim", disable=not progress)
    for t, ok, value in pool.map(tasks):
        if t.key.startswith("lipschitz:"):
            if ok:
                memos.update(value)
            continue
        group = groups[t.key]
        if ok:
            memos.update(value["lipschitz"])
            value = value["records"]
        else:
            log.error("task %s failed: %s", t.key, value)
            value = [error_record(c, ctx, value, inject=c.id in inject) for c in group]
        for c, rec in zip(group, value):
            records[c.id] = rec
            if c.id not in inject and rec["status"] != "error":
                cache.put(c.id, {**rec, "cached": True}, [rec["figure"]])
            log.info("claim %s: %s (%.1f s)", c.id, rec["status"], rec["seconds"])
        bar.update(len(group))
    if comparative and study is None:  # last: it reads the Lipschitz bounds of every model
        for _, ok, value in pool.map([Task("comparative", comparative_task, (spec, memos))]):
            if ok:
                study = value
                if not study.get("errors"):
                    cache.put("comparative", study, list(study.get("figures", {}).values()))
            else:
                log.error("the comparative study failed: %s", value)
                study = {"error": value, "errors": 1, "sparse": [], "rpca": [], "figures": {}}
    for c in local:
        records[c.id] = execute_claim(c, ctx, inject=c.id in inject)
        bar.update(1)
    bar.close()
    return [records[c.id] for c in claims], study
