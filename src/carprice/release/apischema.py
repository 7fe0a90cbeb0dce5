"""OpenAPI conformance: an answer checked against the document the service publishes.

A small JSON Schema validator for the keywords that document uses; an unknown keyword is an
error, so a schema this validator does not understand can never pass silently.
"""

from __future__ import annotations

import datetime as dt
import json

TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_ANNOTATIONS = {"description", "examples", "title", "default"}


def _resolve(ref: str, doc: dict) -> dict:
    node = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def validate(value, schema: dict, doc: dict, at: str = "$") -> list[str]:
    """Return the ways `value` breaks `schema` (JSON Schema subset; refs resolve in `doc`)."""
    if "$ref" in schema:
        return validate(value, _resolve(schema["$ref"], doc), doc, at)
    errors: list[str] = []
    for key, rule in schema.items():
        if key in _ANNOTATIONS:
            continue
        if key == "type":
            kinds = rule if isinstance(rule, list) else [rule]
            if not any(TYPES[k](value) for k in kinds):
                return [f"{at}: expected {'/'.join(kinds)}, got {json.dumps(value)[:60]}"]
        elif key == "enum":
            if value not in rule:
                errors.append(f"{at}: {value!r} is not one of {rule}")
        elif key == "const":
            if value != rule:
                errors.append(f"{at}: expected {rule!r}, got {value!r}")
        elif key == "format":
            if rule == "date" and isinstance(value, str):
                try:
                    dt.date.fromisoformat(value)
                except ValueError:
                    errors.append(f"{at}: not a date: {value!r}")
        elif key in ("minimum", "maximum", "exclusiveMinimum"):
            errors.extend(_bound(value, key, rule, at))
        elif key in ("minLength", "maxLength") and isinstance(value, str):
            if (len(value) < rule) if key == "minLength" else (len(value) > rule):
                errors.append(f"{at}: length {len(value)} breaks {key}={rule}")
        elif key in ("minItems", "maxItems") and isinstance(value, list):
            if (len(value) < rule) if key == "minItems" else (len(value) > rule):
                errors.append(f"{at}: {len(value)} items break {key}={rule}")
        elif key in ("required", "properties", "additionalProperties", "minProperties"):
            if isinstance(value, dict):
                errors.extend(_object(value, key, rule, schema, doc, at))
        elif key == "items":
            if isinstance(value, list):
                for i, item in enumerate(value):
                    errors.extend(validate(item, rule, doc, f"{at}[{i}]"))
        elif key not in ("minLength", "maxLength", "minItems", "maxItems"):
            raise ValueError(f"schema keyword {key!r} at {at} is not supported by this validator")
    return errors


def _bound(value, key: str, bound, at: str) -> list[str]:
    if not TYPES["number"](value):
        return []
    broken = {
        "minimum": value < bound,
        "maximum": value > bound,
        "exclusiveMinimum": value <= bound,
    }[key]
    return [f"{at}: {value} breaks {key}={bound}"] if broken else []


def _object(value: dict, key: str, rule, schema: dict, doc: dict, at: str) -> list[str]:
    if key == "required":
        return [f"{at}.{name}: required" for name in rule if name not in value]
    if key == "minProperties":
        return [f"{at}: fewer than {rule} properties"] if len(value) < rule else []
    props = schema.get("properties", {})
    if key == "additionalProperties":
        return (
            [] if rule is not False else [f"{at}.{k}: not allowed" for k in value if k not in props]
        )
    errors = []
    for name, sub in rule.items():
        if name in value:
            errors.extend(validate(value[name], sub, doc, f"{at}.{name}"))
    return errors


def conforms(doc: dict, method: str, path: str, status: int, content_type: str, body) -> list[str]:
    """Return the ways an answer departs from the OpenAPI document (status, media type, body)."""
    operation = doc.get("paths", {}).get(path, {}).get(method.lower())
    if operation is None:
        return [f"{method} {path} is not in the OpenAPI document"]
    response = operation["responses"].get(str(status))
    if response is None:
        return [f"{method} {path} answered {status}, which the document does not list"]
    if "$ref" in response:
        response = _resolve(response["$ref"], doc)
    media = content_type.split(";", 1)[0].strip()
    content = response.get("content", {})
    if media not in content:
        return [f"{method} {path} {status}: media type {media!r}, documented {sorted(content)}"]
    return validate(body, content[media].get("schema", {}), doc, f"{status} body")
