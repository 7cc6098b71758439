"""The rules CI runs under: a skip fails there, GPU-only tests are deselected by marker, and
`.ci/run` calls the README's test command with CI set."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SAMPLE = """
import pytest

def test_passes():
    assert True

def test_skips():
    pytest.skip("its tool is missing")

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False
"""


def run_sample(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    sample = ROOT / "tests" / f"_sample_{tmp_path.name}_test.py"  # under tests/, so the suite's conftest applies
    sample.write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": ci} if ci is not None else {})
    try:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(sample)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        sample.unlink()


@pytest.mark.parametrize("ci", ["true", "1"])
def test_in_ci_a_skipped_test_fails_and_says_why(tmp_path, ci):
    done = run_sample(tmp_path, ci)
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 passed, 1 xfailed" in done.stdout, done.stdout
    assert "skipped in CI, where a skip checks nothing" in done.stdout and "its tool is missing" in done.stdout


def test_outside_ci_a_skip_stays_a_skip(tmp_path):
    done = run_sample(tmp_path, None)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 1 skipped, 1 xfailed" in done.stdout, done.stdout


def test_gpu_tests_are_deselected_by_marker_and_ci_sets_ci():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "-m 'not gpu'" in options["addopts"] and "--strict-markers" in options["addopts"]
    assert any(marker.startswith("gpu:") for marker in options["markers"])
    run = (ROOT / ".ci" / "run").read_text()
    assert "export CI=true" in run and "make test" in run
    assert "make test" in (ROOT / "README.md").read_text()
