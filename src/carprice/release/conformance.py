"""OpenAPI conformance: an answer checked against the document the service publishes.

The document is OpenAPI 3.1, whose schemas are JSON Schema 2020-12; jsonschema validates each
answer body against the schema documented for its path, method, status and media type, with
`$ref`s resolved inside the document and formats (dates) checked.
"""

from __future__ import annotations

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOC_URI = "urn:carprice:openapi"


def _pointer(*parts: str) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


def validate(value, schema_ref: str, doc: dict) -> list[str]:
    """Return the ways `value` breaks the schema at JSON pointer `schema_ref` of `doc`."""
    registry = Registry().with_resource(DOC_URI, Resource.from_contents(doc, DRAFT202012))
    validator = Draft202012Validator(
        {"$ref": f"{DOC_URI}#{schema_ref}"}, registry=registry, format_checker=FormatChecker()
    )
    return [
        f"{error.json_path}: {error.message}"
        for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    ]


def conforms(doc: dict, method: str, path: str, status: int, content_type: str, body) -> list[str]:
    """Return the ways an answer departs from the OpenAPI document (status, media type, body)."""
    operation = doc.get("paths", {}).get(path, {}).get(method.lower())
    if operation is None:
        return [f"{method} {path} is not in the OpenAPI document"]
    where = ["paths", path, method.lower(), "responses", str(status)]
    response = operation["responses"].get(str(status))
    if response is None:
        return [f"{method} {path} answered {status}, which the document does not list"]
    if "$ref" in response:
        where = response["$ref"].removeprefix("#/").split("/")
        node = doc
        for part in where:
            node = node[part]
        response = node
    media = content_type.split(";", 1)[0].strip()
    content = response.get("content", {})
    if media not in content:
        return [f"{method} {path} {status}: media type {media!r}, documented {sorted(content)}"]
    if "schema" not in content[media]:
        return []
    return validate(body, _pointer(*where, "content", media, "schema"), doc)
