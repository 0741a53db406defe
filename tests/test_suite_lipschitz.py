"""The Lipschitz section of the report: the sandwich's entries, their sides and status, the graded gaps and the
soundness checks of the claim (docs/design.md §8)."""

import copy
import dataclasses
import json
import math

import pytest

import unfoldtheory as ut
from unfoldtheory.suite import _claims_bounds, judge
from unfoldtheory.suite._lipschitz_gap import GRADE_THRESHOLDS, grade, grades, soundness_checks
from unfoldtheory.verdicts import Verdict

pytestmark = pytest.mark.usefixtures("single_torch_thread")

#: a profile small enough for the exact constant (LISTA: n K = 12 neurons <= exact_max_neurons)
TINY = dataclasses.replace(ut.suite.PROFILES["smoke"], name="smoke", m=4, n=6, layers=2, test_size=60,
                           train_steps=40, exact_max_neurons=24, exact_node_limit=200, depth_points=2)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lipreport")
    cache = tmp_path_factory.mktemp("cache")
    res = ut.suite.run(TINY, out, only=["lipschitz.LISTA"], cache_dir=cache, comparative=False, progress=False,
                       reuse=False)
    return res, out, cache


def _record(out, claim_id):
    data = json.loads((out / "results.json").read_text())
    return data, next(r for r in data["claims"] if r["id"] == claim_id)


def test_sandwich_has_every_entry_with_its_side_and_status(tiny_run):
    _, out, _ = tiny_run
    data, rec = _record(out, "lipschitz.LISTA")
    ut.suite.validate_results(data)
    assert rec["status"] == "holds", rec
    sw = rec["details"]["sandwich"]
    for name in ("naive", "layerwise", "lipsdp"):
        assert sw[name]["side"] == "upper" and sw[name]["certified"] and sw[name]["scope"] == "global"
    dom = sw["domain_lipsdp"]
    assert dom["side"] == "upper" and dom["certified"] and dom["scope"] == "domain"
    assert dom["method"] == "domain_lipsdp" and "on the domain box" in dom["quantity"]
    assert dom["fixed_neurons"] + dom["uncertain_neurons"] == 12
    if dom["reused_global_certificate"]:   # nothing fixed on the box: the same SDP, the same certificate
        assert dom["value"] == sw["lipsdp"]["value"]
    for name in ("lower_jacobian_search", "lower_attack", "lower_region_search"):
        assert sw[name]["side"] == "lower" and sw[name]["certified"] and sw[name]["scope"] == "global"
    assert sw["domain_lower"]["scope"] == "domain" and sw["domain_lower"]["side"] == "lower"
    # the region search starts from the Jacobian-search witness and only goes up
    assert sw["lower_region_search"]["value"] >= sw["lower_region_search"]["start_value"]
    ex = sw["exact"]
    assert ex["computed"] and ex["side"] == "upper" and ex["lower_end_certified"]
    lo, hi = ex["interval"]
    # the sandwich is consistent: every lower bound below the exact bracket's top, which is below every upper
    lowers = [sw[n]["value"] for n in ("lower_jacobian_search", "lower_attack", "lower_region_search")]
    assert max(lowers) <= hi * (1 + 1e-9)
    assert lo <= min(sw[n]["value"] for n in ("naive", "layerwise", "lipsdp")) * (1 + 1e-9)
    assert dom["value"] <= sw["lipsdp"]["value"] * 1.05
    g = rec["details"]["grades"]
    assert g["global"]["lower"] >= max(lowers) and g["global"]["lower"] >= lo
    assert g["global"]["upper"] <= sw["lipsdp"]["value"]
    assert g["global"]["grade"] in ("tight", "moderate", "loose")
    assert g["domain"]["upper"] <= min(g["global"]["upper"], dom["value"])
    assert rec["empirical"] == pytest.approx(g["global"]["lower"])
    assert all(rec["checks"].values()) and "best lower <= exact upper end" in rec["checks"]
    # the local constants: both ends on balls around test inputs, below the global certificate
    lu, ll = sw["local_lipsdp"], sw["local_lower"]
    assert lu["scope"] == ll["scope"] == "local" and lu["side"] == "upper" and ll["side"] == "lower"
    assert lu["certified"] and ll["certified"] and lu["centres"] == TINY.local_points
    assert 0 <= ll["value"] <= lu["value"] <= sw["lipsdp"]["value"] * 1.05
    # a local certificate above rounding level comes with a witness pair (straddling pairs add the centres'
    # rounding bounds, ~1e-18 here, to the upper end even where the map is constant around the data)
    assert (ll["value"] > 0) == (lu["value"] > 1e-12 * sw["lipsdp"]["value"])
    assert g["local"]["lower"] == ll["value"] and g["local"]["upper"] == min(lu["value"], g["global"]["upper"])
    assert g["global"]["lower"] >= ll["value"]  # a local witness pair is a pair of inputs
    assert "best local lower <= every certified upper bound on the balls" in rec["checks"]


