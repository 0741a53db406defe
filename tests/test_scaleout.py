"""Scale-out of the verification suite: executors (local processes, Dask), failures, shared caches, sweeps."""

import dataclasses
import importlib.util
import json
import logging
import multiprocessing
import os
import signal

import pytest

import unfoldtheory as ut
from unfoldtheory import cli
from unfoldtheory.suite import Claim, Evidence, _files
from unfoldtheory.suite import _executor as ex

pytestmark = pytest.mark.usefixtures("single_torch_thread")

#: The smoke profile with its safety cap far above what its searches need: every value below is fixed by the
#: work budgets (iterations, starts, samples) alone, so it cannot depend on the executor or on the machine's load.
SMOKE = dataclasses.replace(ut.suite.PROFILES["smoke"], time_cap=600.0)
#: Claims with and without training, with a shared memo (lipschitz + robustness of ALISTA), a PEP and a bound.
ONLY = ["contraction.ISTA", "contraction.ALISTA", "pep.gd_closed_form", "lipschitz.ALISTA", "robustness.ALISTA",
        "generalization.sample_convergence_ALISTA"]


def values(results):
    return {r["id"]: (r["status"], r["bound"] and r["bound"]["value"], r["empirical"]) for r in results.records}


# ------------------------------------------------------------------ custom claims (module level: picklable)

def _fine(ctx):
    """A claim that holds."""
    return Evidence(bound=1.0, empirical=0.5)


def _raises(ctx):
    """A claim whose check raises."""
    raise RuntimeError("solver exploded")


def _kills_its_worker(ctx):
    """A claim whose worker process dies (as if killed by the out-of-memory killer)."""
    if multiprocessing.parent_process() is None:
        raise AssertionError("this claim must only run in a worker process")
    os.kill(os.getpid(), signal.SIGKILL)


def _custom(name, check):
    return Claim(id=f"custom.{name}", title=name, reference="test", topic="custom", relation="<=", check=check)


# ------------------------------------------------------------------ tests

@pytest.fixture(scope="module")
def serial_run(tmp_path_factory):
    out, cache = tmp_path_factory.mktemp("serial"), tmp_path_factory.mktemp("serial-cache")
    return ut.suite.run(SMOKE, out, only=ONLY, cache_dir=cache, comparative=False, progress=False, reuse=False)


