"""Packaging: the licence is declared, and the lock files pin every dependency, hashed, at the
same version in both files and within pyproject.toml's ranges."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})+)", re.M)


def pins(name: str) -> dict[str, str]:
    """Package -> version of a lock file, each pin with at least one hash."""
    text = (ROOT / "requirements" / name).read_text(encoding="utf-8")
    found = {canonicalize_name(m[1]): m[2] for m in PIN.finditer(text)}
    listed = re.findall(r"^[A-Za-z0-9]", text, re.M)
    assert len(found) == len(listed), f"{name}: a line without a pinned, hashed version"
    return found


def test_the_licence_is_declared() -> None:
    assert PYPROJECT["license"] == "MIT" and PYPROJECT["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")


def test_every_dependency_is_locked_within_its_range_at_one_version() -> None:
    service, test = pins("service.lock"), pins("test.lock")
    extras = PYPROJECT["optional-dependencies"]
    for lock, wanted in [
        (service, [*PYPROJECT["dependencies"], *extras["postgres"]]),
        (test, [*PYPROJECT["dependencies"], *extras["postgres"], *extras["test"]]),
    ]:
        for spec in map(Requirement, wanted):
            version = lock.get(canonicalize_name(spec.name))
            assert version is not None, f"{spec.name} is not locked"
            assert spec.specifier.contains(version), f"{spec.name}=={version} outside {spec}"
    assert "holidays" in service  # its data changes results: pinned, never floating
    assert {name: test[name] for name in service} == service  # the same versions in both