def test_report_has_the_lipschitz_table_and_the_figure(tiny_run):
    _, out, _ = tiny_run
    text = (out / "report.md").read_text()
    assert "## Lipschitz sandwich" in text
    assert "domain LipSDP" in text and "a domain constant, never a global one" in text
    assert "tight ≤ 1.5, moderate ≤ 3, loose > 3" in text
    _, rec = _record(out, "lipschitz.LISTA")
    assert rec["figure"] and (out / rec["figure"]).exists()
    labels = [line["label"] for ax in rec["figure_data"]["axes"] for line in ax["lines"]]
    assert any(lab.startswith("exact bracket") for lab in labels)
    assert rec["figure_data"]["axes"][1]["xscale"] == "log"


def test_exact_above_the_size_limit_is_not_computed_not_an_error(tmp_path):
    prof = dataclasses.replace(TINY, exact_max_neurons=4)
    ut.suite.run(prof, tmp_path, only=["lipschitz.ISTA"], cache_dir=tmp_path / "cache", comparative=False,
                 progress=False, reuse=False)
    data, rec = _record(tmp_path, "lipschitz.ISTA")
    ut.suite.validate_results(data)
    assert rec["status"] == "holds"
    ex = rec["details"]["sandwich"]["exact"]
    assert not ex["computed"] and ex["value"] is None and not ex["certified"]
    assert "not computed (too large)" in ex["reason"] and "exact_max_neurons = 4" in ex["reason"]
    text = (tmp_path / "report.md").read_text()
    assert "not computed (too large)" in text
    assert f"exact_max_neurons = 4): ISTA ({ex['neurons']} neurons)" in text and ex["neurons"] > 4


def test_grade_thresholds():
    assert [t for _, t in GRADE_THRESHOLDS] == [1.5, 3.0]
    assert grade(1.5, 1.0)["grade"] == "tight"
    assert grade(1.5 * (1 + 1e-12), 1.0)["grade"] == "moderate"
    assert grade(3.0, 1.0)["grade"] == "moderate"
    assert grade(3.0 * (1 + 1e-12), 1.0)["grade"] == "loose"
    assert grade(2.0, 2.0) == {"upper": 2.0, "lower": 2.0, "ratio": 1.0, "grade": "tight"}
    assert grade(1.0, 0.0)["ratio"] == math.inf and grade(1.0, 0.0)["grade"] == "loose"
    assert grade(math.inf, 1.0)["grade"] == "loose"
    assert grade(0.0, 0.0)["grade"] == "tight"   # a constant map: both ends 0


def _e(value, side, scope="global", certified=True, **kw):
    return {"computed": True, "value": value, "side": side, "certified": certified, "converged": True,
            "method": "m", "scope": scope, "interval": None, "reason": "" if certified else "no", **kw}


