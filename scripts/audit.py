#!/usr/bin/env python3
"""Dependency check that works where only package registries are reachable.

`cargo audit` and `cargo deny` need the RustSec advisory database, a git repository on GitHub,
which this build environment cannot reach. What the registries do publish is checked instead:

- Rust: every crates.io package pinned in Cargo.lock against the crates.io sparse index: is the
  pinned version yanked (authors yank for soundness and security bugs)?
- Python: every `name==version` pin in the requirements files against PyPI's JSON API: is the
  pinned release yanked, and, when the pin is the latest release, the advisories PyPI lists
  for it (`vulnerabilities`, PyPA/OSV data). The per-release endpoint that would list them for
  older pins is not served here, so for those only the yanked check applies.

Usage: python3 scripts/audit.py [--json FILE]. Exit 1 when anything is yanked or vulnerable.
"""

import argparse
import json
import re
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REQUIREMENTS = ["models/requirements.txt", "models/requirements-export.txt",
                "deploy/test/requirements.txt", "load-tests/requirements.txt"]


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def locked_crates() -> list[tuple[str, str]]:
    text = (REPO / "Cargo.lock").read_text()
    out = []
    for block in text.split("[[package]]")[1:]:
        name = re.search(r'^name = "(.+)"', block, re.M).group(1)
        version = re.search(r'^version = "(.+)"', block, re.M).group(1)
        if 'source = "registry+' in block:
            out.append((name, version))
    return out


def index_path(name: str) -> str:
    n = name.lower()
    if len(n) <= 2:
        return f"{len(n)}/{n}"
    if len(n) == 3:
        return f"3/{n[0]}/{n}"
    return f"{n[:2]}/{n[2:4]}/{n}"


def crate_yanked(crate: tuple[str, str]) -> bool | None:
    name, version = crate
    lines = fetch(f"https://index.crates.io/{index_path(name)}").decode().splitlines()
    for line in lines:
        entry = json.loads(line)
        if entry["vers"] == version:
            return entry["yanked"]
    return None  # not in the index: reported as unknown


def python_pins() -> list[tuple[str, str]]:
    pins = []
    for rel in REQUIREMENTS:
        for line in (REPO / rel).read_text().splitlines():
            m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line.strip())
            if m:
                pins.append((m.group(1), m.group(2)))
    return sorted(set(pins))


def pypi_status(pin: tuple[str, str]) -> dict:
    name, version = pin
    doc = json.loads(fetch(f"https://pypi.org/pypi/{name}/json"))
    files = doc.get("releases", {}).get(version)
    latest = doc["info"]["version"] == version
    return {
        "yanked": None if not files else all(f.get("yanked") for f in files),
        "latest": latest,
        "advisories": [v.get("id", "?") for v in doc.get("vulnerabilities", [])] if latest else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write the findings here")
    args = parser.parse_args()
    crates, pins = locked_crates(), python_pins()
    with ThreadPoolExecutor(16) as pool:
        yanked = dict(zip(crates, pool.map(crate_yanked, crates)))
        python = dict(zip(pins, pool.map(pypi_status, pins)))
    bad_crates = [f"{n} {v}" for (n, v), y in yanked.items() if y]
    unknown = [f"{n} {v}" for (n, v), y in yanked.items() if y is None]
    pin = lambda n, v: f"{n}=={v}"  # noqa: E731
    report = {
        "crates_checked": len(crates),
        "crates_yanked": bad_crates,
        "crates_not_in_index": unknown,
        "python_pins_checked": len(pins),
        "python_pins_yanked": [pin(*p) for p, st in python.items() if st["yanked"]],
        "python_pins_not_on_pypi": [pin(*p) for p, st in python.items() if st["yanked"] is None],
        "python_pins_latest_with_advisories": {
            pin(*p): st["advisories"] for p, st in python.items() if st["advisories"]},
        "python_pins_not_latest": [pin(*p) for p, st in python.items() if not st["latest"]],
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    bad = (report["crates_yanked"] or report["python_pins_yanked"]
           or report["python_pins_latest_with_advisories"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
