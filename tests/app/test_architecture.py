"""The shape of the house, read from the source with ``ast``: which way imports point (no cycle
anywhere, each tab's modules in one order, no tab importing another), how long functions are, where
settings are read, that every tab runs alone and declares what it needs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("demos", "shared")
MAX_FUNCTION_LINES = 80
TABS = {
    "chat": "Chat",
    "text_to_image": "Text to image",
    "latent": "Latent sampling",
    "attention": "Attention",
}
# Each package's modules in the one order its imports may run (a module imports only earlier ranks):
# the plain data and rules first, what draws or computes next, the Gradio layout last.
ORDER = {
    "attention": {"core": 0, "views": 1, "ui": 2, "share": 3, "__main__": 3},
    "chat": {"core": 0, "modes": 0, "view": 0, "engine": 1, "ui": 2, "share": 3, "__main__": 3},
    "text_to_image": {
        "recipe": 0, "core": 1, "views": 2, "steps": 2, "clip_panel": 2, "unclip_panel": 2, "generate": 3,
        "ui": 4, "share": 5, "__main__": 5,
    },
    "latent": {
        "core": 0, "lab": 0, "downloads": 0, "picker": 1, "sampling": 2, "encoding": 3, "tabs": 3, "ui": 4,
        "share": 5, "__main__": 5,
    },
    "sharing": {"snapshots": 0, "links": 1},
}  # fmt: skip


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


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def module_imports(path: Path, known: set[str]) -> set[str]:
    """The project's modules a file imports, anywhere in it (module level, inside functions, under
    TYPE_CHECKING): ``from a import b`` counts as ``a.b`` where that is a module, else as ``a``."""
    found = set()
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name in known} - {module_name(path)}


def import_graph(paths: list[Path]) -> dict[str, set[str]]:
    known = {module_name(path) for path in paths}
    return {module_name(path): module_imports(path, known) for path in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def house() -> list[Path]:
    return [ROOT / "app.py", *sources("demos", "shared", "training")]


def test_no_import_cycle_anywhere():
    """Across app.py, demos/, shared/ and training/, imports inside functions and under
    TYPE_CHECKING included."""
    graph = import_graph(house())
    assert len(graph) > 60
    assert cycles(graph) == []


def test_the_cycle_checker_finds_a_cycle_through_a_function_level_import(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("from pkg import b\n")
    (tmp_path / "pkg" / "b.py").write_text("def f():\n    from pkg.c import x\n")
    (tmp_path / "pkg" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n")
    paths = sorted((tmp_path / "pkg").glob("*.py"))
    known = {"pkg." + p.stem for p in paths}
    graph = {"pkg." + p.stem: {m for m in _imports_in(p) if m in known} for p in paths}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


def _imports_in(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


def test_each_package_imports_in_one_order_no_tab_imports_another_and_sharing_knows_no_tab():
    graph = import_graph(house())
    wrong = []
    for module, imports in graph.items():
        parts = module.split(".")
        if parts[0] != "demos" or len(parts) != 3 or parts[1] not in ORDER:
            continue
        package, name = parts[1], parts[2]
        assert name in ORDER[package], f"{module} has no place in ORDER: add it where its imports allow"
        for other in imports:
            o = other.split(".")
            if o[0] != "demos" or len(o) < 2 or o[1] not in ORDER:
                continue
            if o[1] != package:
                if package == "sharing" and o[1] in TABS:
                    wrong.append(f"{module} (sharing) imports a tab: {other}")
                if package in TABS and o[1] in TABS:
                    wrong.append(f"{module} imports another tab: {other}")
            elif len(o) == 3 and ORDER[package][o[2]] >= ORDER[package][name]:
                wrong.append(f"{module} imports {other}, which comes after it")
    assert wrong == []
    assert set(ORDER) >= set(TABS)


@pytest.mark.parametrize("path", sources(*PRODUCT), ids=lambda p: str(p.relative_to(ROOT)))
def test_functions_stay_short(path):
    tree = ast.parse(path.read_text())
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
    """Each tab builds in Blocks of its own (what ``python -m demos.<tab>`` launches, through the
    package's ``__main__.py``)."""
    import importlib

    from demos import server
    from shared import runtime
    from tests.helpers import app_settings

    runtime.configure(app_settings())
    module = importlib.import_module(f"demos.{tab}.ui")
    demo = server.standalone(module.build_ui, TABS[tab])
    assert demo.fns, f"{tab} registered no events"
    main = ast.unparse(ast.parse((ROOT / "demos" / tab / "__main__.py").read_text()))
    assert f"from demos.{tab}.ui import build_ui" in main and "run_alone(build_ui" in main


def test_a_tab_runs_alone_as_a_process(tmp_path):
    """``python -m demos.attention`` serves its own page and endpoint on loopback."""
    import os
    import time

    import httpx

    from tests.helpers import free_port

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