def _sandwich():
    return {"naive": _e(10.0, "upper"), "lipsdp": _e(4.0, "upper"), "domain_lipsdp": _e(3.0, "upper", "domain"),
            "lower_jacobian_search": _e(2.0, "lower", in_domain=False),
            "lower_region_search": _e(2.5, "lower", in_domain=False),
            "domain_lower": _e(1.0, "lower", "domain", in_domain=True),
            "exact": _e(3.9, "upper", certified=False, interval=[2.6, 3.9], lower_end_certified=True,
                        in_domain=False),
            "local_lipsdp": _e(1.5, "upper", "local"), "local_lower": _e(1.2, "lower", "local", in_domain=False)}


def test_grades_pick_the_right_ends_per_scope():
    g = grades(_sandwich())
    # global: the smallest certified global upper (LipSDP; the exact end is not certified), the largest lower
    # (the exact witness region 2.6 beats the region search 2.5)
    assert (g["global"]["upper"], g["global"]["lower"], g["global"]["upper_from"], g["global"]["lower_from"]) == (
        4.0, 2.6, "lipsdp", "exact")
    assert g["global"]["grade"] == "moderate" and g["global"]["ratio"] == pytest.approx(4.0 / 2.6)
    # domain: the domain certificate counts, and only witnesses inside the box
    assert (g["domain"]["upper"], g["domain"]["lower"], g["domain"]["grade"]) == (3.0, 1.0, "moderate")
    sw = _sandwich()
    sw["domain_lower"]["value"] = 2.5
    assert grades(sw)["domain"]["grade"] == "tight"
    sw["lower_region_search"]["in_domain"] = True
    sw["lower_region_search"]["value"] = 2.9
    assert grades(sw)["domain"]["lower"] == 2.9
    # an uncertified lower bound never counts
    sw["lower_jacobian_search"].update(value=3.5, certified=False)
    assert grades(sw)["global"]["lower"] == 2.9
    # local: the local certificate and only the local witnesses; a global upper bounds it too
    g = grades(_sandwich())
    assert (g["local"]["upper"], g["local"]["lower"], g["local"]["grade"]) == (1.5, 1.2, "tight")
    sw = _sandwich()
    sw["local_lipsdp"]["value"] = 5.0
    assert grades(sw)["local"]["upper"] == 4.0 and grades(sw)["local"]["upper_from"] == "lipsdp"
    assert grades(sw)["global"]["upper"] == 4.0
    sw["local_lower"]["in_domain"] = True  # a local witness pair inside the data box bounds the domain constant
    assert grades(sw)["domain"]["lower"] == 1.2


@pytest.mark.parametrize("tamper, failing", [
    (lambda s: s["lower_region_search"].update(value=4.5), "best lower <= every certified global upper bound"),
    (lambda s: s["exact"].update(interval=[4.2, 4.3]), "exact lower end <= every certified global upper bound"),
    (lambda s: s["exact"].update(interval=[1.0, 2.2]), "best lower <= exact upper end"),
    (lambda s: s["domain_lower"].update(value=3.2), "best domain lower <= every certified upper bound on the domain"),
    (lambda s: s["domain_lipsdp"].update(value=4.3), "domain LipSDP <= global LipSDP (1 + 0.05)"),
    (lambda s: s["local_lower"].update(value=1.6), "best local lower <= every certified upper bound on the balls"),
    (lambda s: s["local_lipsdp"].update(value=4.3), "local LipSDP <= global LipSDP (1 + 0.05)"),
])
def test_soundness_checks_fail_on_an_inconsistent_sandwich(tamper, failing):
    assert all(soundness_checks(_sandwich()).values())
    sw = _sandwich()
    tamper(sw)
    checks = soundness_checks(sw)
    assert checks[failing] is False


