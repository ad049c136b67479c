"""The first code cell of every course notebook: it installs timelab when the notebook is opened on its
own (Colab, a fresh environment), from the one repository URL in ``pyproject.toml``.

    python scripts/setup_cell.py           # write (or rewrite) that cell into every notebooks/NN_*.ipynb
    python scripts/setup_cell.py --check   # exit 1 naming every notebook whose first code cell differs

In a clone set up with ``make`` timelab is installed already and the cell does nothing. Where it installs,
it says whether the kernel must restart: only when torch, diffusers or transformers were imported before
the install (then the running kernel holds the old ones). ``$TIMELAB_INSTALL`` replaces the pip
requirement (a test installs the local checkout that way, standing in for the repository). Rewriting the
cell changes the notebook's code: run ``make notebooks`` after it.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
MARKER = "# Setup: "  # how the cell is recognised when it is rewritten


def requirement(root: Path = ROOT) -> str:
    """pip's requirement for timelab from the repository URL in ``pyproject.toml``."""
    url = tomllib.loads((root / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    return f"timelab @ git+{url}"


def setup_cell_source(pip_requirement: str) -> str:
    """The setup cell's code, installing ``pip_requirement`` where timelab is missing."""
    return f'''{MARKER}opened on its own (Colab, a fresh environment) this notebook installs timelab first;
# in a clone set up with `make` timelab is installed already and this cell does nothing.
import importlib.util, os, subprocess, sys

if importlib.util.find_spec("timelab") is None:
    TIMELAB = os.environ.get("TIMELAB_INSTALL", "{pip_requirement}")
    imported_before = sorted({{"torch", "diffusers", "transformers"}} & set(sys.modules))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", TIMELAB], check=True)
    importlib.invalidate_caches()
    if imported_before:
        raise RuntimeError(f"timelab is installed; restart the kernel (it had already imported "
                           f"{{', '.join(imported_before)}}), then run the notebook again from the top")
    print(f"timelab installed from {{TIMELAB}}; no restart needed")'''


def first_code_cell(notebook: nbformat.NotebookNode) -> int:
    return next(i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code")


def with_setup_cell(notebook: nbformat.NotebookNode, source: str) -> bool:
    """Put ``source`` in ``notebook``'s setup cell (made before its first code cell if it has none);
    True when the notebook changed."""
    index = first_code_cell(notebook)
    cell = notebook.cells[index]
    if cell.source.startswith(MARKER):
        if cell.source == source:
            return False
        cell.source = source
        return True
    notebook.cells.insert(index, nbformat.v4.new_code_cell(source))
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report notebooks whose setup cell differs")
    args = parser.parse_args(argv)
    source = setup_cell_source(requirement())
    stale = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        if with_setup_cell(notebook, source):
            stale.append(path.name)
            if not args.check:
                nbformat.write(notebook, path)
    verb = "differ" if args.check else "written"
    print(f"setup cell {verb}: {', '.join(stale)}" if stale else "every notebook has the setup cell")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
