"""`make drift`: would today's fresh resolve still pass? Found before a user finds it.

1. Resolve the newest versions requirements*.txt allow (uv, hashes) into a scratch lock.
2. Report what moved against requirements.lock: upgraded, added, removed.
3. Install the scratch lock into a scratch venv (pip --require-hashes, as `make` installs).
4. Run the fast tier (`pytest -m fast`) with that venv, and report what broke.

The report goes to the terminal and to artifacts/drift.md. Exit status: pytest's (0 = nothing broke).
Adopt the new versions with `make lock` once they pass (and fix what broke first).

    python .ci/drift.py [extra pytest arguments]
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INPUTS = ["requirements-torch.txt", "requirements.txt", "requirements-dev.txt"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", re.MULTILINE)


def pins(lock_text: str) -> dict[str, str]:
    """{normalized name: version} of a requirements lock."""
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in PIN.findall(lock_text)}


def changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    rows = []
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        rows.append(f"| {name} | {before or '—'} | {after or '—'} |")
    return rows


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, **kwargs)


def main(pytest_args: list[str]) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="playground-drift-"))
    uv = Path(sys.executable).parent / "uv"
    torch_source = ["--find-links", "/opt/wheels"] if list(Path("/opt/wheels").glob("torch-*")) else []
    lock = scratch / "requirements.lock"
    # 1. the newest allowed (a new output file: nothing to stay close to)
    run(
        [str(uv), "pip", "compile", "-q", "--upgrade", "--generate-hashes", "--python-version", "3.11"]
        + ["--python-platform", "x86_64-manylinux_2_36", "--no-emit-package", "torch", *torch_source]
        + [*INPUTS, "-o", str(lock)],
        check=True,
    )
    # 2. what moved
    moved = changes(pins((ROOT / "requirements.lock").read_text()), pins(lock.read_text()))
    # 3. a scratch venv, installed as make installs
    venv = scratch / "venv"
    run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    locks = ["-r", "requirements-torch.lock", "-r", str(lock), "-r", "requirements-bundled.lock"]
    run([python, "-m", "pip", "install", "-q", "--require-hashes", "--no-deps", *locks], check=True)
    # 4. the fast tier against it
    started = time.perf_counter()
    test = run(
        # test_lock.py compares the repo's lock with the venv, which drift replaces on purpose.
        [
            python,
            "-m",
            "pytest",
            "-m",
            "fast",
            "-p",
            "no:cacheprovider",
            "-q",
            "--tb=line",
            "--ignore=tests/app/test_lock.py",
            *pytest_args,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seconds = time.perf_counter() - started
    output = test.stdout + test.stderr
    broke = [line for line in output.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    summary = next((line for line in reversed(output.splitlines()) if re.search(r"\d+ (passed|failed)", line)), "")
    report = "\n".join(
        [
            f"# Drift: the newest versions requirements*.txt allow, {time.strftime('%Y-%m-%d')}",
            "",
            f"{len(moved)} package(s) differ from requirements.lock:" if moved else "Nothing moved.",
            *(["", "| package | locked | newest allowed |", "|---|---|---|", *moved] if moved else []),
            "",
            f"Fast tier against them: {summary.strip('= ')} ({seconds:.0f} s), exit {test.returncode}.",
            *(["", "What broke:", *[f"- {line}" for line in broke]] if broke else []),
            "",
            f"Scratch lock: {lock}",
        ]
    )
    (ROOT / "artifacts").mkdir(exist_ok=True)
    (ROOT / "artifacts" / "drift.md").write_text(report + "\n")
    (ROOT / "artifacts" / "drift-pytest.log").write_text(output)
    print(report)
    return test.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
