"""The shape of the house, read from the source with ``ast``: which way imports point, how long files
and functions are, where settings are read, that every tab runs alone and declares what it needs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("demos", "shared")
MAX_FILE_LINES = 700
MAX_FUNCTION_LINES = 80
TABS = {
    "chat": "Chat",
    "text_to_image": "Text to image",
    "latent_sampling": "Latent sampling",
    "attention": "Attention",
}


def sources(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def imported_packages(path: Path) -> set[str]:
    """Top-level packages a file imports, anywhere in it (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_imports_point_one_way():
    """app → demos → shared; training → shared. The product never imports a training script, a
    script never imports a tab, and shared/ never imports a tab."""
    wrong = []
    for path in sources(*PRODUCT):
        wrong += [(path.relative_to(ROOT), "training") for p in imported_packages(path) if p == "training"]
        if path.relative_to(ROOT).parts[0] == "shared":
            wrong += [(path.relative_to(ROOT), p) for p in imported_packages(path) if p in ("demos", "app")]
    for path in sources("training"):
        wrong += [(path.relative_to(ROOT), p) for p in imported_packages(path) if p in ("demos", "app")]
    assert sources("demos") and sources("training")
    assert wrong == []


def test_the_import_checker_sees_imports_inside_functions(tmp_path):
    """The checker itself: an import hidden in a function body is found."""
    path = tmp_path / "sneaky.py"
    path.write_text("def f():\n    from training.evaluate import judge\n    import demos.chat\n")
    assert imported_packages(path) == {"training", "demos"}


@pytest.mark.parametrize("path", sources(*PRODUCT), ids=lambda p: str(p.relative_to(ROOT)))
def test_files_and_functions_stay_short(path):
    tree = ast.parse(path.read_text())
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_FILE_LINES, f"{path.name} has {lines} lines (limit {MAX_FILE_LINES}): split it by feature"
    long = [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_settings_are_read_in_one_place():
    """Only shared/settings.py reads the app's PLAYGROUND_* environment; nothing else names it."""
    readers = []
    for path in [*sources(*PRODUCT), ROOT / "app.py"]:
        if path.name == "settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "PLAYGROUND_" in node.value:
                if not path.name == "app.py" or "each has a PLAYGROUND_" not in node.value:  # app.py's docstring
                    readers.append(str(path.relative_to(ROOT)))
    assert readers == []


def test_importing_the_app_changes_nothing_process_wide():
    """Importing every tab leaves Pillow's pixel limit and torch's global RNG as they were."""
    code = (
        "import PIL.Image, torch; before = (PIL.Image.MAX_IMAGE_PIXELS, torch.random.get_rng_state().sum().item());"
        "import app;"
        "after = (PIL.Image.MAX_IMAGE_PIXELS, torch.random.get_rng_state().sum().item());"
        "assert before == after, (before, after)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_every_latent_model_declares_its_kind_and_data():
    from shared import catalog
    from shared.loaders import LATENT_KINDS

    latent = catalog.models_for("latent")
    assert latent and all(spec.kind in LATENT_KINDS and spec.dataset for spec in latent)
    assert catalog.latent_pair("shapes") == ("shapes-gan", "shapes-vae")
    assert catalog.latent_pair("digits") == ("digits-gan", "digits-vae")
    assert catalog.latent_pair("photos") == ("digits-gan", "digits-vae")  # no bundled pair: the digits'


@pytest.mark.parametrize("tab", TABS)
def test_every_tab_builds_alone_and_has_a_main(tab):
    """Each tab builds in Blocks of its own (what ``python -m demos.<tab>`` launches) and its file
    ends by calling run_alone."""
    import importlib

    from demos import _glue
    from shared import runtime
    from tests.conftest import test_settings

    runtime.configure(test_settings())
    module = importlib.import_module(f"demos.{tab}")
    demo = _glue.standalone(module.build_ui, TABS[tab])
    assert demo.fns, f"{tab} registered no events"
    main = [
        node
        for node in ast.parse((ROOT / "demos" / f"{tab}.py").read_text()).body
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
    ]
    assert main and "run_alone" in ast.unparse(main[0])


def test_a_tab_runs_alone_as_a_process(tmp_path):
    """``python -m demos.attention`` serves its own page and endpoint on loopback."""
    import os
    import time

    import httpx

    from tests.conftest import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "demos.attention", "--port", str(port), "--preload", "false"],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                config = httpx.get(f"http://127.0.0.1:{port}/config", timeout=2).json()
                break
            except httpx.HTTPError:
                assert proc.poll() is None, "the tab exited"
                time.sleep(0.5)
        else:
            pytest.fail("the tab did not start within 90 s")
        assert config["title"] == "Attention · GenAI Playground"
        assert any(dep.get("api_name") == "attention" for dep in config["dependencies"])
    finally:
        proc.terminate()
        proc.wait(15)
