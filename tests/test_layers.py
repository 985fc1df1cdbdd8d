"""The package's import graph: layers that import downward only, and no import cycle (docs/architecture.md).

Every `import` in tracker/ counts, at module level or inside a function: a function-level import is still a
dependency, it only moves the failure to run time. Only imports under `if TYPE_CHECKING:` are left out: they name
types for annotations and never run. Read from the source with ast, so nothing is imported."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tracker"

# Layer of each module outside the core. Top-level modules not named here are core, so a new module is held to
# the strictest rule until it is placed.
IO = {"sources", "drawing", "outputs", "viewer", "progress", "signals", "options", "running", "crop_cache"}
COMMANDS = {"cli", "app", "batch", "session"}
SUBPACKAGES = {"evaluation": ("evaluation", 2), "training": ("training", 3), "export": ("export", 3)}
RANKS = {"core": 0, "io": 1, "commands": 4}


def layer(module: str) -> tuple[str, int]:
    """(layer name, rank) of a dotted module name under tracker."""
    parts = module.split(".")[1:]
    if not parts:
        return "core", 0  # the package itself: the public API, made of core modules
    if parts[0] in SUBPACKAGES:
        return SUBPACKAGES[parts[0]]
    name = "io" if parts[0] in IO else "commands" if parts[0] in COMMANDS else "core"
    return name, RANKS[name]


def allowed(importer: str, imported: str) -> bool:
    """A module imports its own layer or a lower one; the upper packages never import each other sideways."""
    (from_layer, from_rank), (to_layer, to_rank) = layer(importer), layer(imported)
    return to_rank < from_rank or (to_rank == from_rank and to_layer == from_layer)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The tracker modules `path` imports (resolved to modules: `from .x import y` is tracker.x, or tracker.x.y when
    y is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node.test)
                   for statement in node.body for inner in ast.walk(statement)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known and "." in target:
                target = target.rpartition(".")[0]
            if target in known and target != name:
                found.add(target)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def test_the_graph_is_read():
    graph = import_graph()
    assert {"tracker.tracking", "tracker.engines", "tracker.evaluation.runner", "tracker.cli"} <= set(graph)
    assert "tracker.engines" in graph["tracker.tracking"]  # a plain `from .engines import ...`
    assert "tracker.config" not in graph["tracker.box_rules"]  # only under TYPE_CHECKING there


def test_imports_point_downward():
    upward = [f"{importer} ({layer(importer)[0]}) imports {target} ({layer(target)[0]})"
              for importer, imported in import_graph().items() for target in sorted(imported)
              if not allowed(importer, target)]
    assert not upward, "imports that point up or sideways:\n" + "\n".join(upward)


def test_no_import_cycle():
    graph = import_graph()
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("importer, imported, expected", [
    ("tracker.tracking", "tracker.sources", False),  # core may not read frames from files
    ("tracker.sources", "tracker.tracking", True),
    ("tracker.export.quantize", "tracker.training.data", False),  # siblings
    ("tracker.training.loop", "tracker.evaluation.runner", True),
    ("tracker.evaluation.cli", "tracker.batch", False),
])
def test_the_rule_itself(importer, imported, expected):
    assert allowed(importer, imported) == expected


MAX_CLASS_LINES, MAX_FUNCTION_LINES = 250, 60
BUILDER = ("add_", "build_")  # argparse builders: a flat list of options reads best in one place


def _is_builder(name: str) -> bool:
    return name.startswith(BUILDER) or name.endswith("_parser")


def test_classes_and_functions_stay_short():
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            lines = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            if isinstance(node, ast.ClassDef) and lines > MAX_CLASS_LINES:
                long.append(f"class {name}.{node.name}: {lines} lines")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and lines > MAX_FUNCTION_LINES \
                    and not _is_builder(node.name):
                long.append(f"function {name}.{node.name}: {lines} lines")
    assert not long, f"over {MAX_CLASS_LINES} lines a class or {MAX_FUNCTION_LINES} a function:\n" + "\n".join(long)
