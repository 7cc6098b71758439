"""Every test is in exactly one tier: `fast` (`make test`), `full` (the rest of `make test-all`) or
`gpu` (deselected on purpose, run with `-m gpu` on a GPU). A test in none would drop out of the
newcomer's run silently, and one in two would be counted twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parent.parent
TIERS = {"fast", "full", "gpu"}

DUMP = """
import json, os

def pytest_collection_finish(session):
    tiers = {item.nodeid: sorted({m.name for m in item.iter_markers()} & {"fast", "full", "gpu"})
             for item in session.items}
    with open(os.environ["TIER_DUMP"], "w") as out:
        json.dump(tiers, out)
"""


def tiers_of(tmp_path: Path, *paths: str) -> dict[str, list[str]]:
    """{test id: its tier markers}, for every test pytest collects there (no marker filter)."""
    (tmp_path / "tier_dump.py").write_text(DUMP)
    dump = tmp_path / "tiers.json"
    env = {**os.environ, "TIER_DUMP": str(dump), "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "tier_dump",
         "-m", "", *paths],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(dump.read_text())


UNTIERED = "import pytest\n\ndef test_untiered():\n    pass\n\n@pytest.mark.fast\ndef test_tiered():\n    pass\n"


def test_every_test_is_in_exactly_one_tier(tmp_path):
    """One collection of the whole suite, with a sample module beside it that shows the check bites."""
    sample = ROOT / "tests" / f"_sample_{tmp_path.name}_test.py"
    sample.write_text(UNTIERED)
    try:
        tiers = tiers_of(tmp_path, "tests", str(sample))
    finally:
        sample.unlink()
    prefix = f"tests/{sample.name}::"
    assert {test: found for test, found in tiers.items() if test.startswith(prefix)} == {
        prefix + "test_untiered": [],
        prefix + "test_tiered": ["fast"],
    }
    tiers = {test: found for test, found in tiers.items() if not test.startswith(prefix)}
    assert len(tiers) > 800
    wrong = {test: found for test, found in tiers.items() if len(found) != 1}
    assert not wrong, f"tests in no tier or in two (mark the module `pytestmark = pytest.mark.fast`): {wrong}"
    counts = {tier: sum(found == [tier] for found in tiers.values()) for tier in TIERS}
    assert counts["fast"] > counts["full"] > 0 and counts["gpu"] > 0, counts
