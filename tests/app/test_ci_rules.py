"""The rules CI runs under: a skip fails there, GPU-only tests are deselected by marker, and
`.ci/run` calls the README's test command with CI set."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.full  # runs the suite's own rules on sample suites in subprocesses (CI behaviour)

ROOT = Path(__file__).resolve().parents[2]

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
    assert "export CI=true" in run and "make test-all" in run
    assert "make test-all" in (ROOT / "README.md").read_text()


NESTED_PARSE_SAMPLE = '''
import gc

import pytest


class Leaky:
    """Like openai's client over httpx2 on a fresh resolve: its __del__ raises."""

    def __init__(self):
        self.me = self  # a cycle: only the garbage collector frees it, at some later allocation

    def __del__(self):
        return self.missing


@pytest.mark.parametrize("k", [1000, 3000, 10000, 30000, 60000])
def test_fails_with_garbage_pending(k):
    gc.disable()
    for _ in range(50):
        Leaky()
    gc.set_threshold(gc.get_count()[0] + k)  # collected somewhere inside pytest's ast.parse of this file
    gc.enable()
    assert {"a": 1} == {"a": 2}


def test_after():
    assert 1 == 2
'''


def test_a_failure_whose_formatting_nests_ast_parse_is_reported_and_the_suite_goes_on(tmp_path):
    """CPython 3.11's SystemError "AST constructor recursion depth mismatch", raised while pytest formats
    a failure, ended a whole CI session with INTERNALERROR (issue #26); conftest.py reports it instead."""
    filler = "".join(f"\n\ndef filler_{i}(a, b):\n    return [a + b * {i} for _ in range(3)]\n" for i in range(1500))
    sample = ROOT / "tests" / f"_sample_{tmp_path.name}_test.py"
    sample.write_text(NESTED_PARSE_SAMPLE + filler)  # a long file: its parse spans many collections
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", "", str(sample)],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        sample.unlink()
    assert "INTERNALERROR" not in done.stdout + done.stderr, done.stdout[-3000:]
    assert "6 failed" in done.stdout, done.stdout[-3000:]
    assert "assert {'a': 1} == {'a': 2}" in done.stdout or "AssertionError" in done.stdout
