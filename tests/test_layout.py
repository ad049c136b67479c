"""The package's import arrows: TinyWorld (the world and the model) never reaches into the evaluation,
and no module imports another of timelab's from inside a function to dodge a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "timelab"
# Function-level imports of timelab modules that are there on purpose, with why.
DELIBERATE = {
    ("models.py", "testing"): "builds with diffusers and transformers: loaded on first use, not by `import timelab`",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path, node: ast.ImportFrom | ast.Import) -> list[str]:
    """Absolute names of the timelab modules an import statement reads."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.startswith("timelab")]
    if node.level == 0:
        return [node.module] if node.module and node.module.startswith("timelab") else []
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = ".".join(package[:len(package) - node.level + 1])
    if node.module:
        return [f"{base}.{node.module}"]
    return [f"{base}.{alias.name}" for alias in node.names]


def _imports(path: Path):
    """(name imported, inside a function?) for every timelab import of a module."""
    tree = ast.parse(path.read_text())
    inside = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for name in _imported(path, node):
                yield name, id(node) in inside


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_the_relative_import_reader_resolves_names():
    """A check of the reader itself, so the rules below cannot pass by reading nothing."""
    found = dict(_imports(PACKAGE / "evaluation" / "tinyworld" / "oracle.py"))
    assert "timelab.tinyworld.judge" in found and "timelab.evaluation.judges" in found, found
    assert sum(1 for path in SOURCES for _ in _imports(path)) > 100


def test_tinyworld_never_imports_the_evaluation():
    reaching = [(str(path.relative_to(PACKAGE)), name) for path in (PACKAGE / "tinyworld").rglob("*.py")
                for name, _ in _imports(path) if name.startswith("timelab.evaluation")]
    assert not reaching, f"timelab.tinyworld must not import timelab.evaluation (it reads the world): {reaching}"


def test_no_function_level_import_of_timelab_modules():
    hidden = [(str(path.relative_to(PACKAGE)), name) for path in SOURCES for name, in_function in _imports(path)
              if in_function and (str(path.relative_to(PACKAGE)), name.rpartition(".")[2]) not in DELIBERATE]
    assert not hidden, f"import these at the top of the module (a cycle means the layout is wrong): {hidden}"