@pytest.fixture(scope="module")
def cluster():
    """A real Dask cluster of 2 worker processes with one thread each."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None,
                                  silence_logs=logging.ERROR) as c:
        yield c


def test_dask_local_cluster_gives_the_serial_answers(serial_run, cluster, tmp_path):
    import distributed

    # a fresh model cache: the workers train the models themselves, from the seeds in the tasks
    res = ut.suite.run(SMOKE, tmp_path / "dask", only=ONLY, cache_dir=tmp_path / "cache", comparative=False,
                       progress=False, reuse=False, executor=cluster.scheduler_address)
    assert [r["id"] for r in res.records] == [r["id"] for r in serial_run.records]
    assert values(res) == values(serial_run)  # bit for bit: same seeds, same work, one thread
    assert all(r["status"] == "holds" for r in res.records)
    assert not any(m["cached"] for m in res.data["models"].values())
    ut.suite.validate_results(json.loads((tmp_path / "dask" / "results.json").read_text()))
    assert (tmp_path / "dask" / "figures" / "lipschitz_ALISTA.png").stat().st_size > 1000
    with distributed.Client(cluster) as client:  # an executor object; a task that raises is one error record
        custom = ut.suite.run(SMOKE, tmp_path / "custom", claims=[_custom("fine", _fine), _custom("raises", _raises)],
                              cache_dir=tmp_path / "cache", comparative=False, progress=False,
                              executor=client.get_executor())
    assert [r["status"] for r in custom.records] == ["holds", "error"]
    assert "solver exploded" in custom.records[1]["error"]


def test_concurrent_workers_train_a_shared_model_once(cluster, tmp_path):
    import distributed

    spec = ex.RunSpec(SMOKE, str(tmp_path), "cpu", None, 1)
    with distributed.Client(cluster) as client, ex.Dispatcher(client.get_executor(pure=False)) as pool:
        logs = [v for _, ok, v in pool.map([ex.Task(f"t{i}", ex.train_task, (spec, "LISTA")) for i in range(3)])
                if ok]
    assert len(logs) == 3 and sorted(m["cached"] for m in logs) == [False, True, True]
    assert len({m["path"] for m in logs}) == 1
    assert [p.name for p in tmp_path.iterdir()] == [logs[0]["path"].rsplit("/", 1)[1]]  # no tmp or lock left


def test_local_workers_survive_a_killed_worker_and_a_raising_task(serial_run, tmp_path):
    cache = serial_run.data["models"]["ALISTA"]["path"].rsplit("/", 1)[0]
    cheap = ["contraction.ISTA", "contraction.ALISTA", "pep.gd_closed_form"]  # no time cap: deterministic
    builtin = ut.suite.select(ut.suite.catalogue(), cheap)  # closures: sent with cloudpickle
    custom = [_custom("fine", _fine), _custom("raises", _raises), _custom("killer", _kills_its_worker)]
    res = ut.suite.run(SMOKE, tmp_path, claims=builtin + custom, cache_dir=cache, comparative=False,
                       progress=False, reuse=False, executor=2, inject_failure=["contraction.ISTA"])
    status = {r["id"]: r["status"] for r in res.records}
    assert status == {"contraction.ISTA": "violated", "contraction.ALISTA": "holds", "pep.gd_closed_form": "holds",
                      "custom.fine": "holds", "custom.raises": "error", "custom.killer": "error"}
    got, want = values(res), values(serial_run)
    assert all(got[k] == want[k] for k in ["contraction.ALISTA", "pep.gd_closed_form"])  # nothing else lost
    errors = {r["id"]: r["error"] for r in res.records}
    assert "solver exploded" in errors["custom.raises"] and "died" in errors["custom.killer"]
    assert all(m["cached"] for m in res.data["models"].values()) and res.exit_code == 1
    ut.suite.validate_results(json.loads((tmp_path / "results.json").read_text()))


def test_file_lock_excludes_and_breaks_stale_locks(tmp_path):
    target = tmp_path / "model.pt"
    with _files.file_lock(target) as taken:
        assert taken
        with _files.file_lock(target, wait=0.3, poll=0.05) as again:  # held: waits out its cap, then goes on
            assert not again
    assert not (tmp_path / "model.pt.lock").exists()
    dead = multiprocessing.get_context("spawn").Process(target=os.getpid)
    dead.start()
    dead.join()
    (tmp_path / "model.pt.lock").write_text(json.dumps({"host": os.uname().nodename, "pid": dead.pid}))
    with _files.file_lock(target, wait=5.0) as taken:
        assert taken  # the dead holder's lock was broken at once
    _files.atomic_write_text(target, "x")
    assert target.read_text() == "x" and [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_executor_argument_is_checked(tmp_path):
    for bad, match in [(0, ">= 1"), ("everywhere", "neither"), (object(), "submit"), (True, "executor")]:
        with pytest.raises(ut.InvalidInputError, match=match):
            ut.suite.run("smoke", tmp_path, only=["pep.gd_closed_form"], executor=bad)
    assert ex.Dispatcher(1).serial and ex.Dispatcher(None).serial and not ex.Dispatcher(2).serial
    if importlib.util.find_spec("distributed") is not None:  # nothing listens on port 1
        import dask

        with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), \
                pytest.raises(ut.InvalidInputError, match="could not connect to the Dask scheduler"):
            ut.suite.run("smoke", tmp_path, only=["pep.gd_closed_form"], executor="tcp://127.0.0.1:1")
    assert ex.default_workers() >= 1


def test_default_workers_honours_the_environment(monkeypatch):
    monkeypatch.delenv("UNFOLDTHEORY_WORKERS", raising=False)
    assert ex.default_workers() == min(len(os.sched_getaffinity(0)), ex.MAX_DEFAULT_WORKERS)
    monkeypatch.setenv("UNFOLDTHEORY_WORKERS", "3")
    assert ex.default_workers() == 3
    monkeypatch.setenv("UNFOLDTHEORY_WORKERS", "many")
    with pytest.raises(ut.InvalidInputError, match="UNFOLDTHEORY_WORKERS"):
        ex.default_workers()


def _sweep_and_resume(tmp_path, layers, seeds, first, executor, profile=SMOKE):
    kw = {"profile": profile, "only": ["lipschitz.ISTA"], "out": tmp_path / "sweep", "cache_dir": tmp_path / "cache",
          "progress": False, "executor": executor}
    grid = {"layers": layers, "seed": seeds}
    total = len(layers) * len(seeds)
    part = ut.suite.sweep(grid, max_tasks=first, **kw)  # interrupted after `first` tasks
    assert (part.computed, part.reused, part.remaining) == (first, 0, total - first)
    done = {p: p.stat().st_mtime_ns for p in (tmp_path / "sweep" / "tasks").rglob("lipschitz.ISTA.json")}
    assert len(done) == first
    full = ut.suite.sweep(grid, **kw)
    assert (full.computed, full.reused, full.remaining) == (total - first, first, 0)  # nothing redone
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())
    rows = full.rows
    assert len(rows) == total and {(r["layers"], r["seed"]) for r in rows} == {(k, s) for k in layers for s in seeds}
    assert all(r["status"] == "holds" and r["bound"] >= r["empirical"] > 0 for r in rows)
    table = (tmp_path / "sweep" / "sweep.csv").read_text().splitlines()
    assert table[0].startswith("layers,seed,claim,") and len(table) == total + 1
    fig = tmp_path / "sweep" / "figures" / "sweep_lipschitz.ISTA_layers.png"
    assert full.figures == [fig] and fig.stat().st_size > 1000
    again = ut.suite.sweep(grid, **kw)
    assert (again.computed, again.reused) == (0, total)
    return full


def test_sweep_is_resumable_small(tmp_path):
    _sweep_and_resume(tmp_path, [2, 4], [0, 1], first=1, executor=None, profile="smoke")


@pytest.mark.slow
def test_sweep_layers_by_seeds_resumes_on_local_workers(tmp_path):
    full = _sweep_and_resume(tmp_path, [2, 4, 8], [0, 1, 2], first=4, executor=2)
    serial = ut.suite.sweep({"layers": [2, 4, 8], "seed": [0, 1, 2]}, SMOKE, only=["lipschitz.ISTA"],
                            out=tmp_path / "serial", cache_dir=tmp_path / "cache", progress=False, figures=False)
    key = ("layers", "seed", "claim", "status", "bound", "empirical")
    assert [tuple(r[k] for k in key) for r in serial.rows] == [tuple(r[k] for k in key) for r in full.rows]


def test_sweep_refuses_bad_grids(tmp_path):
    for grid, match in [({}, "non-empty"), ({"depth": [2]}, "not a profile field"), ({"layers": []}, "no values"),
                        ({"layers": [2.5]}, "cannot use")]:
        with pytest.raises(ut.InvalidInputError, match=match):
            ut.suite.sweep(grid, "smoke", out=tmp_path, only=["contraction.ISTA"])


def test_cli_sweep_and_workers_options(tmp_path, capsys):
    out = tmp_path / "sw"
    args = ["sweep", "--grid", "layers=2,3", "--only", "contraction.ISTA", "--out", str(out), "--cache",
            str(tmp_path / "cache"), "--workers", "1", "--no-progress"]
    assert cli.main(args) == 0
    assert "2 rows (2 tasks run now, 0 finished earlier, 0 left)" in capsys.readouterr().out
    assert cli.main(args) == 0
    assert "0 tasks run now, 2 finished earlier" in capsys.readouterr().out
    assert cli.main(["sweep", "--grid", "layers", "--out", str(out)]) == 2
    assert "FIELD=V1,V2" in capsys.readouterr().err
    assert cli.main(["verify", "--workers", "2", "--scheduler", "tcp://localhost:1", "--out", str(out)]) == 2
    assert "exclude each other" in capsys.readouterr().err


@pytest.mark.slow
def test_comparative_study_on_workers_reuses_the_claims_bounds_and_matches_the_serial_one(tmp_path):
    only = ["lipschitz.ALISTA", "robustness.ALISTA", "pep.gd_closed_form"]
    kw = {"only": only, "cache_dir": tmp_path / "cache", "progress": False, "reuse": False}
    serial = ut.suite.run(SMOKE, tmp_path / "serial", **kw)
    par = ut.suite.run(SMOKE, tmp_path / "par", executor=2, **kw)
    keys = ["model", "nmse_db", "lipschitz_upper", "lipschitz_lower", "attack_ratio", "contraction_factor",
            "matmul_flops", "distance_from_init", "form", "error"]

    def rows(res):  # every column except the wall time per instance
        return [{k: r.get(k) for k in keys} for r in res.data["comparative"]["sparse"] + res.data["comparative"]["rpca"]]

    assert rows(par) == rows(serial)
    assert sum(r.get("lipschitz_upper") is not None for r in rows(par)) >= 10
