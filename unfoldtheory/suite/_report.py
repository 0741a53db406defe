"""``report.md``: a summary table, the comparative study, then one section per claim with its figure."""

from __future__ import annotations

import re
from pathlib import Path

from ..verdicts import Verdict
from ._core import LOOSE_FACTOR

MARK = {Verdict.HOLDS.value: "holds", Verdict.VIOLATED.value: "**VIOLATED**",
        Verdict.VACUOUS.value: "vacuous (trivially true)", Verdict.NOT_APPLICABLE.value: "not applicable",
        Verdict.ERROR.value: "**ERROR**"}

#: The negation of each relational operator, to print a failed assumption as the true statement it is.
_NEGATE = {"<=": ">", ">=": "<", "≤": ">", "≥": "<", "<": "≥", ">": "≤", "==": "≠", "!=": "=", "≠": "="}
_OPS = re.compile(r"(<=|>=|==|!=|≤|≥|≠|<|>)")


def _mark(r: dict) -> str:
    if r["status"] == Verdict.VIOLATED and r.get("finding"):
        return "**does not hold** (finding on the trained model)"
    return MARK[r["status"]]


def failed_assumption_text(name: str) -> str:
    """A failed assumption or check as the true statement it is.

    One relation at the top level (restatements in parentheses allowed) is negated together with its
    restatements (``"(2s - 1) mu = 1.7 < 1 (s < 1.4)"`` becomes ``"(2s - 1) mu = 1.7 ≥ 1 (s ≥ 1.4)"``); a
    statement without a relation, or a chain such as ``a <= b <= c`` (whose negation is not a chain), is
    quoted and marked false."""
    parts = _OPS.split(name)
    depth, top = 0, 0
    for i, part in enumerate(parts):
        if i % 2:  # odd items are the operators
            top += depth == 0
        else:
            depth += part.count("(") - part.count(")")
    if top != 1:
        return f"“{name}” is false"
    return "".join(_NEGATE[p] if i % 2 else p for i, p in enumerate(parts))


