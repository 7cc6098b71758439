"""Every test is in exactly one tier: `fast` (`make test`), `full` (the rest of `make test-all`) or
`gpu` (deselected on purpose, run with `-m gpu` on a GPU). A test in none would drop out of the
newcomer's run silently, and one in two would be counted twice.

conftest.py records every collected test's tier markers before `-m` deselects any; when this
session collected only part of the suite, the whole suite is collected in a subprocess instead."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import TIERS, TIERS_SEEN, tier_problems

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[2]

DUMP = """
import json, os

def pytest_collection_finish(session):
    from tests.helpers import TIERS_SEEN
    with open(os.environ["TIER_DUMP"], "w") as out:
        json.dump(TIERS_SEEN, out)
"""


def whole_suite(request, tmp_path) -> dict[str, list[str]]:
    if request.config.args == [] or [str(Path(a)) for a in request.config.args] in (["tests"], [str(ROOT / "tests")]):
        return dict(TIERS_SEEN)
    (tmp_path / "tier_dump.py").write_text(DUMP)
    dump = tmp_path / "tiers.json"
    env = {**os.environ, "TIER_DUMP": str(dump), "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "tier_dump", "tests"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(dump.read_text())


def test_every_test_is_in_exactly_one_tier(request, tmp_path):
    tiers = whole_suite(request, tmp_path)
    assert len(tiers) > 800
    assert tier_problems(tiers) == []
    counts = {tier: sum(found == [tier] for found in tiers.values()) for tier in TIERS}
    assert counts["fast"] > counts["full"] > 0 and counts["gpu"] > 0, counts


def test_a_test_in_no_tier_or_in_two_is_named():
    tiers = {"a.py::in_none": [], "a.py::in_two": ["fast", "full"], "a.py::fine": ["fast"], "b.py::gpu": ["gpu"]}
    assert tier_problems(tiers) == ["a.py::in_none: in no tier", "a.py::in_two: in fast and full"]
