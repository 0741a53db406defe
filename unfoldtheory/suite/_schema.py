"""The JSON schema of ``results.json`` (draft 2020-12) and its validator.

Numbers that can be infinite or undefined are written as the strings ``"inf"``, ``"-inf"`` or ``"nan"`` (JSON
has no such numbers).  ``unfoldtheory verify`` writes a copy of the schema next to the results.
"""

from __future__ import annotations

from typing import Any

from ..bounds import SIDES
from ..errors import InvalidInputError
from ..verdicts import VERDICTS, Verdict

#: The schema identifier written into ``results.json`` (``schema``); bumped whenever the layout changes.
SCHEMA_ID = "unfoldtheory.verification/4"

_NUM = {"anyOf": [{"type": "number"}, {"enum": ["inf", "-inf", "nan"]}]}
_OPT_NUM = {"anyOf": [{"type": "number"}, {"enum": ["inf", "-inf", "nan"]}, {"type": "null"}]}

_BOUND = {
    "type": ["object", "null"],
    "required": ["value", "side", "certified", "method", "quantity", "solver", "status", "checks", "reason",
                 "seconds", "converged", "vacuous", "vacuous_reason", "confidence", "interval"],
    "additionalProperties": False,
    "properties": {
        "value": _NUM,
        "side": {"enum": list(SIDES)},
        "certified": {"type": "boolean"},
        "method": {"type": "string"},
        "quantity": {"type": "string"},
        "solver": {"type": ["string", "null"]},
        "status": {"type": ["string", "null"]},
        "checks": {"type": "object"},
        "reason": {"type": "string"},
        "seconds": _OPT_NUM,
        "converged": {"type": "boolean"},
        "vacuous": {"type": "boolean"},
        "vacuous_reason": {"type": "string"},
        "confidence": {"anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 1}, {"type": "null"}]},
        "interval": {"anyOf": [{"type": "array", "items": _NUM, "minItems": 2, "maxItems": 2}, {"type": "null"}]},
    },
    "allOf": [
        # a measured value is never a certificate; an uncertified value says why
        {"if": {"properties": {"side": {"const": "measured"}}},
         "then": {"properties": {"certified": {"const": False}}}},
        {"if": {"properties": {"certified": {"const": False}}},
         "then": {"properties": {"reason": {"minLength": 1}}}},
    ],
}

#: One entry of a Lipschitz claim's sandwich (``details["sandwich"][name]``, docs/design.md §8): every value keeps
#: its side, certification and convergence; an entry that was not computed has ``value: null`` and says why.
_SANDWICH_ENTRY = {
    "type": "object",
    "required": ["computed", "value", "side", "certified", "converged", "method", "scope", "reason"],
    "properties": {
        "computed": {"type": "boolean"},
        "value": _OPT_NUM,
        "side": {"enum": list(SIDES)},
        "certified": {"type": "boolean"},
        "converged": {"type": "boolean"},
        "method": {"type": "string"},
        "scope": {"enum": ["global", "domain", "local"]},
        "quantity": {"type": "string"},
        "interval": {"anyOf": [{"type": "array", "items": _NUM, "minItems": 2, "maxItems": 2}, {"type": "null"}]},
        "reason": {"type": "string"},
        "in_domain": {"type": "boolean"},
        "lower_end_certified": {"type": "boolean"},
    },
    "allOf": [
        {"if": {"properties": {"computed": {"const": False}}},
         "then": {"properties": {"value": {"type": "null"}, "certified": {"const": False},
                                 "reason": {"minLength": 1}}}},
        {"if": {"properties": {"computed": {"const": True}}}, "then": {"properties": {"value": _NUM}}},
        {"if": {"properties": {"certified": {"const": False}, "computed": {"const": True}}},
         "then": {"properties": {"reason": {"minLength": 1}}}},
        {"if": {"properties": {"side": {"const": "measured"}}},
         "then": {"properties": {"certified": {"const": False}}}},
    ],
}

_GAP = {
    "type": "object",
    "required": ["upper", "lower", "ratio", "grade"],
    "properties": {"upper": _NUM, "lower": _NUM, "ratio": _NUM, "grade": {"enum": ["tight", "moderate", "loose"]}},
}

#: The Lipschitz sandwich and its graded gaps, where a claim's details carry them.
_DETAILS = {
    "type": "object",
    "properties": {
        "sandwich": {"type": "object", "additionalProperties": _SANDWICH_ENTRY},
        "grades": {"type": "object", "required": ["global", "domain", "local"],
                   "properties": {"global": _GAP, "domain": _GAP, "local": _GAP}},
    },
}

_CLAIM = {
    "type": "object",
    "required": ["id", "title", "reference", "topic", "paradigms", "models", "relation", "status", "holds", "bound",
                 "empirical", "tightness", "assumptions", "failed_assumptions", "checks", "details", "figure",
                 "seconds", "device", "error", "vacuous_reason", "finding", "loose", "converged", "figure_data"],
    "properties": {
        "id": {"type": "string", "pattern": r"^[a-z_]+\.[A-Za-z0-9_.\-]+$"},
        "title": {"type": "string"},
        "reference": {"type": "string"},
        "topic": {"type": "string"},
        "paradigms": {"type": "array", "items": {"enum": ["classical", "1", "2", "3", "4"]}},
        "models": {"type": "array", "items": {"type": "string"}},
        "relation": {"enum": ["<=", ">=", "approx"]},
        "status": {"enum": list(VERDICTS)},
        "holds": {"type": ["boolean", "null"]},
        "bound": _BOUND,
        "empirical": _OPT_NUM,
        "empirical_label": {"type": "string"},
        "tightness": _OPT_NUM,
        "assumptions": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "failed_assumptions": {"type": "array", "items": {"type": "string"}},
        "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "details": _DETAILS,
        "figure": {"type": ["string", "null"]},
        "reason": {"type": "string"},
        "seconds": {"type": "number", "minimum": 0},
        "device": {"type": "string"},
        "error": {"type": ["string", "null"]},
        "injected_failure": {"type": "boolean"},
        "cached": {"type": "boolean"},
        "vacuous_reason": {"type": "string"},
        "finding": {"type": "boolean"},
        "loose": {"type": "boolean"},
        "converged": {"type": "boolean"},
        "description": {"type": "string"},
        "traceback": {"type": "string"},
        "figure_data": {"type": ["object", "null"], "required": ["axes"]},
    },
    "allOf": [
        {"if": {"properties": {"status": {"const": "holds"}}}, "then": {"properties": {"holds": {"const": True}}}},
        {"if": {"properties": {"status": {"const": "violated"}}}, "then": {"properties": {"holds": {"const": False}}}},
        {"if": {"properties": {"status": {"const": "vacuous"}}},
         "then": {"properties": {"holds": {"const": True}, "vacuous_reason": {"minLength": 1}}}},
        {"if": {"properties": {"status": {"const": "not applicable"}}},
         "then": {"properties": {"failed_assumptions": {"minItems": 1}}}},
        {"if": {"properties": {"status": {"const": "error"}}}, "then": {"properties": {"error": {"type": "string"}}}},
        # every figure can be redrawn from results.json: its plotted series are stored with it
        {"if": {"properties": {"figure": {"type": "string"}}},
         "then": {"properties": {"figure_data": {"type": "object"}}}},
    ],
}

_COUNTS = (*VERDICTS, "total", "loose", "not converged", "violated findings")

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://unfoldtheory.invalid/schemas/verification-3.json",
    "title": "unfoldtheory verification results",
    "type": "object",
    "required": ["schema", "profile", "started", "seconds", "environment", "summary", "models", "claims"],
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "profile": {"type": "object", "required": ["name", "m", "n", "layers"]},
        "started": {"type": "string"},
        "seconds": {"type": "number", "minimum": 0},
        "environment": {"type": "object",
                        "required": ["unfoldtheory", "torch", "numpy", "scipy", "cvxpy", "clarabel", "scs",
                                     "highspy", "device"],
                        "properties": {k: {"type": ["string", "null"]}
                                       for k in ("torch", "numpy", "scipy", "cvxpy", "clarabel", "scs", "highspy")}},
        "summary": {
            "type": "object",
            "required": list(_COUNTS),
            "properties": {k: {"type": "integer", "minimum": 0} for k in _COUNTS},
        },
        "models": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["hash", "cached"],
            "properties": {"hash": {"type": "string"}, "cached": {"type": "boolean"}}}},
        "claims": {"type": "array", "items": _CLAIM},
        "comparative": {"type": ["object", "null"]},
    },
}