def test_an_inconsistent_sandwich_makes_the_claim_violated(tiny_run):
    """The claim grades and checks the entries it is given: a lower bound above a certified upper bound (as an
    unsound certificate would produce) turns the verdict into 'violated'."""
    ctx = ut.suite.Context.create(TINY, cache_dir=tiny_run[2], progress=False)
    claim = next(c for c in ut.suite.catalogue() if c.id == "lipschitz.LISTA")
    assert judge(claim, claim.check(ctx))[0] == Verdict.HOLDS
    good = ctx._memo["lipschitz_sandwich:LISTA"]
    bad = copy.deepcopy(good)
    bad["sandwich"]["lower_region_search"]["value"] = 2.0 * bad["sandwich"]["naive"]["value"]
    ctx._memo["lipschitz_sandwich:LISTA"] = bad
    ev = claim.check(ctx)
    status, holds, _, _ = judge(claim, ev)
    assert status == Verdict.VIOLATED and holds is False
    assert ev.checks["best lower <= every certified global upper bound"] is False
    bad = copy.deepcopy(good)
    bad["sandwich"]["domain_lipsdp"]["value"] = 2.0 * bad["sandwich"]["lipsdp"]["value"]
    ctx._memo["lipschitz_sandwich:LISTA"] = bad
    assert judge(claim, claim.check(ctx))[0] == Verdict.VIOLATED


def test_schema_rejects_a_sandwich_entry_without_its_status(tiny_run):
    _, out, _ = tiny_run
    data, _ = _record(out, "lipschitz.LISTA")
    bad = copy.deepcopy(data)
    rec = next(r for r in bad["claims"] if r["id"] == "lipschitz.LISTA")
    del rec["details"]["sandwich"]["lipsdp"]["certified"]
    with pytest.raises(ut.InvalidInputError, match="schema"):
        ut.suite.validate_results(bad)
    bad = copy.deepcopy(data)
    rec = next(r for r in bad["claims"] if r["id"] == "lipschitz.LISTA")
    rec["details"]["sandwich"]["exact"].update(certified=False, reason="")
    with pytest.raises(ut.InvalidInputError, match="schema"):
        ut.suite.validate_results(bad)
    bad = copy.deepcopy(data)
    rec = next(r for r in bad["claims"] if r["id"] == "lipschitz.LISTA")
    rec["details"]["grades"]["global"]["grade"] = "great"
    with pytest.raises(ut.InvalidInputError, match="schema"):
        ut.suite.validate_results(bad)


def test_sandwich_memo_is_separate_from_the_bounds_the_comparative_study_reads():
    # the comparative study and the robustness claims read lipschitz_bounds only; the sandwich (domain
    # certificate, region search, exact) is computed for the Lipschitz claims alone
    assert "lipschitz_sandwich" not in _claims_bounds.lipschitz_bounds.__code__.co_names


def test_domain_upper_bound_takes_the_polish_budget():
    """The profile's ``polish_steps`` reaches the domain certificate (a work budget, validated by name)."""
    import numpy as np

    A = np.random.default_rng(0).standard_normal((4, 6)) / 2
    import torch

    form = ut.models.ISTA(A, 2, lam=0.1, dtype=torch.float64).form()
    box = (-np.ones(4), np.ones(4))
    with pytest.raises(ut.InvalidInputError, match="polish_steps"):
        ut.lipschitz.domain_upper_bound(form, box, polish_steps=-1)
    b0 = ut.lipschitz.domain_upper_bound(form, box, polish_steps=0)
    b1 = ut.lipschitz.domain_upper_bound(form, box, polish_steps=50)
    assert b0.certified and b1.certified
    assert "polish" not in b0.checks and b1.checks["polish"]["newton_steps"] <= 50
    assert b1.value <= b0.value * (1 + 1e-9)
    assert b1.value <= ut.lipschitz.upper_bound(form, "naive").value


def test_sandwich_section_names_each_entry_scope():
    from unfoldtheory.suite._report import sandwich_section

    sw = _sandwich()
    lines = sandwich_section({"sandwich": sw, "grades": grades(sw), "domain": "box", "local": "balls"})
    scope = {ln.split("|")[1].strip(): ln.split("|")[2].strip() for ln in lines if ln.startswith("| ")
             and not ln.startswith("| entry")}
    assert scope["lipsdp"] == scope["lower_region_search"] == "global"
    assert scope["domain_lipsdp"] == scope["domain_lower"] == "domain (data box)"
    assert scope["local_lipsdp"] == scope["local_lower"] == "data neighbourhood"
