"""The lock (requirements.lock) pins every package pyproject names, inside pyproject's ranges.

`make install` installs with the lock as constraints; a dependency added to pyproject without
`make lock` would install unpinned, at whatever is newest on the day. This test says so first.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def _locked() -> dict[str, list[tuple[Version, str]]]:
    """name -> [(version, marker text)]; a name may be pinned twice under different markers."""
    pins: dict[str, list[tuple[Version, str]]] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if not line or line[0] in "# ":
            continue
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "==", line
        marker = str(requirement.marker) if requirement.marker else ""
        pins.setdefault(canonicalize_name(requirement.name), []).append((Version(spec.version), marker))
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"])
    for extra in ("dev", "bench"):
        texts += project["optional-dependencies"][extra]
    return [Requirement(text) for text in texts]


def test_every_declared_dependency_is_locked_within_its_range() -> None:
    environment = default_environment() | {"python_full_version": "3.11.0", "python_version": "3.11"}
    locked = _locked()
    problems = []
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        pins = [
            version
            for version, marker in locked.get(name, [])
            if not marker or Requirement(f"x ; {marker}").marker.evaluate(environment)  # type: ignore[union-attr]
        ]
        if len(pins) != 1:
            problems.append(f"{requirement}: {len(pins)} pins for Python 3.11 in requirements.lock")
        elif pins[0] not in requirement.specifier:
            problems.append(f"{requirement}: locked at {pins[0]}, outside the range")
    assert problems == [], "run `make lock` after changing pyproject's dependencies: " + "; ".join(problems)


def test_the_lock_pins_the_packages_whose_breaking_releases_bit_us() -> None:
    locked = _locked()
    assert {"duckdb", "kafka-python", "aiokafka", "faust-streaming", "pyarrow"} <= set(locked)
    assert all(len(pins) == 1 for name, pins in locked.items() if name in ("duckdb", "kafka-python"))