def _cell(text: str) -> str:
    """A table cell: pipes escaped, line breaks removed (never cut)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _num(x, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    ax = abs(x)
    if ax != 0 and (ax < 1e-3 or ax >= 1e5):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def _bound_cell(b: dict | None) -> str:
    if b is None:
        return "-"
    if b["side"] == "measured":
        kind = "measured"
    elif b["certified"]:
        kind = "certified"
    else:
        kind = "uncertified"
    conv = "" if b.get("converged", True) else ", NOT converged"
    return f"{_num(b['value'])} ({b['side']}, {b['method']}, {kind}{conv})"


def _tightness_cell(r: dict) -> str:
    t = r["tightness"]
    if t is None:
        return "-"
    text = _num(t, 3)
    return f"**{text} (loose)**" if r.get("loose") else text


def summary_table(data: dict) -> list[str]:
    """The summary table of every claim (markdown lines)."""
    rel = {"<=": "empirical ≤ bound", ">=": "empirical ≥ bound", "approx": "empirical ≈ bound"}
    lines = ["| # | claim | paradigm | bound | empirical | relation | verdict | tightness | time [s] |",
             "|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(data["claims"], 1):
        na = r["status"] in (Verdict.NOT_APPLICABLE, Verdict.ERROR)  # numbers without a valid theorem: not shown
        verdict = _mark(r)
        if r["status"] == Verdict.VACUOUS and r.get("vacuous_reason"):
            verdict += f": {r['vacuous_reason']}"
        lines.append(f"| {i} | [`{r['id']}`](#{_anchor(r['id'])}) | {', '.join(r['paradigms']) or '-'} | "
                     f"{'-' if na else _cell(_bound_cell(r['bound']))} | {'-' if na else _num(r['empirical'])} | "
                     f"{rel[r['relation']]} | {_cell(verdict)} | {_tightness_cell(r)} | {r['seconds']:.1f}"
                     f"{' (cached)' if r.get('cached') else ''} |")
    return lines


def _anchor(claim_id: str) -> str:
    return "claim-" + claim_id.lower().replace(".", "-").replace("_", "-")


def _comparative(study: dict | None) -> list[str]:
    if not study:
        return []
    out = ["## Comparative study of the four paradigms", "",
           ("Accuracy (NMSE of the last layer against the ground truth), complexity (trainable parameters, "
           "matrix-product FLOPs of one inference, wall time per instance in a batch, float32 CPU), robustness "
           "(certified LipSDP upper bound, best certified lower bound, and the ratio a PGD attack achieves) and "
           "interpretability (relative distance of the learned parameters from the classical algorithm they "
           "were initialised as; whether the network has an analysis form, and its per-layer contraction "
           "factor, a certificate when < 1)."), ""]
    if study.get("error"):
        out += [f"**The study failed:** `{study['error']}`", ""]
    head = ("| model | paradigm | params | FLOPs | µs / instance | NMSE [dB] | Lip. upper | Lip. lower | attack | "
            "dist. from init | form | contraction |")
    out += ["### Sparse recovery", "", head, "|" + "---|" * 12]
    for r in study.get("sparse", []):
        if "error" in r:
            out.append(f"| {r['model']} | {r['paradigm']} | **error**: {r['error']} |" + " |" * 9)
            continue
        out.append(f"| {r['model']} | {r['paradigm']} | {_num(r['trainable_parameters'])} | "
                   f"{_num(r.get('matmul_flops'))} | {r['seconds_per_instance'] * 1e6:.2f} | {r['nmse_db']:.2f} | "
                   f"{_num(r.get('lipschitz_upper'))} | {_num(r.get('lipschitz_lower'))} | "
                   f"{_num(r.get('attack_ratio'))} | {_num(r.get('distance_from_init'), 3)} | "
                   f"{r.get('form', '-')} | {_num(r.get('contraction_factor'), 3)} |")
    no_form = [r for r in study.get("sparse", []) if r.get("form_reason")]
    if no_form:
        out += ["", "Models without an analysis form (no Lipschitz certificate):", ""]
        out += [f"- {r['model']}: {r['form_reason']}" for r in no_form]
    if study.get("figures", {}).get("sparse"):
        out += ["", f"![per-layer NMSE]({study['figures']['sparse']})"]
    out += ["", "### Robust PCA", "", "| model | paradigm | params | µs / instance | NMSE [dB] | dist. from init |",
            "|---|---|---|---|---|---|"]
    for r in study.get("rpca", []):
        if "error" in r:
            out.append(f"| {r['model']} | {r['paradigm']} | **error**: {r['error']} | | | |")
            continue
        out.append(f"| {r['model']} | {r['paradigm']} | {_num(r['trainable_parameters'])} | "
                   f"{r['seconds_per_instance'] * 1e6:.2f} | {r['nmse_db']:.2f} | {_num(r['distance_from_init'], 3)} |")
    if any(r.get("form_reason") for r in study.get("rpca", [])):
        out += ["", *[f"- {r['model']} has no analysis form: {r['form_reason']}" for r in study["rpca"]
                      if r.get("form_reason")]]
    if study.get("figures", {}).get("rpca"):
        out += ["", f"![RPCA per-layer NMSE]({study['figures']['rpca']})"]
    return out + [""]


def _value_text(v, depth: int = 0) -> str:
    """A detail value formatted for reading (numbers rounded, lists and mappings spelled out, never cut)."""
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_value_text(x, depth + 1)}" for k, x in v.items()) if depth < 2 else "(see results.json)"
    if isinstance(v, list):
        return "[" + ", ".join(_value_text(x, depth + 1) for x in v) + "]"
    if isinstance(v, str):
        return v
    return _num(v)


#: Detail keys rendered by their own table (the Lipschitz sandwich), not as generic detail rows.
_OWN_TABLE = ("sandwich", "grades")


def _entry_value(e: dict) -> str:
    if not e.get("computed", True):
        return "not computed"
    if e.get("interval") and e["method"].startswith("exact"):
        lo, hi = e["interval"]
        return f"[{_num(lo)}, {_num(hi)}]"
    return _num(e["value"])


def _entry_status(e: dict) -> str:
    if not e.get("computed", True):
        return e["reason"]
    kind = "certified" if e["certified"] else "not certified: " + e["reason"]
    if e.get("start_value") is not None:
        kind += f"; started from the certified region of the start witness, value {_num(e['start_value'])}"
    if e.get("reused_global_certificate"):
        kind += ("; the box fixes no neuron beyond those pinned everywhere, so the global LipSDP certificate is "
                 "the domain one")
    elif e.get("fixed_neurons") is not None and e.get("uncertain_neurons") is not None:
        kind += f"; {e['fixed_neurons']} of {e['fixed_neurons'] + e['uncertain_neurons']} neurons fixed on the box"
    if e["method"].startswith("exact") and e.get("interval"):
        kind += ("; lower end certified (witness region)" if e.get("lower_end_certified")
                 else "; lower end not certified")
    return kind + ("" if e.get("converged", True) else ", NOT converged (bracket at the work budget)")


def _gap_text(g: dict) -> str:
    ratio = "∞" if g["ratio"] in ("inf", float("inf")) else _num(g["ratio"], 3)
    src = f"; upper from {g.get('upper_from') or '-'}, lower from {g.get('lower_source') or '-'}"
    return f"{ratio} ({g['grade']}{src})"


def grade_legend() -> str:
    """The grading rule of the Lipschitz gap, as the report states it."""
    from ._lipschitz_gap import GRADE_THRESHOLDS

    (t_name, t), (m_name, m) = GRADE_THRESHOLDS
    return (f"gap = best certified upper / best certified lower bound; {t_name} ≤ {t:g}, {m_name} ≤ {m:g}, "
            f"loose > {m:g}")


def sandwich_section(details: dict) -> list[str]:
    """One Lipschitz claim's sandwich: every entry with its scope, side and status, then the graded gaps."""
    sw, graded = details.get("sandwich"), details.get("grades")
    if not sw:
        return []
    from ._lipschitz_gap import ENTRIES

    out = ["| entry | scope | side | value | status |", "|---|---|---|---|---|"]
    for name in [n for n in ENTRIES if n in sw] + [n for n in sw if n not in ENTRIES]:
        e = sw[name]
        scope = {"domain": "domain (data box)", "local": "data neighbourhood"}.get(e["scope"], "global")
        out.append(f"| {name} | {scope} | {e['side']} | {_entry_value(e)} | {_cell(_entry_status(e))} |")
    if graded:
        out += ["", f"Gap ({grade_legend()}): global **{_cell(_gap_text(graded['global']))}**; on the domain "
                f"({_cell(details.get('domain', 'data box'))}, a domain constant, not the global one) "
                f"**{_cell(_gap_text(graded['domain']))}**" + (
                    f"; local ({_cell(details['local'])}, pairs within a ball and across two) "
                    f"**{_cell(_gap_text(graded['local']))}**" if graded.get("local") and details.get("local")
                    else "") + "."]
    return out + [""]


