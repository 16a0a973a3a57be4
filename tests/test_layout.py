"""The package layout's rules: no import cycle, no module over 400 lines, no
private name imported across modules.

Read from the source with ``ast`` (nothing is imported), so these checks are
fast and see every module, including those imported lazily inside functions.
"""

import ast
import pathlib

import pytest

pytestmark = pytest.mark.core

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "kerazoo"
MAX_LINES = 400


def modules():
    """Maps each module's dotted name to its path."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(name, path, known, top_level_only):
    """The kerazoo modules that ``name`` imports, with the names it takes from each.

    Args:
        name: the module's dotted name.
        path: its source file.
        known: every kerazoo module's dotted name.
        top_level_only: only imports run when the module is imported (not
            those inside functions, which run later and cannot form a cycle at
            import time).

    Returns:
        A list of ``(module, imported_names)``.
    """
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name in known]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:
                    found.append((sub, []))
                elif base in known:
                    found.append((base, [alias.name]))
    return found


def test_no_module_over_the_line_limit():
    """Small modules named for what they hold: none over 400 lines."""
    long = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert {n: c for n, c in long.items() if c > MAX_LINES} == {}


def module_aliases(path, known):
    """The local names a module binds to other kerazoo modules.

    Returns:
        A dict from the local name to the module's dotted name.
    """
    aliases = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            aliases.update({a.asname: a.name for a in node.names if a.asname and a.name in known})
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                if f"{node.module}.{a.name}" in known:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    return aliases


def private(name):
    return name.startswith("_") and not name.startswith("__")


def test_no_private_name_used_across_modules():
    """A name starting with ``_`` stays in its module, whether imported
    (``from m import _x``) or reached through the module (``m._x``): make it
    public or move it."""
    known = modules()
    offenders = []
    for name, path in known.items():
        for target, names in imports_of(name, path, known, top_level_only=False):
            offenders += [f"{name} imports {target}.{n}" for n in names if private(n)]
        aliases = module_aliases(path, known)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                if private(node.attr) and aliases[node.value.id] != name:
                    offenders.append(f"{name} uses {aliases[node.value.id]}.{node.attr}")
    assert sorted(set(offenders)) == []


def test_no_import_cycle():
    """No circle among the modules, counting imports inside functions too: a
    lazy import hides a circle from Python, not from a reader. Only a
    package's facade (its ``__init__``) may import the modules below it."""
    known = modules()
    graph = {}
    for name, path in known.items():
        deps = {target for target, _ in imports_of(name, path, known, top_level_only=False)}
        # A module importing its own package's facade would close a circle.
        graph[name] = {d for d in deps if d != name}
    cycles = []
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert cycles == []


def test_the_layout_reads_as_the_pipeline():
    """The stages of the pipeline are packages at the top of ``kerazoo``."""
    stages = ["text", "data", "models", "decoding", "inference", "training", "serving", "interop", "lab"]
    assert [s for s in stages if not (PACKAGE / s / "__init__.py").exists()] == []
    flat = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert set(flat) <= {"cli", "quiet"}, flat
