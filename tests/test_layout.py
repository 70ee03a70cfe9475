"""The house rules a newcomer relies on, checked on the source text (nothing is imported).

- **No import cycle** among the modules of ``interp``. Only imports that run when a module loads
  are counted (module level, including ``try``/``if`` blocks); imports inside a function or under
  ``if TYPE_CHECKING:`` are left out: they run later, when every module has loaded, and are how
  a heavy or optional dependency is deferred. A package's ``__init__`` is a module like any other
  (``from .graph import CircuitGraph`` is an edge to ``interp.graph``); that importing
  ``interp.graph._graph`` first runs ``interp/graph/__init__.py`` is not counted, or every
  package would be a cycle with its own children.
- **No private name across packages.** A private module (``_x``) or name (``_y``) belongs to the
  package that holds it; that package and the packages inside it may import it, nobody else:
  not ``app/``, not the tests, not a sibling subpackage of ``interp``. Function-level imports
  count here: a private import is a dependency whenever it runs.
- **Modules stay small** (about 400 lines), but for the exceptions listed below with their reasons.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400
TOO_LONG = {  # module -> why it is not split yet; remove an entry once its module is split
    "interp/cli.py": "one Typer app; the commands should move into an interp/cli/ package",
    "interp/tasks.py": "the Task type and every shipped task; split tasks into a package",
    "interp/hooks.py": "hook names, sites and the scoped hook runner; names and runner can part",
    "interp/models.py": "spec parsing, loading, offline checks; loading and specs can part",
    "interp/patching.py": "the sweep and its setters; the setters can move out",
    "interp/graph/_graph.py": "CircuitGraph's data and pruning (issue #15 item 1 split the rest)",
    "interp/attribution_graph/_core.py": "the attribution graph's forward and backward passes",
    "app/resources.py": "every page's cached analysis; one module per page would need every "
    "view (and the tests that monkeypatch `app.resources`) to move with it",
}


def _python_files(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package_of(path: Path) -> str:
    """The package a file belongs to (``interp.graph`` for ``interp/graph/_graph.py``)."""
    name = _module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _is_module(name: str) -> bool:
    path = ROOT / Path(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, at_load_only: bool) -> list[tuple[str, str | None, int]]:
    """``(module, name or None, line)`` for every import in ``path``, relative ones resolved.

    ``from a import b`` gives ``("a.b", None)`` when ``a.b`` is a module, else ``("a", "b")``.
    """
    package = _package_of(path)
    found: list[tuple[str, str | None, int]] = []

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.extend((alias.name, None, node.lineno) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    if _is_module(f"{base}.{alias.name}"):
                        found.append((f"{base}.{alias.name}", None, node.lineno))
                    else:
                        found.append((base, alias.name, node.lineno))
            elif isinstance(node, ast.If) and _is_type_checking(node):
                if not at_load_only:
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if not at_load_only:
                    visit(node.body)
            else:
                visit([c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)])

    visit(ast.parse(path.read_text(), str(path)).body)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def _import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in _python_files("interp"):
        edges = graph.setdefault(_module_name(path), set())
        for module, _, _ in _imports(path, at_load_only=True):
            if module == "interp" or module.startswith("interp."):
                edges.add(module)
    return graph


def test_the_cycle_finder_finds_a_cycle_and_only_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set(), "c": {"b"}}) == []


def test_no_import_cycle_among_interp_modules():
    graph = _import_graph()
    assert "interp.graph" in graph["interp.catalogue._store"]  # the graph is really built
    assert _cycles(graph) == []


def _owner(module: str, name: str | None) -> str | None:
    """The package a private import belongs to, or None for a public one.

    ``interp.organisms._data`` belongs to ``interp.organisms``; ``_train`` from
    ``interp.organisms`` too; ``_official_name`` from ``interp.models`` to ``interp``.
    """
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    if name is not None and name.startswith("_") and not name.startswith("__"):
        return (
            module if (ROOT / Path(*parts) / "__init__.py").exists() else module.rpartition(".")[0]
        )
    return None


def _private_imports_across_packages() -> list[str]:
    bad = []
    for folder in ("interp", "app", "tests"):
        for path in _python_files(folder):
            importer = _package_of(path) if folder == "interp" else folder
            for module, name, line in _imports(path, at_load_only=False):
                if not (module == "interp" or module.startswith("interp.")):
                    continue
                owner = _owner(module, name)
                if owner is None or importer == owner or importer.startswith(owner + "."):
                    continue
                what = f"{module}.{name}" if name else module
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {what}")
    return bad


def test_the_owner_of_a_private_name_is_its_package():
    assert _owner("interp.organisms._data", None) == "interp.organisms"
    assert _owner("interp.organisms", "_train") == "interp.organisms"
    assert _owner("interp.models", "_official_name") == "interp"
    assert _owner("interp._checks", None) == "interp"
    assert _owner("interp.organisms", "ORGANISMS") is None


def test_no_private_name_is_imported_across_packages():
    assert _private_imports_across_packages() == []


def test_modules_stay_small_but_for_the_listed_exceptions():
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text().splitlines())
        for folder in ("interp", "app")
        for p in _python_files(folder)
    }
    too_long = {path for path, n in sizes.items() if n > MAX_LINES}
    assert too_long - set(TOO_LONG) == set(), f"split these modules (over {MAX_LINES} lines)"
    assert set(TOO_LONG) - too_long == set(), "these are short now: drop them from TOO_LONG"