def results_schema() -> dict:
    """The JSON schema of ``results.json`` (a copy)."""
    import copy

    return copy.deepcopy(SCHEMA)


def validate_results(data: dict) -> None:
    """Validate a results dictionary against :func:`results_schema` and the summary's arithmetic.

    Raises
    ------
    InvalidInputError
        With the first schema violation (its path in the document), or when the counts in ``summary`` do not
        match the claims.
    """
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema comes with nbformat in the test extra
        raise InvalidInputError("validating results needs jsonschema (pip install jsonschema).") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"results must be a JSON object (a dict); got {type(data).__name__}.")
    found = data.get("schema")
    if found != SCHEMA_ID:
        raise InvalidInputError(
            f"these results were written with schema {found!r}, but this version of unfoldtheory reads "
            f"{SCHEMA_ID!r} (version 2: full Bound fields, the verdict 'vacuous', findings, tightness flags and "
            "dependency versions; version 3: the Lipschitz claims' sandwich, each entry with its side and "
            "certification, and graded gaps); re-run `unfoldtheory verify` to regenerate them.")
    try:
        jsonschema.validate(data, SCHEMA)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise InvalidInputError(f"results do not match the schema at {where}: {exc.message}") from None
    counts = {s: 0 for s in VERDICTS}
    for c in data["claims"]:
        counts[c["status"]] += 1
    counts["loose"] = sum(bool(c["loose"]) for c in data["claims"])
    counts["not converged"] = sum(not c["converged"] for c in data["claims"])
    counts["violated findings"] = sum(c["status"] == Verdict.VIOLATED and c["finding"] for c in data["claims"])
    expected = {"total": len(data["claims"]), **counts}
    if {k: data["summary"][k] for k in expected} != expected:
        raise InvalidInputError(f"summary {data['summary']} does not match the claims {expected}.")
