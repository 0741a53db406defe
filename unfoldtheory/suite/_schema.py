"""The JSON schema of ``results.json`` (draft 2020-12) and its validator.

Numbers that can be infinite or undefined are written as the strings ``"inf"``, ``"-inf"`` or ``"nan"`` (JSON
has no such numbers).  ``unfoldtheory verify`` writes a copy of the schema next to the results.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInputError

_NUM = {"anyOf": [{"type": "number"}, {"enum": ["inf", "-inf", "nan"]}]}
_OPT_NUM = {"anyOf": [{"type": "number"}, {"enum": ["inf", "-inf", "nan"]}, {"type": "null"}]}

_BOUND = {
    "type": ["object", "null"],
    "required": ["value", "side", "certified", "method"],
    "properties": {
        "value": _NUM,
        "side": {"enum": ["upper", "lower", "estimate", "reference"]},
        "certified": {"type": "boolean"},
        "method": {"type": "string"},
        "quantity": {"type": ["string", "null"]},
        "solver": {"type": ["string", "null"]},
        "status": {"type": ["string", "null"]},
        "reason": {"type": ["string", "null"]},
        "seconds": _OPT_NUM,
    },
}

_CLAIM = {
    "type": "object",
    "required": ["id", "title", "reference", "topic", "paradigms", "models", "relation", "status", "holds", "bound",
                 "empirical", "tightness", "assumptions", "failed_assumptions", "checks", "details", "figure",
                 "seconds", "device", "error"],
    "properties": {
        "id": {"type": "string", "pattern": r"^[a-z_]+\.[A-Za-z0-9_.\-]+$"},
        "title": {"type": "string"},
        "reference": {"type": "string"},
        "topic": {"type": "string"},
        "paradigms": {"type": "array", "items": {"enum": ["classical", "1", "2", "3", "4"]}},
        "models": {"type": "array", "items": {"type": "string"}},
        "relation": {"enum": ["<=", ">=", "approx"]},
        "status": {"enum": ["holds", "violated", "not applicable", "error"]},
        "holds": {"type": ["boolean", "null"]},
        "bound": _BOUND,
        "empirical": _OPT_NUM,
        "empirical_label": {"type": "string"},
        "tightness": _OPT_NUM,
        "assumptions": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "failed_assumptions": {"type": "array", "items": {"type": "string"}},
        "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "details": {"type": "object"},
        "figure": {"type": ["string", "null"]},
        "reason": {"type": "string"},
        "seconds": {"type": "number", "minimum": 0},
        "device": {"type": "string"},
        "error": {"type": ["string", "null"]},
        "injected_failure": {"type": "boolean"},
        "cached": {"type": "boolean"},
    },
    "allOf": [
        {"if": {"properties": {"status": {"const": "holds"}}}, "then": {"properties": {"holds": {"const": True}}}},
        {"if": {"properties": {"status": {"const": "violated"}}}, "then": {"properties": {"holds": {"const": False}}}},
        {"if": {"properties": {"status": {"const": "not applicable"}}},
         "then": {"properties": {"failed_assumptions": {"minItems": 1}}}},
        {"if": {"properties": {"status": {"const": "error"}}}, "then": {"properties": {"error": {"type": "string"}}}},
    ],
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://unfoldtheory.invalid/schemas/verification-1.json",
    "title": "unfoldtheory verification results",
    "type": "object",
    "required": ["schema", "profile", "started", "seconds", "environment", "summary", "models", "claims"],
    "properties": {
        "schema": {"const": "unfoldtheory.verification/1"},
        "profile": {"type": "object", "required": ["name", "m", "n", "layers"]},
        "started": {"type": "string"},
        "seconds": {"type": "number", "minimum": 0},
        "environment": {"type": "object", "required": ["unfoldtheory", "torch", "device"]},
        "summary": {
            "type": "object",
            "required": ["total", "holds", "violated", "not applicable", "error"],
            "properties": {k: {"type": "integer", "minimum": 0}
                           for k in ("total", "holds", "violated", "not applicable", "error")},
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
    try:
        jsonschema.validate(data, SCHEMA)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise InvalidInputError(f"results do not match the schema at {where}: {exc.message}") from None
    counts = {s: 0 for s in ("holds", "violated", "not applicable", "error")}
    for c in data["claims"]:
        counts[c["status"]] += 1
    expected = {"total": len(data["claims"]), **counts}
    if {k: data["summary"][k] for k in expected} != expected:
        raise InvalidInputError(f"summary {data['summary']} does not match the claims {expected}.")
