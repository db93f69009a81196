"""An example input for a tool, built from its input model's JSON schema and checked by the model itself.

Required fields get a made-up value of their type within their bounds (a name-based hint where one reads
better, e.g. a hook name for `hook`); optional fields keep their defaults. The example shows the shape of
a call (`interp tool schema NAME --example`), not one that suits a given model: prompts, tokens and paths
are placeholders to replace.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

HINTS: dict[str, Any] = {
    "hook": "blocks.0.hook_resid_post",
    "hooks": ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post"],
    "sae": "runs/sae",
    "out": "runs/sae",
    "transcoders": "runs/transcoder",
    "token": "TOKEN",
    "versus": "OTHER",
    "direction_id": "DIRECTION_ID",
    "prompt": "a prompt",
    "prompts": "a prompt",
    "positive": "a prompt with the concept",
    "negative": "a prompt without it",
    "clean": "a clean prompt",
    "corrupted": "the same prompt, corrupted",
}
"""Field name -> the placeholder a reader recognises (a list: one per item). Used for strings; `token` and
`versus` also fill optional fields of nested objects, so a metric example names what it measures."""


def example(model: type[BaseModel]) -> dict[str, Any]:
    """A payload for `model` that validates (raises pydantic's ValidationError if the builder falls short)."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    payload = {}
    for name, field in model.model_fields.items():
        prop = schema["properties"][field.alias or name]
        payload[field.alias or name] = (
            _value(prop, defs, name) if field.is_required() else field.get_default(call_default_factory=True)
        )
    return model.model_validate(payload).model_dump(mode="json", by_alias=True)


def _value(s: dict[str, Any], defs: dict[str, Any], name: str, i: int = 0) -> Any:
    if "$ref" in s:
        return _value(defs[s["$ref"].rsplit("/", 1)[-1]], defs, name, i)
    if "const" in s:
        return s["const"]
    if "enum" in s:
        return s["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in s:
            arms = [a for a in s[key] if a.get("type") != "null"]
            return _value(arms[0], defs, name, i)
    kind = s.get("type")
    if kind == "object":
        props = s.get("properties", {})
        keep = [
            k for k, p in props.items() if k in s.get("required", []) or "const" in p or (k in HINTS and "default" in p)
        ]
        return {k: _value(props[k], defs, k) for k in keep}
    if kind == "array":
        n = max(s.get("minItems", 0), 2)
        if "maxItems" in s:
            n = min(n, s["maxItems"])
        return [_value(s.get("items", {}), defs, name, j) for j in range(n)]
    if kind == "string":
        base = HINTS.get(name, name or "text")
        if isinstance(base, list):
            return base[i % len(base)]
        return base if i == 0 else f"{base} ({i + 1})"
    if kind in ("integer", "number"):
        low = s.get("minimum", s.get("exclusiveMinimum", -1) + 1 if "exclusiveMinimum" in s else 0)
        high = s.get("maximum", s.get("exclusiveMaximum"))
        value = low + i
        if high is not None and value >= high:
            value = (low + high) / 2 if kind == "number" else low
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    return None
