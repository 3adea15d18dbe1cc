"""The package's import graph (read with ``ast``, nothing imported): no cycles, and every arrow points down.

Layers, bottom to top, each a set of top-level folders and modules (nothing named below that level):
the core (models, data, engine incl. the recipe contract, eval, losses, utils, report, registry,
errors, rundir, manifest) ← the plug-ins (``recipes/`` and ``export/``, installed as ``compressor.recipes``
and ``compressor.export``) ← the application (``compressor.cli``, ``compressor.pipeline``, the demo,
``compressor.plugins``, the Python API ``compressor.api`` and ``__main__``, which wire training, export
and bench together, ``compressor.prune``, which reads a run's images through the export package's loader; the
package's ``__init__`` only names the API, lazily). Folders import
each other without a loop, so a drawing by folder has every arrow pointing down.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"compressor": ROOT / "compressor", "compressor.recipes": ROOT / "recipes",
           "compressor.export": ROOT / "export"}  # setuptools package-dir, as in pyproject.toml
PLUGINS = ("compressor.recipes", "compressor.export")
# The pipeline and the demo orchestrate training, export and bench, so they sit with the application.
APP = ("compressor.cli", "compressor.plugins", "compressor.demo", "compressor.demo_deploy", "compressor.pipeline",
       "compressor.api", "compressor.__main__", "compressor.prune")


def _modules() -> dict[str, Path]:
    out = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            parts = [*package.split("."), *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imports(path: Path, module: str, known: set[str], top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # module-level statements, including those inside `if`/`try` at module level
        nodes = [n for stmt in tree.body for n in ast.walk(stmt)
                 if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".")[: len(module.split(".")) - node.level + (path.name == "__init__.py")]
                base = ".".join([*pkg, *([base] if base else [])])
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(p, m, set(mods), top_level_only) for m, p in mods.items()}


def _is(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _parents_import(module: str) -> set[str]:
    """Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first: not a dependency to count."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_the_graph_is_read() -> None:
    graph = _graph(top_level_only=False)
    assert "compressor.engine.trainer" in graph and "compressor.recipes.mvmr" in graph
    assert "compressor.engine.recipe" in graph["compressor.recipes.mvmr"]


def test_no_import_cycles() -> None:
    """Function-level imports count too: the CLI once went main → commands → distill → main that way."""
    graph = {m: deps - _parents_import(m) for m, deps in _graph(top_level_only=False).items()}
    assert _cycles(graph) == []


def test_the_core_imports_no_plugin_and_no_application_module() -> None:
    arrows = [f"{m} -> {d}" for m, deps in _graph(top_level_only=False).items()
              if m != "compressor" and not _is(m, PLUGINS + APP) for d in deps if _is(d, PLUGINS + APP)]
    assert arrows == []


def _folder(module: str) -> str:
    """The top-level folder (or module) of ``module``: ``compressor.engine.trainer`` → ``compressor.engine``."""
    for plugin in PLUGINS:
        if _is(module, (plugin,)):
            return plugin
    return ".".join(module.split(".")[:2])


def test_layers_are_whole_folders() -> None:
    """Each layer names top-level folders or modules only: no single module is moved up a layer by name."""
    assert all(name.count(".") == 1 for name in PLUGINS + APP)


def test_folders_import_each_other_without_a_loop() -> None:
    """Drawn by folder, every arrow points down: no folder imports one that (through others) imports it."""
    graph: dict[str, set[str]] = {}
    for m, deps in _graph(top_level_only=False).items():
        graph.setdefault(_folder(m), set()).update(_folder(d) for d in deps if _folder(d) != _folder(m))
    graph.pop("compressor", None)  # compressor/__init__.py: the package's face, importing nothing
    for deps in graph.values():
        deps.discard("compressor")
    assert _cycles(graph) == []


def test_one_import_path_per_module() -> None:
    """Absolute imports only (recipes once reached the contract both as ``.base`` and ``compressor.recipes.base``)."""
    relative = [f"{m}: from {'.' * n.level}{n.module or ''} import ..." for m, path in _modules().items()
                for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom) and n.level]
    assert relative == []


def test_command_modules_do_not_import_main() -> None:
    graph = _graph(top_level_only=False)
    assert [m for m in graph if _is(m, ("compressor.cli",)) and "compressor.cli.main" in graph[m]] == []


def test_the_checks_catch_what_they_look_for() -> None:
    """The cycle finder and the layer rule, on a made-up graph with one cycle and one wrong arrow."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert _is("compressor.recipes.mvmr", PLUGINS) and not _is("compressor.recipes_x", PLUGINS)


def test_benchmark_scripts_share_one_helper_module_and_edit_no_path() -> None:
    """benchmarks/*.py run as scripts: their shared code is benchmarks/common.py, imported as ``common`` (the
    script's folder is first on the path), never another script, and none edits ``sys.path``."""
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    scripts = {p.stem for p in folder.glob("*.py")}
    assert "common" in scripts
    for path in folder.glob("*.py"):
        source = path.read_text()
        assert "sys.path" not in source.replace("``sys.path``", ""), f"{path.name} edits sys.path"
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.module in scripts:
                assert node.module == "common", f"{path.name} imports the script {node.module}.py"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name not in scripts - {"common"}, f"{path.name} imports the script {alias.name}.py"
