"""``report.md``: a summary table, the comparative study, then one section per claim with its figure."""

from __future__ import annotations

import json
from pathlib import Path

MARK = {"holds": "holds", "violated": "**VIOLATED**", "not applicable": "not applicable", "error": "**ERROR**"}


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
    side = {"upper": "≤", "lower": "≥"}.get(b["side"], "")
    cert = "" if b["certified"] else " (uncertified)"
    return f"{_num(b['value'])} [{b['method']}{cert}]" if side == "" else f"{_num(b['value'])} [{b['method']}{cert}]"


def summary_table(data: dict) -> list[str]:
    """The summary table of every claim (markdown lines)."""
    rel = {"<=": "empirical ≤ bound", ">=": "empirical ≥ bound", "approx": "empirical ≈ bound"}
    lines = ["| # | claim | paradigm | bound | empirical | relation | status | tightness | time [s] |",
             "|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(data["claims"], 1):
        na = r["status"] in ("not applicable", "error")  # numbers without a valid theorem are not shown here
        lines.append(f"| {i} | [`{r['id']}`](#{_anchor(r['id'])}) | {', '.join(r['paradigms']) or '-'} | "
                     f"{'-' if na else _bound_cell(r['bound'])} | {'-' if na else _num(r['empirical'])} | "
                     f"{rel[r['relation']]} | "
                     f"{MARK[r['status']]} | {_num(r['tightness'], 3)} | {r['seconds']:.1f}"
                     f"{' (cached)' if r.get('cached') else ''} |")
    return lines


def _anchor(claim_id: str) -> str:
    return "claim-" + claim_id.lower().replace(".", "-").replace("_", "-")


def _comparative(study: dict | None) -> list[str]:
    if not study:
        return []
    out = ["## Comparative study of the four paradigms", "",
           "Accuracy (NMSE of the last layer against the ground truth), complexity (trainable parameters, "
           "matrix-product FLOPs of one inference, wall time per instance in a batch, float32 CPU), robustness "
           "(certified LipSDP upper bound, best certified lower bound, and the ratio a PGD attack achieves) and "
           "interpretability (relative distance of the learned parameters from the classical algorithm they "
           "were initialised as; whether the network has an analysis form, and its per-layer contraction "
           "factor, a certificate when < 1).", ""]
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
    if study.get("figures", {}).get("rpca"):
        out += ["", f"![RPCA per-layer NMSE]({study['figures']['rpca']})"]
    return out + [""]


def _details(d: dict) -> list[str]:
    rows = []
    for k, v in d.items():
        if isinstance(v, list) and len(v) > 12:
            continue  # long series are in results.json
        text = json.dumps(v) if isinstance(v, (list, dict)) else _num(v) if not isinstance(v, str) else v
        if len(text) > 300:
            text = text[:300] + " ..."
        rows.append(f"| {k} | {text} |")
    return (["| detail | value |", "|---|---|"] + rows) if rows else []


def claim_section(r: dict) -> list[str]:
    out = [f'<a id="{_anchor(r["id"])}"></a>', f"### {r['id']}: {r['title']}", "",
           f"*Status:* {MARK[r['status']]}  ", f"*Reference:* {r['reference']}  ",
           f"*Paradigm(s):* {', '.join(r['paradigms']) or '-'}; *models:* {', '.join(r['models']) or '-'}; "
           f"*time:* {r['seconds']:.1f} s on {r['device']}", ""]
    if r["description"]:
        out += [r["description"], ""]
    if r["error"]:
        out += ["```", r["error"], "```", ""]
    if r["reason"]:
        out += [f"*Why not applicable / notes:* {r['reason']}", ""]
    if r["bound"] is not None:
        b = r["bound"]
        out.append(f"- bound: **{_num(b['value'])}** (side {b['side']}, method `{b['method']}`, "
                   f"{'certified' if b['certified'] else 'NOT certified: ' + b['reason']}"
                   f"{', solver ' + b['solver'] if b.get('solver') else ''})")
    if r["empirical"] is not None:
        out.append(f"- empirical: **{_num(r['empirical'])}** ({r['empirical_label']}); relation "
                   f"`empirical {r['relation']} bound`; tightness {_num(r['tightness'], 3)}")
    for name, ok in r["assumptions"].items():
        out.append(f"- assumption: {name}: {'holds' if ok else '**fails**'}")
    for name, ok in r["checks"].items():
        out.append(f"- check: {name}: {'passes' if ok else '**fails**'}")
    out.append("")
    out += _details(r["details"])
    if r["figure"]:
        out += ["", f"![{r['id']}]({r['figure']})"]
    return out + [""]


def render(data: dict) -> str:
    s = data["summary"]
    prof = data["profile"]
    env = data["environment"]
    lines = ["# unfoldtheory verification report", "",
             f"Profile **{prof['name']}** (sparse recovery m = {prof['m']}, n = {prof['n']}, K = {prof['layers']}, "
             f"p = {prof['p']}, lambda = {prof['lam']}; RPCA {prof['rpca_shape'][0]} x {prof['rpca_shape'][1]}, "
             f"rank {prof['rpca_rank']}), run {data['started']} in {data['seconds']:.0f} s on {env['device']} "
             f"(unfoldtheory {env['unfoldtheory']}, torch {env['torch']}, {env['cpu_count']} CPUs).", "",
             f"**{s['total']} claims: {s['holds']} hold, {s['not applicable']} not applicable (a theorem whose "
             f"assumptions fail on the model), {s['violated']} violated, {s['error']} errors.**", "",
             *([f"{sum(bool(r.get('cached')) for r in data['claims'])} claim records were reused from an "
                "identical earlier run (same profile, device and source code; `--recompute` recomputes them).", ""]
               if any(r.get("cached") for r in data["claims"]) else []),
             "Each claim pits a bound of the library (or a theorem of the literature) against an independent "
             "counterpart: an attack, a measurement on test data, a closed form or another solver.  Tightness is "
             "bound / empirical for `<=`, empirical / bound for `>=`, the relative difference for `≈`.", "",
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
    lines += _comparative(data.get("comparative"))
    lines += ["## Claims", ""]
    for r in data["claims"]:
        lines += claim_section(r)
    return "\n".join(lines) + "\n"


def write_report(data: dict, out: Path) -> Path:
    path = Path(out) / "report.md"
    path.write_text(render(data))
    return path
