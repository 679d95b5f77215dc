"""The README's dependency picture, checked against every import in the package."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "goldennoise"
BASE = {"errors", "ids", "version", "__init__"}
ENTRY = {"cli", "facade", "pregenerate", "simulate"}
# Each layer may import itself, the base modules, and these (the README's arrows).
ALLOWED = {
    "store": set(),
    "sandbox": set(),
    "generation": {"sandbox"},
    "research": {"generation", "store", "sandbox"},
    "annotation": {"research", "generation", "store"},
    "ui": {"annotation"},
}


def layer(module: str) -> str:
    part = module.split(".")[1] if module.count(".") else "__init__"
    return "base" if part in BASE else "entry" if part in ENTRY else part


def imports(path: Path):
    """(module imported, inside a function?, line, comment on that line) for every goldennoise import."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    functions = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for n in ast.walk(f)}
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            base = PACKAGE.parent / node.module.replace(".", "/")
            submodules = [f"{node.module}.{a.name}" for a in node.names
                          if (base / f"{a.name}.py").exists() or (base / a.name / "__init__.py").exists()]
            # `from package import submodule` imports the submodule; only other names come from the package itself
            names = submodules + ([node.module] if len(submodules) < len(node.names) else [])
        for name in names:
            if name.startswith("goldennoise"):
                yield name, id(node) in functions, node.lineno, lines[node.lineno - 1]


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        yield name.removesuffix(".__init__"), path


def test_every_import_follows_the_layers():
    wrong = []
    for name, path in modules():
        own = layer(name)
        if own in ("entry", "base"):
            continue
        for imported, _, line, _ in imports(path):
            if not any((PACKAGE.parent / (imported.replace(".", "/") + suffix)).exists()
                       for suffix in (".py", "/__init__.py")):
                continue  # `from goldennoise.x import name`: the name, not a module
            other = layer(imported)
            if other not in ("base", own) and other not in ALLOWED[own]:
                wrong.append(f"{name}:{line} ({own}) imports {imported} ({other})")
    assert wrong == []


def test_nothing_imports_the_ui_but_the_command():
    users = [f"{name}:{line}" for name, path in modules() if layer(name) != "ui" and name != "goldennoise.cli"
             for imported, _, line, _ in imports(path) if layer(imported) == "ui"]
    assert users == []


def test_package_imports_inside_functions_are_lazy_heavy_imports_that_say_so():
    hidden = [f"{name}:{line}" for name, path in modules() if layer(name) != "entry"
              for imported, inside, line, text in imports(path) if inside and "# lazy" not in text]
    assert hidden == []


def test_no_module_imports_a_module_that_imports_it_back():
    graph = {}
    for name, path in modules():
        graph[name] = {i for i, inside, _, _ in imports(path) if not inside and i in dict(modules())}
    for a, targets in graph.items():
        for b in targets:
            assert a not in graph.get(b, set()) or a == b, f"{a} <-> {b}"