def local_cell(sw: dict, g: dict) -> str:
    """``[lower, upper] | ratio grade`` of the local constants (two table cells), ``- | -`` when absent."""
    up, lo, gl = sw.get("local_lipsdp"), sw.get("local_lower"), g.get("local")
    if not up or not up["computed"] or not gl:
        return "- | -"
    low = _num(lo["value"]) if lo and lo["computed"] else "-"
    return f"[{low}, {_num(up['value'])}] | {_cell(_num(gl['ratio'], 3))} {gl['grade']}"


def lipschitz_table(data: dict) -> list[str]:
    """The report's Lipschitz section: one row per model with every bound of its sandwich and the graded gaps."""
    rows = [r for r in data["claims"] if r["topic"] == "lipschitz" and r["details"].get("sandwich")]
    if not rows:
        return []
    out = ["## Lipschitz sandwich", "",
           ("Per model, the l2 Lipschitz constant of y -> x_K: certified upper bounds (naive, LipSDP-Layer, "
            "LipSDP-Neuron; *domain LipSDP* is certified on the box of the test inputs only, a domain constant, "
            "never a global one), the exact constant where the net is small enough (a bracket [certified "
            "witness, upper end] when the work budget ends first), and the best certified lower bound with its "
            f"source. Grades: {grade_legend()}; the domain gap uses only lower bounds whose witness lies in the "
            "box. *Local* is the constant on the union of small l2 balls around test inputs (their "
            "r-neighbourhood: pairs within a ball and across two; robustness to perturbations of that size, "
            "docs/theory/robustness.md §3): its certified upper end and its attained lower end, then its gap."), "",
           "| model | naive | layerwise | LipSDP | domain LipSDP | exact | best lower (source) | global gap | "
           "domain gap | local [lower, upper] | local gap |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sw, g = r["details"]["sandwich"], r["details"]["grades"]

        def cell(name, sw=sw):
            e = sw.get(name)
            if e is None:
                return "-"
            if not e["computed"]:
                return "not computed (too large)" if "too large" in e["reason"] else "not computed"
            return _entry_value(e) + ("" if e["certified"] or e["side"] != "upper" else " (uncertified)")

        model = r["id"].split(".", 1)[1]
        low = g["global"]
        out.append(f"| [{model}](#{_anchor(r['id'])}) | {cell('naive')} | {cell('layerwise')} | {cell('lipsdp')} | "
                   f"{cell('domain_lipsdp')} | {cell('exact')} | {_num(low['lower'])} ({low.get('lower_source') or '-'})"
                   f" | {_cell(_num(low['ratio'], 3))} {low['grade']} | {_cell(_num(g['domain']['ratio'], 3))} "
                   f"{g['domain']['grade']} | {local_cell(sw, g)} |")
    too_large = [r for r in rows if not r["details"]["sandwich"].get("exact", {"computed": True})["computed"]]
    if too_large:
        ex = [r["details"]["sandwich"]["exact"] for r in too_large]
        limits = sorted({e.get("limit") for e in ex if e.get("limit") is not None})
        out += ["", "Exact constant not computed (too large" + (
            f"; the profile's exact_max_neurons = {', '.join(map(str, limits))}" if limits else "") + "): " + ", ".join(
            f"{r['id'].split('.', 1)[1]} ({e['neurons']} neurons)" if e.get("neurons") is not None
            else f"{r['id'].split('.', 1)[1]} ({e['reason']})" for r, e in zip(too_large, ex)) + "."]
    return out + [""]


def _details(d: dict) -> list[str]:
    rows = []
    for k, v in d.items():
        if k in _OWN_TABLE:
            continue
        if isinstance(v, list) and len(v) > 12:
            rows.append(f"| {_cell(k)} | series of {len(v)} values (in results.json) |")
            continue
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            rows.append(f"| {_cell(k)} | {len(v)} entries (in results.json) |")
            continue
        rows.append(f"| {_cell(k)} | {_cell(_value_text(v))} |")
    return (["| detail | value |", "|---|---|"] + rows) if rows else []


def claim_section(r: dict) -> list[str]:
    out = [f'<a id="{_anchor(r["id"])}"></a>', f"### {r['id']}: {r['title']}", "",
           f"*Verdict:* {_mark(r)}  ", f"*Reference:* {r['reference']}  ",
           (f"*Paradigm(s):* {', '.join(r['paradigms']) or '-'}; *models:* {', '.join(r['models']) or '-'}; "
           f"*time:* {r['seconds']:.1f} s on {r['device']}"), ""]
    if r["description"]:
        out += [r["description"], ""]
    if r["error"]:
        out += ["```", r["error"], "```", ""]
    if r["reason"]:
        out += [f"*Why not applicable / notes:* {r['reason']}", ""]
    if r.get("vacuous_reason"):
        out += [(f"*Why vacuous:* {r['vacuous_reason']}: the bound is sound but cannot fail, so it says nothing "
                "about this model."), ""]
    if r.get("loose"):
        out += [f"*Loose:* the bound is {_num(r['tightness'], 3)} times the empirical value (> {LOOSE_FACTOR:g}x).",
                ""]
    if r["bound"] is not None:
        b = r["bound"]
        if b["side"] == "measured":
            kind = "measured, not a certificate"
        else:
            kind = "certified" if b["certified"] else "NOT certified: " + b["reason"]
        extra = (f", solver {b['solver']}" if b.get("solver") else "")
        extra += (f", confidence {_num(b['confidence'])}" if b.get("confidence") is not None else "")
        extra += ("" if b.get("converged", True) else ", NOT converged (stopped by a safety time cap)")
        out.append(f"- bound: **{_num(b['value'])}** (side {b['side']}, method `{b['method']}`, {kind}{extra})")
    if r["empirical"] is not None:
        out.append(f"- empirical: **{_num(r['empirical'])}** ({r['empirical_label']}); relation "
                   f"`empirical {r['relation']} bound`; tightness {_num(r['tightness'], 3)}")
    for name, ok in r["assumptions"].items():
        out.append(f"- assumption holds: {name}" if ok else
                   f"- assumption **fails**: {failed_assumption_text(name)}")
    for name, ok in r["checks"].items():
        out.append(f"- check passes: {name}" if ok else f"- check **fails**: {failed_assumption_text(name)}")
    out.append("")
    out += sandwich_section(r["details"])
    out += _details(r["details"])
    if r["figure"]:
        out += ["", f"![{r['id']}]({r['figure']})"]
    return out + [""]


def render(data: dict) -> str:
    s = data["summary"]
    prof = data["profile"]
    env = data["environment"]
    lines = ["# unfoldtheory verification report", "",
             (f"Profile **{prof['name']}** (sparse recovery m = {prof['m']}, n = {prof['n']}, K = {prof['layers']}, "
             f"p = {prof['p']}, lambda = {prof['lam']}; RPCA {prof['rpca_shape'][0]} x {prof['rpca_shape'][1]}, "
             f"rank {prof['rpca_rank']}), run {data['started']} in {data['seconds']:.0f} s on {env['device']} "
             f"(unfoldtheory {env['unfoldtheory']}, torch {env['torch']}, {env['cpu_count']} CPUs)."), "",
             (f"**{s['total']} claims: {s['holds']} hold, {s['vacuous']} vacuous (sound but trivially true), "
             f"{s['not applicable']} not applicable (a theorem whose assumptions fail on the model), "
             f"{s['violated']} violated ({s.get('violated findings', 0)} of them findings: properties the trained "
             f"models do not have), {s['error']} errors; {s.get('loose', 0)} bounds loose by more than "
             f"{LOOSE_FACTOR:g}x; {s.get('not converged', 0)} stopped by a safety time cap (not converged).**"), "",
             *([(f"{sum(bool(r.get('cached')) for r in data['claims'])} claim records were reused from an "
                "identical earlier run (same profile, device and source code; `--recompute` recomputes them)."), ""]
               if any(r.get("cached") for r in data["claims"]) else []),
             ("Each claim pits a bound of the library (or a theorem of the literature) against an independent "
             "counterpart: an attack, a measurement on test data, a closed form or another solver.  Tightness is "
             "bound / empirical for `<=` (upper / best lower), empirical / bound for `>=`, the relative difference "
             "for `≈`.  Verdicts: *holds*; *vacuous* (true but trivially so: the bound is outside the range of "
             "the quantity); *not applicable* (an assumption fails); *violated*; *error*."), "",
             "## Summary", ""]
    lines += summary_table(data)
    lines.append("")
    if data["models"]:
        lines += ["## Trained models", "", "| model | config hash | from cache | train time [s] | val NMSE [dB] |",
                  "|---|---|---|---|---|"]
        for name, m in data["models"].items():
            lines.append(f"| {name} | `{m['hash']}` | {'yes' if m['cached'] else 'no'} | "
                         f"{_num(m.get('train_seconds'), 3)} | {_num(m.get('final_val_nmse_db'), 4)} |")
        lines.append("")
    lines += lipschitz_table(data)
    lines += _comparative(data.get("comparative"))
    lines += ["## Claims", ""]
    for r in data["claims"]:
        lines += claim_section(r)
    return "\n".join(lines) + "\n"


def write_report(data: dict, out: Path) -> Path:
    path = Path(out) / "report.md"
    path.write_text(render(data))
    return path
