"""The verification suite: records, schema, cache, failure injection, and the command line."""

import json

import pytest

import unfoldtheory as ut
from unfoldtheory import cli
from unfoldtheory.suite import Claim, Evidence, judge

pytestmark = pytest.mark.usefixtures("single_torch_thread")

FAST = ["contraction.*", "pep.gd_closed_form", "lipschitz.ISTA", "lipschitz.HyperLISTA", "robustness.ISTA"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    cache = tmp_path_factory.mktemp("cache")
    return ut.suite.run("smoke", out, only=FAST, cache_dir=cache, comparative=False, progress=False), out, cache


def _claim(check, relation="<=", **kw):
    return Claim(id="custom.claim", title="a custom claim", reference="test", topic="custom", relation=relation,
                 check=check, **kw)


def test_smoke_run_writes_a_valid_report(smoke_run):
    results, out, _ = smoke_run
    data = json.loads((out / "results.json").read_text())
    ut.suite.validate_results(data)
    assert data["summary"]["total"] == len(data["claims"]) >= 9
    assert results.ok and results.exit_code == 0
    statuses = {r["id"]: r["status"] for r in data["claims"]}
    assert statuses["lipschitz.HyperLISTA"] == "not applicable"
    findings = {r["id"] for r in data["claims"] if r["finding"]}
    assert findings == {i for i in statuses if i.endswith("_is_contraction")} != set()
    assert all(s in ("holds", "not applicable") for i, s in statuses.items() if i not in findings), statuses
    assert all(statuses[i] in ("holds", "violated") for i in findings)
    # the soundness of the certificate and the theorem's conclusion are separate claims
    assert statuses["contraction.ISTA"] == "holds"
    for r in data["claims"]:  # only a certificate is certified; measured values never are
        b = r["bound"]
        if b is not None and b["certified"]:
            assert b["side"] in ("upper", "lower") and b["method"] != "value"
        if b is not None and b["side"] == "measured":
            assert not b["certified"]
    report = (out / "report.md").read_text()
    assert "## Summary" in report and "| # | claim |" in report
    for r in data["claims"]:
        assert r["id"] in report
        if r["figure"]:
            assert (out / r["figure"]).stat().st_size > 1000


def test_not_applicable_claim_never_holds(tmp_path):
    def check(ctx):
        return Evidence(bound=2.0, empirical=1.0, assumptions={"step < 2/L": False, "noiseless": True})

    res = ut.suite.run("smoke", tmp_path, claims=[_claim(check)], cache_dir=tmp_path, comparative=False,
                       progress=False)
    rec = res.records[0]
    assert rec["status"] == "not applicable" and rec["holds"] is None
    assert rec["failed_assumptions"] == ["step < 2/L"] and "step < 2/L" in rec["reason"]
    assert res.exit_code == 0


def test_injected_wrong_bound_is_reported_and_fails_the_exit_status(tmp_path):
    code = cli.main(["verify", "--profile", "smoke", "--only", "contraction.fixed_point", "pep.gd_closed_form",
                     "--inject-failure", "contraction.fixed_point", "--out", str(tmp_path), "--cache",
                     str(tmp_path / "cache"), "--no-comparative", "--no-progress"])
    assert code == 1
    data = json.loads((tmp_path / "results.json").read_text())
    ut.suite.validate_results(data)
    status = {r["id"]: r["status"] for r in data["claims"]}
    assert status == {"contraction.fixed_point": "violated", "pep.gd_closed_form": "holds"}
    assert "**VIOLATED**" in (tmp_path / "report.md").read_text()


def test_a_claim_that_raises_is_reported_and_the_run_goes_on(tmp_path):
    def broken(ctx):
        raise RuntimeError("solver exploded")

    def fine(ctx):
        return Evidence(bound=1.0, empirical=0.5)

    claims = [_claim(broken), Claim(id="custom.fine", title="fine", reference="test", topic="custom",
                                    relation="<=", check=fine)]
    res = ut.suite.run("smoke", tmp_path, claims=claims, cache_dir=tmp_path, comparative=False, progress=False)
    assert [r["status"] for r in res.records] == ["error", "holds"]
    assert res.records[1]["bound"]["certified"] is False  # a plain number is not a certificate
    assert "solver exploded" in res.records[0]["error"] and res.exit_code == 1
    ut.suite.validate_results(json.loads((tmp_path / "results.json").read_text()))


@pytest.mark.parametrize("relation, bound, empirical, status", [
    ("<=", 1.0, 0.9, "holds"), ("<=", 1.0, 1.1, "violated"), (">=", 1.0, 1.1, "holds"), (">=", 1.0, 0.9, "violated"),
    ("approx", 1.0, 1.0 + 1e-7, "holds"), ("approx", 1.0, 1.01, "violated")])
def test_judge_relations(relation, bound, empirical, status):
    claim = _claim(lambda ctx: None, relation=relation, rtol=1e-6 if relation == "approx" else 0.0)
    assert judge(claim, Evidence(bound=bound, empirical=empirical))[0] == status


def test_judge_uncertified_upper_bound_and_failed_check_do_not_hold():
    claim = _claim(lambda ctx: None)
    weak = ut.bounds.Bound(10.0, "upper", False, "lipsdp", reason="LMI check failed")
    assert judge(claim, Evidence(bound=weak, empirical=1.0))[0] == "violated"
    assert judge(claim, Evidence(bound=10.0, empirical=1.0, checks={"ordering": False}))[0] == "violated"
    with pytest.raises(ut.InvalidInputError, match="no bound or no empirical"):
        judge(claim, Evidence(bound=None, empirical=1.0))


def test_vacuous_bounds_never_hold(tmp_path):
    claim = _claim(lambda ctx: None)
    # an upper bound on a loss in [0, 1] that is >= 1 cannot fail
    verdict, holds, _, _ = judge(claim, Evidence(bound=1.23, empirical=0.2, value_range=(0.0, 1.0)))
    assert verdict == "vacuous" and holds is True
    assert judge(claim, Evidence(bound=0.5, empirical=0.2, value_range=(0.0, 1.0)))[0] == "holds"
    # a lower bound (a certified fraction) <= 0 cannot fail either
    lower = _claim(lambda ctx: None, relation=">=")
    assert judge(lower, Evidence(bound=-0.1, empirical=0.6, value_range=(0.0, 1.0)))[0] == "vacuous"
    assert judge(lower, Evidence(bound=0.3, empirical=0.6, value_range=(0.0, 1.0)))[0] == "holds"
    # a Bound that knows it is vacuous, and a violated relation stays violated
    vac = ut.bounds.Bound(3.0, "upper", True, "covering", vacuous=True, vacuous_reason=">= the loss range")
    assert judge(claim, Evidence(bound=vac, empirical=0.5))[0] == "vacuous"
    assert judge(claim, Evidence(bound=1.5, empirical=2.0, value_range=(0.0, 1.0)))[0] == "violated"

    def check(ctx):
        return Evidence(bound=1.23, empirical=0.2, value_range=(0.0, 1.0))

    res = ut.suite.run("smoke", tmp_path, claims=[_claim(check)], cache_dir=tmp_path, comparative=False,
                       progress=False)
    rec = res.records[0]
    assert rec["status"] == "vacuous" and "largest value" in rec["vacuous_reason"] and res.exit_code == 0
    assert res.summary["vacuous"] == 1 and res.summary["holds"] == 0
    ut.suite.validate_results(json.loads((tmp_path / "results.json").read_text()))
    assert "Why vacuous" in (tmp_path / "report.md").read_text()


def test_loose_bounds_are_flagged(tmp_path):
    def check(ctx):
        return Evidence(bound=ut.bounds.Bound(50.0, "upper", True, "test"), empirical=2.0)

    def tolerance(ctx):  # a tolerance is not a bound: it is never graded loose
        return Evidence(bound=1e-7, empirical=1e-16)

    claims = [_claim(check), Claim(id="custom.tol", title="tol", reference="test", topic="custom", relation="<=",
                                   check=tolerance)]
    res = ut.suite.run("smoke", tmp_path, claims=claims, cache_dir=tmp_path, comparative=False, progress=False)
    assert res.records[0]["status"] == "holds" and res.records[0]["loose"] and res.summary["loose"] == 1
    assert res.records[1]["status"] == "holds" and not res.records[1]["loose"]
    assert "(loose)" in (tmp_path / "report.md").read_text()


def test_every_figure_can_be_redrawn_from_results_json(smoke_run):
    from unfoldtheory.suite import _plot

    _, out, _ = smoke_run
    data = json.loads((out / "results.json").read_text())
    with_figures = [r for r in data["claims"] if r["figure"]]
    assert with_figures
    titles = []
    for r in with_figures:
        spec = r["figure_data"]
        assert spec["axes"] and any(line["y"] for ax in spec["axes"] for line in ax["lines"])
        titles += [ax["title"] for ax in spec["axes"] if ax["title"]]
        fig = _plot.redraw(spec)
        assert [a.get_title() for a in fig.axes] == [a["title"] for a in spec["axes"]]
        _plot.pyplot().close(fig)
    assert len(titles) == len(set(titles)), titles  # no two figures share a title


def test_fifteen_curves_get_distinguishable_styles():
    from unfoldtheory.suite import _plot

    styles = _plot.styles(15)
    keys = {(s["color"], s["linestyle"], s["marker"]) for s in styles}
    assert len(keys) == 15 and len({s["marker"] for s in styles}) >= 12


def test_failed_assumption_is_printed_as_a_true_statement():
    from unfoldtheory.suite._report import failed_assumption_text

    assert failed_assumption_text("(2s - 1) mu = 1.717 < 1") == "(2s - 1) mu = 1.717 ≥ 1"
    assert (failed_assumption_text("coherence: (2s - 1) mu = 1.717 < 1 (s < (1 + 1/mu)/2 = 1.374)")
            == "coherence: (2s - 1) mu = 1.717 ≥ 1 (s ≥ (1 + 1/mu)/2 = 1.374)")
    assert failed_assumption_text("gamma_k <= 2/L") == "gamma_k > 2/L"
    assert failed_assumption_text("noiseless data") == "“noiseless data” is false"
    assert failed_assumption_text("lipsdp <= layerwise <= naive") == "“lipsdp <= layerwise <= naive” is false"
    assert failed_assumption_text("certified contraction factor 1.1 < 1") == "certified contraction factor 1.1 ≥ 1"


def test_old_results_fail_validation_with_a_clear_message(smoke_run):
    _, out, _ = smoke_run
    data = json.loads((out / "results.json").read_text())
    assert data["schema"] == ut.suite.SCHEMA_ID == "unfoldtheory.verification/4"
    old = json.loads(json.dumps(data))
    old["schema"] = "unfoldtheory.verification/1"
    with pytest.raises(ut.InvalidInputError, match="re-run `unfoldtheory verify`"):
        ut.suite.validate_results(old)
    # the Bound fields are validated: a certified measured value is rejected
    bad = json.loads(json.dumps(data))
    rec = next(r for r in bad["claims"] if r["bound"] is not None)
    rec["bound"].update(side="measured", certified=True)
    with pytest.raises(ut.InvalidInputError, match="schema"):
        ut.suite.validate_results(bad)
    bad = json.loads(json.dumps(data))
    del bad["environment"]["cvxpy"]
    with pytest.raises(ut.InvalidInputError, match="cvxpy"):
        ut.suite.validate_results(bad)


def test_record_cache_key_includes_dependency_versions(tmp_path, monkeypatch):
    from unfoldtheory.suite import _results_cache

    ctx = ut.suite.Context.create("smoke", cache_dir=tmp_path, progress=False)
    cache = _results_cache.ResultCache(tmp_path / "records", ctx)
    key = cache._key("x")
    versions = dict(_results_cache.dependency_versions())
    assert {"torch", "numpy", "scipy", "cvxpy", "clarabel", "scs", "highspy"} <= set(versions)
    monkeypatch.setattr(_results_cache, "dependency_versions", lambda: {**versions, "clarabel": "99.0"})
    assert cache._key("x") != key


def test_schema_rejects_inconsistent_results(smoke_run):
    _, out, _ = smoke_run
    data = json.loads((out / "results.json").read_text())
    bad = json.loads(json.dumps(data))
    bad["claims"][0]["holds"] = not bad["claims"][0]["holds"]
    with pytest.raises(ut.InvalidInputError, match="schema"):
        ut.suite.validate_results(bad)
    bad = json.loads(json.dumps(data))
    bad["summary"]["holds"] += 1
    with pytest.raises(ut.InvalidInputError, match="summary"):
        ut.suite.validate_results(bad)


def test_cache_reuses_models_and_retrains_only_what_changed(tmp_path, monkeypatch):
    from unfoldtheory.suite import _context

    ctx = ut.suite.Context.create("smoke", cache_dir=tmp_path, progress=False)
    a = ctx.model("ALISTA")
    ctx.model("LearnedStepISTA")
    assert not ctx.model_log["ALISTA"]["cached"] and not ctx.model_log["LearnedStepISTA"]["cached"]
    again = ut.suite.Context.create("smoke", cache_dir=tmp_path, progress=False)
    b = again.model("ALISTA")
    assert again.model_log["ALISTA"]["cached"]
    assert all((p - q).abs().max() == 0 for p, q in zip(a.parameters(), b.parameters()))
    cls, kwargs, lr, extra = _context.SPARSE_ZOO["ALISTA"]
    monkeypatch.setitem(_context.SPARSE_ZOO, "ALISTA", (cls, kwargs, lr / 2, extra))
    changed = ut.suite.Context.create("smoke", cache_dir=tmp_path, progress=False)
    changed.model("ALISTA")
    changed.model("LearnedStepISTA")
    assert not changed.model_log["ALISTA"]["cached"]
    assert changed.model_log["LearnedStepISTA"]["cached"]


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ut.InvalidInputError, match="profile"):
        ut.suite.run("huge", tmp_path)
    with pytest.raises(ut.InvalidInputError, match="no claim matches"):
        ut.suite.run("smoke", tmp_path, only=["nothing.*"])
    with pytest.raises(ut.InvalidInputError, match="inject_failure"):
        ut.suite.run("smoke", tmp_path, only=["pep.gd_closed_form"], inject_failure=["lipschitz.LISTA"])


