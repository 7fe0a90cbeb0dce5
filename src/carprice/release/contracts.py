"""Consumer contracts: what each consumer of the API relies on, checked field by field.

A consumer contract (`consumer_contracts/*.contract.json` beside this module) is one request a
consumer really sends and, field by field, what it relies on in the answer: `fields` maps a
path such as `estimates[*].price` to rules (`type`, `in`, `equals`, `length`, `min`, `pattern`,
`absent`,
`unique`), and `checks` names whole-answer properties (`interval_ordered`,
`one_estimate_per_listing`, `matches_offline`, `unsupported_have_reason`, `served_version`).
Answers are matched to listings by position, and both `one_estimate_per_listing` and
`matches_offline` count them: a missing, extra or absent `estimates` list is an error, never a
shorter comparison.
OpenAPI conformance of the same answers lives in `carprice.release.conformance`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

# JSON value kinds a contract's `type` rule may name.
TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}

CONTRACTS_DIR = Path(__file__).with_name("consumer_contracts")


def load_contracts(folder: Path) -> list[dict]:
    """Read every `*.contract.json`; a `request.json_file` is read from the same folder."""
    contracts = []
    for path in sorted(Path(folder).glob("*.contract.json")):
        contract = json.loads(path.read_text(encoding="utf-8"))
        request = contract["request"]
        if "json_file" in request:
            request["json"] = json.loads((path.parent / request["json_file"]).read_text("utf-8"))
        contract["file"] = path.name
        contracts.append(contract)
    return contracts


def values_at(body, path: str) -> list[tuple[str, object]]:
    """Return (concrete path, value) pairs for a path like `estimates[*].price`."""
    found = [("", body)]
    for part in re.findall(r"[^.\[\]]+|\[\*\]|\[\d+\]", path):
        nxt = []
        for where, node in found:
            if part == "[*]":
                if isinstance(node, list):
                    nxt += [(f"{where}[{i}]", item) for i, item in enumerate(node)]
            elif part.startswith("["):
                i = int(part[1:-1])
                if isinstance(node, list) and i < len(node):
                    nxt.append((f"{where}[{i}]", node[i]))
            elif isinstance(node, dict) and part in node:
                nxt.append((f"{where}.{part}".lstrip("."), node[part]))
            else:
                nxt.append((f"{where}.{part}".lstrip("."), _ABSENT))
        found = nxt
    return found


_ABSENT = object()


def check_field(where: str, value, rules: dict) -> list[str]:
    """Return how one field breaks its contract rules."""
    if rules.get("absent"):
        return [] if value is _ABSENT else [f"{where}: must be absent, got {value!r}"]
    if value is _ABSENT:
        return [f"{where}: missing"]
    errors = []
    kinds = rules.get("type")
    if kinds and not any(TYPES[k](value) for k in ([kinds] if isinstance(kinds, str) else kinds)):
        errors.append(f"{where}: expected {kinds}, got {value!r}")
    if "in" in rules and value not in rules["in"]:
        errors.append(f"{where}: {value!r} is not one of {rules['in']}")
    if "equals" in rules and value != rules["equals"]:
        errors.append(f"{where}: expected {rules['equals']!r}, got {value!r}")
    if "length" in rules and (not isinstance(value, list) or len(value) != rules["length"]):
        errors.append(f"{where}: expected {rules['length']} items")
    if "min" in rules and TYPES["number"](value) and value < rules["min"]:
        errors.append(f"{where}: {value} is below {rules['min']}")
    if "pattern" in rules and not (
        isinstance(value, str) and re.fullmatch(rules["pattern"], value)
    ):
        errors.append(f"{where}: {value!r} does not match {rules['pattern']}")
    return errors


def check_contract(
    contract: dict, status: int, content_type: str, body, offline: list[dict], served: str
) -> list[str]:
    """Return how an answer breaks a consumer contract.

    Args:
        offline: the offline model's answers for the contract's listings, in order.
        served: the model version the service says it serves (`/readyz`).
    """
    expect = contract["response"]
    media = content_type.split(";", 1)[0].strip()
    if status != expect["status"] or media != expect["content_type"]:
        return [f"answered {status} {media}, expected {expect['status']} {expect['content_type']}"]
    errors = []
    for path, rules in expect.get("fields", {}).items():
        pairs = values_at(body, path)
        if not pairs:
            errors.append(f"{path}: no such field")
        for where, value in pairs:
            errors.extend(check_field(where, value, rules))
        if rules.get("unique"):
            seen = [v for _, v in pairs]
            if len(set(map(repr, seen))) != len(seen):
                errors.append(f"{path}: values are not unique")
    estimates = body.get("estimates") if isinstance(body, dict) else None
    if not isinstance(estimates, list):
        estimates = []  # a missing or malformed list counts as no answers at all
    estimates = [e if isinstance(e, dict) else {} for e in estimates]
    listings = contract["request"]["json"].get("listings", [])
    for check in expect.get("checks", []):
        errors.extend(_whole(check, estimates, listings, offline, body, served))
    return errors


def _whole(check: str, estimates, listings, offline, body, served) -> list[str]:
    if check == "one_estimate_per_listing":  # counted against the listings the request sent
        ok = len(estimates) == len(listings)
        return [] if ok else [f"{len(estimates)} estimates for {len(listings)} listings"]
    if check == "served_version":
        got = body.get("model_version") if isinstance(body, dict) else None
        return [] if got == served else [f"model_version {got!r}, the service serves {served!r}"]
    if check == "interval_ordered":
        return [
            f"estimates[{i}]: not price_low <= price <= price_high"
            for i, e in enumerate(estimates)
            if e.get("status") == "ok" and not _ordered(e)
        ]
    if check == "unsupported_have_reason":
        return [
            f"estimates[{i}]: unsupported without a reason or with a price"
            for i, e in enumerate(estimates)
            if e.get("status") == "unsupported"
            and (not e.get("reason") or e.get("price") is not None)
        ]
    if check == "matches_offline":
        # position by position: a missing or extra answer is a difference, never skipped
        keys = ("status", "price", "price_low", "price_high", "price_rating")
        count = (
            [f"{len(estimates)} estimates to match {len(offline)} offline answers"]
            if len(estimates) != len(offline)
            else []
        )
        return (
            count
            + [
                f"estimates[{i}]: {k} {e.get(k)!r}, offline {want.get(k)!r}"
                for i, (e, want) in enumerate(zip(estimates, offline, strict=False))
                for k in keys
                if e.get(k) != want.get(k)
            ][:20]
        )
    raise ValueError(f"unknown contract check {check!r}")


def _ordered(estimate: dict) -> bool:
    prices = [estimate.get(k) for k in ("price_low", "price", "price_high")]
    numbers = all(TYPES["number"](p) for p in prices)
    return numbers and prices[0] <= prices[1] <= prices[2]
