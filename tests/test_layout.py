"""The house (issue 14): ``ledger`` never imports the web layer, its subpackages import
only downwards, and no module of ``ledger`` or ``webui`` takes part in an import cycle.

The graph is read from the source with ``ast``: every import counts, those inside a
function or under ``TYPE_CHECKING`` too, since each is a dependency all the same.
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ledger", "webui")
WEB = ("flask", "flask_wtf", "werkzeug", "waitress", "jinja2", "webui")

# Lower layers may not import higher ones; each subpackage's __init__ says the same.
LAYERS = {
    "ledger": 0, "ledger.errors": 0, "ledger.i18n": 0, "ledger.config": 0, "ledger.passwords": 0,
    "ledger.db": 1, "ledger.projections": 1, "ledger.paging": 1,
    "ledger.log": 2,
    "ledger.custody": 3,
    "ledger.geo": 4,
    "ledger.recorder": 5, "ledger.bundle": 5,
    "ledger.accounts": 6, "ledger.stats": 6, "ledger.signin": 6, "ledger.backup": 6,
    "ledger.certificates": 6,
    "ledger.reads": 7, "ledger.demo": 7, "ledger.lists": 7, "ledger.paper": 7,
    "ledger.cli": 8,
    "webui": 9,
}

Graph = dict[str, set[str]]


def module_files() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _target(name: str, modules: dict[str, Path]) -> str:
    """The module an imported name lives in: the name itself, or its nearest parent."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def import_graph() -> Graph:
    """Module -> the modules it imports (ours by module, others by top-level name)."""
    modules = module_files()
    graph: Graph = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's own package, or above it
                    parts = name.split(".")[:None if path.name == "__init__.py" else -1]
                    package = ".".join(parts[:len(parts) - node.level + 1])
                    base = f"{package}.{base}" if base else package
                imported = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for full in imported:
                top = full.split(".")[0]
                edges.add(_target(full, modules) if top in PACKAGES else top)
        edges.discard(name)
        graph[name] = edges
    return graph


def layer(module: str) -> int | None:
    """The layer of the module's nearest listed package (``ledger`` itself is only its
    ``__init__``: a new top-level module must be given a layer here)."""
    key = module
    while key not in LAYERS and key.count(".") > 1:
        key = key.rsplit(".", 1)[0]
    if key not in LAYERS and key.startswith("webui."):
        key = "webui"
    return LAYERS.get(key)


def problems(graph: Graph) -> list[str]:
    """Every way the graph breaks the house rules, as sentences."""
    found = []
    for module, edges in sorted(graph.items()):
        for target in sorted(edges):
            if module.startswith("ledger") and target.split(".")[0] in WEB:
                found.append(f"{module} imports {target}: the core never imports the web layer")
            own, theirs = layer(module), layer(target)
            if own is not None and theirs is not None and theirs > own:
                found.append(f"{module} imports {target}, a higher layer")
    ours = {m: {t for t in edges if t in graph} for m, edges in graph.items()}
    try:
        tuple(graphlib.TopologicalSorter(ours).static_order())
    except graphlib.CycleError as exc:
        found.append("import cycle: " + " -> ".join(exc.args[1]))
    return found


def test_every_module_has_a_layer() -> None:
    assert [m for m in import_graph() if layer(m) is None] == []


def test_the_core_imports_downwards_only_and_nothing_goes_round() -> None:
    assert problems(import_graph()) == []


@pytest.mark.parametrize(("source", "target", "why"), [
    ("webui.writer_process", "webui.writer", "import cycle"),
    ("ledger.log.merkle", "ledger.log.store", "import cycle"),
    ("ledger.custody.rules", "ledger.recorder.events", "a higher layer"),
    ("ledger.geo.maps", "webui.pages.map", "never imports the web layer"),
    ("ledger.db", "flask", "never imports the web layer"),
], ids=["cycle-in-webui", "cycle-in-the-log", "upward-edge", "core-to-webui", "core-to-flask"])
def test_a_cycle_or_upward_edge_added_on_purpose_is_caught(source: str, target: str,
                                                            why: str) -> None:
    graph = import_graph()
    graph[source].add(target)
    assert any(why in p for p in problems(graph)), problems(graph)


def test_importing_every_module_of_the_core_loads_no_web_layer() -> None:
    """STYLE: `ledger/` never imports Flask; `serve` and `demo` live in webui.commands."""
    names = sorted(m for m in module_files() if m.startswith("ledger"))
    code = (f"import importlib, sys; [importlib.import_module(m) for m in {names!r}]; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {WEB!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, timeout=120).stdout
    assert out.strip() == "[]"
