"""Count the skipped tests of a pytest JUnit XML report; fail on a skip CI does not allow.

Usage: python3 scripts/ci-skips.py reports/ci/junit.xml

Prints "N skipped" and each skip with its reason. The skips allowed are listed in ALLOWED (and in
the README, with the reason); any other skip, i.e. a tier `.ci/run` requires that did not run,
exits 1.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET

# (test module, reason the skip must start with): the skips CI allows.
ALLOWED = (
    (
        "tests.e2e.test_publish_image",
        "the publish test needs podman",  # on a Docker engine only
    ),
)


def skips(path: str) -> list[tuple[str, str]]:
    """Return (test id, reason) of every skipped test case in the report."""
    found = []
    for case in ET.parse(path).getroot().iter("testcase"):
        skipped = case.find("skipped")
        if skipped is not None:
            test = f"{case.get('classname')}::{case.get('name')}"
            found.append((test, (skipped.get("message") or "").removeprefix("Skipped: ")))
    return found


def allowed(test: str, reason: str) -> bool:
    return any(test.startswith(module) and reason.startswith(why) for module, why in ALLOWED)


def main(path: str) -> int:
    found = skips(path)
    refused = [(test, reason) for test, reason in found if not allowed(test, reason)]
    print(f"{len(found)} skipped ({len(found) - len(refused)} allowed, {len(refused)} not)")
    for test, reason in found:
        print(f"  {'allowed' if (test, reason) not in refused else 'REFUSED'}: {test}: {reason}")
    if refused:
        print("a tier .ci/run requires was skipped: fix its cause, do not skip it")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