def test_cli_bounds_on_a_trained_model(tmp_path, capsys):
    gen = ut.problems.SparseRecovery.gaussian(10, 20, p=0.1, seed=0)
    net = ut.models.LISTA(gen.A, 3, device="cpu")
    ut.training.train(net, gen, epochs=1, steps_per_epoch=20, batch_size=32, progress=False)
    path = tmp_path / "lista.pt"
    ut.models.save(net, path)
    assert cli.main(["bounds", str(path), "--json", "--time-limit", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["quantity"]: r["bound"] for r in out["bounds"]}
    upper = rows["Lipschitz constant of y -> x_K (lipsdp)"]
    lower = rows["Lipschitz constant of y -> x_K (attained)"]
    assert upper["side"] == "upper" and upper["certified"] and lower["side"] == "lower"
    assert "checks" in upper and "converged" in upper  # the one serializer: nothing dropped
    assert lower["value"] <= upper["value"] <= rows["Lipschitz constant of y -> x_K (layerwise)"]["value"]
    assert rows["Lipschitz constant of y -> x_K (layerwise)"]["value"] <= rows[
        "Lipschitz constant of y -> x_K (naive)"]["value"]
    assert rows["trainable parameters"]["side"] == "measured" and not rows["trainable parameters"]["certified"]
    assert cli.main(["bounds", str(path), "--time-limit", "2"]) == 0
    assert "lipsdp" in capsys.readouterr().out


def test_cli_bounds_refuses_missing_and_corrupt_files(tmp_path, capsys):
    assert cli.main(["bounds", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"not a model at all")
    assert cli.main(["bounds", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not a readable unfoldtheory model file" in err and "weights_only` set to `False`" not in err


def test_cli_bounds_model_without_form(tmp_path, capsys):
    gen = ut.problems.SparseRecovery.gaussian(10, 20, p=0.1, seed=0)
    path = tmp_path / "hyper.pt"
    ut.models.save(ut.models.HyperLISTA(gen.A, 3, device="cpu"), path)
    assert cli.main(["bounds", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["bounds"]
    assert rows[0]["bound"] is None and rows[0]["note"].startswith("not applicable")


def test_cli_help_and_claims(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["verify", "--help"])
    assert e.value.code == 0 and "--profile" in capsys.readouterr().out
    assert cli.main(["claims"]) == 0
    listed = capsys.readouterr().out
    assert all(c.id in listed for c in ut.suite.catalogue())


def test_catalogue_covers_every_paradigm_and_enough_claims():
    claims = ut.suite.catalogue()
    assert len(claims) >= 15
    assert {p for c in claims for p in c.paradigms} >= {"classical", "1", "2", "3", "4"}


def test_claim_records_are_reused_only_for_identical_runs(tmp_path, monkeypatch):
    from unfoldtheory.suite import _results_cache

    only = ["pep.ista_observed", "contraction.fixed_point"]
    kw = dict(only=only, cache_dir=tmp_path / "cache", comparative=False, progress=False)
    first = ut.suite.run("smoke", tmp_path / "a", **kw)
    second = ut.suite.run("smoke", tmp_path / "b", **kw)
    assert not any(r.get("cached") for r in first.records)
    assert all(r["cached"] for r in second.records)
    for a, b in zip(first.records, second.records):
        assert (a["id"], a["status"], a["bound"], a["empirical"]) == (b["id"], b["status"], b["bound"], b["empirical"])
    fig = next(r["figure"] for r in second.records if r["id"] == "pep.ista_observed")
    assert fig and (tmp_path / "b" / fig).stat().st_size > 1000
    assert "reused from an identical earlier run" in (tmp_path / "b" / "report.md").read_text()
    ut.suite.validate_results(json.loads((tmp_path / "b" / "results.json").read_text()))
    fresh = ut.suite.run("smoke", tmp_path / "c", reuse=False, **kw)
    assert not any(r.get("cached") for r in fresh.records)
    monkeypatch.setattr(_results_cache, "source_hash", lambda: "changed-code")
    changed = ut.suite.run("smoke", tmp_path / "d", **kw)
    assert not any(r.get("cached") for r in changed.records)
