"""The locks and the requirements agree: every package of the environment is locked at an exact
version with hashes, every requirement is met by its lock, nothing is locked that nothing needs, and
the venv the tests run in is the lock. After editing a requirements file: `make lock`."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[2]
DIRECT = ["requirements-torch.txt", "requirements.txt", "requirements-dev.txt"]  # resolved together
NO_DEPS = ["requirements-bundled.txt"]  # installed with --no-deps: its own requirements are not followed
LOCKS = ["requirements-torch.lock", "requirements.lock", "requirements-bundled.lock"]
ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?:\s*\\\n\s*--hash=sha256:[0-9a-f]{64})*)", re.MULTILINE)


def requirements(name: str) -> list[Requirement]:
    lines = [line.split(" #")[0].strip() for line in (ROOT / name).read_text().splitlines()]
    return [Requirement(line) for line in lines if line and not line.startswith(("#", "-"))]


def lock_entries(text: str) -> dict[str, tuple[str, int]]:
    """{name: (version, number of hashes)} of a lock written by `make lock`."""
    return {canonicalize_name(m[1]): (m[2], m[3].count("--hash=")) for m in ENTRY.finditer(text)}


def locked() -> dict[str, tuple[str, int]]:
    entries: dict[str, tuple[str, int]] = {}
    for name in LOCKS:
        found = lock_entries((ROOT / name).read_text())
        assert not entries.keys() & found.keys(), f"{name} locks again: {sorted(entries.keys() & found.keys())}"
        entries |= found
    return entries


def closure(roots: list[Requirement], versions: dict[str, str]) -> tuple[set[str], list[str]]:
    """Every package the roots need here (markers and extras followed through the locked packages'
    own metadata), and each requirement that its locked version does not meet."""
    needed: set[str] = set()
    unmet: list[str] = []
    todo = [(req, "") for req in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        if name not in versions:
            unmet.append(f"{req} (needed, not locked)")
            continue
        if not req.specifier.contains(Version(versions[name]), prereleases=True):
            unmet.append(f"{req} (locked: {versions[name]})")
        needed.add(name)
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        for sub in metadata.distribution(name).requires or []:
            sub_req = Requirement(sub)
            wanted = [x for x in req.extras if sub_req.marker is not None and sub_req.marker.evaluate({"extra": x})]
            todo.append((sub_req, wanted[0] if wanted else ""))
    return needed, unmet


def test_every_locked_package_is_pinned_exactly_with_hashes():
    entries = locked()
    assert len(entries) > 50  # the whole environment, not only the direct requirements
    assert not [name for name, (_, hashes) in entries.items() if hashes == 0]


def test_the_lock_is_exactly_what_the_requirements_need_and_meets_every_range():
    versions = {name: version for name, (version, _) in locked().items()}
    roots = [req for name in DIRECT for req in requirements(name)]
    needed, unmet = closure(roots, versions)
    no_deps = {canonicalize_name(req.name) for name in NO_DEPS for req in requirements(name)}
    assert not unmet, f"requirements their lock does not meet; run `make lock`: {unmet}"
    assert not no_deps - versions.keys(), f"not locked: {no_deps - versions.keys()}; run `make lock`"
    stale = versions.keys() - needed - no_deps
    assert not stale, f"locked but needed by nothing: {sorted(stale)}; run `make lock`"


def test_the_venv_is_the_lock():
    wrong = {
        name: (version, metadata.version(name))
        for name, (version, _) in locked().items()
        if Version(metadata.version(name)) != Version(version)
    }
    assert not wrong, f"installed ≠ locked (locked, installed): {wrong}; run `make` again"


@pytest.mark.parametrize(
    "edit, complaint",
    [
        ("pyyaml==1.0\n", "pyyaml==1.0 (locked:"),  # a pin outside the lock
        ("left-pad-nothing==1.0\n", "(needed, not locked)"),  # a package in one and not the other
    ],
)
def test_the_check_catches_a_requirement_the_lock_does_not_meet(edit, complaint):
    versions = {name: version for name, (version, _) in locked().items()}
    roots = [req for name in DIRECT for req in requirements(name)] + [Requirement(edit.strip())]
    _, unmet = closure(roots, versions)
    assert any(complaint in line for line in unmet), unmet


def test_the_check_catches_a_package_locked_that_nothing_needs():
    text = (ROOT / "requirements.lock").read_text() + "six==1.16.0 \\\n    --hash=sha256:" + "0" * 64 + "\n"
    versions = {name: version for name, (version, _) in lock_entries(text).items()}
    needed, _ = closure([req for name in DIRECT for req in requirements(name)], versions)
    assert "six" in versions.keys() - needed
