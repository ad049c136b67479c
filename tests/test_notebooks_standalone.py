"""Every notebook runs when opened on its own: its first code cell installs timelab where it is missing.

The last test does what a learner on Colab does: one notebook copied into an empty folder, a fresh
virtual environment with only Jupyter's kernel and runner in it, the notebook run from the top. The
setup cell installs timelab from this checkout (``$TIMELAB_INSTALL``, standing in for the repository
URL) with every dependency from the package index. torch is put in the environment first, as Colab has
it: the plain wheel a fresh install would take is the CUDA build, a download of gigabytes; the CPU build
of the same version is what this machine and CI install (``make`` does the same).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REPOSITORY = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
TORCH = "torch==2.13.0"  # the Makefile's default


def _script():
    spec = importlib.util.spec_from_file_location("setup_cell", ROOT / "scripts" / "setup_cell.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _first_code_cell(path: Path) -> str:
    return next(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_starts_with_the_setup_cell(path):
    first = _first_code_cell(path)
    assert first == _script().setup_cell_source(f"timelab @ git+{REPOSITORY}"), (
        f"{path.name}: its first code cell is not the setup cell; run `python scripts/setup_cell.py`, "
        "then `make notebooks`")
    assert ".." not in first.replace("...", ""), "no path relative to the repository: the notebook may be alone"


def test_the_setup_cell_is_written_once_and_rewritten_in_place():
    script = _script()
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# title"),
                                               nbformat.v4.new_code_cell("import timelab")])
    assert script.with_setup_cell(notebook, script.setup_cell_source("timelab @ git+https://example.org/a"))
    assert not script.with_setup_cell(notebook, script.setup_cell_source("timelab @ git+https://example.org/a"))
    assert script.with_setup_cell(notebook, script.setup_cell_source("timelab @ git+https://example.org/b"))
    assert [c.source.splitlines()[0][:8] for c in notebook.cells] == ["# title", "# Setup:", "import t"]
    assert "example.org/b" in notebook.cells[1].source and "example.org/a" not in notebook.cells[1].source


def test_the_setup_cell_does_nothing_where_timelab_is_installed():
    code = _first_code_cell(NOTEBOOKS[0])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "TIMELAB_INSTALL": "/nonexistent/timelab"})
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stderr[-2000:]


def test_a_notebook_opened_alone_installs_timelab_and_runs(tmp_path):
    """About two minutes: a fresh environment, the package index, one notebook from the top."""
    venv, alone = tmp_path / "venv", tmp_path / "alone"
    alone.mkdir()
    notebook = next(p for p in NOTEBOOKS if p.stem.startswith("01_"))  # the shortest of the course
    shutil.copy2(notebook, alone / notebook.name)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "nbclient", "ipykernel", TORCH],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-3000:]
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    environment.update(TIMELAB_INSTALL=str(ROOT), PATH=f"{venv / 'bin'}{os.pathsep}{environment.get('PATH', '')}")
    run = f"""
import nbformat
from nbclient import NotebookClient
notebook = nbformat.read({notebook.name!r}, as_version=4)
NotebookClient(notebook, kernel_name="python3", timeout=900, resources={{"metadata": {{"path": "."}}}}).execute()
setup = next(c for c in notebook.cells if c.cell_type == "code")
print("".join(o.get("text", "") for o in setup.outputs if o.get("output_type") == "stream"))
"""
    result = subprocess.run([str(python), "-c", run], cwd=alone, capture_output=True, text=True, env=environment)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert f"timelab installed from {ROOT}; no restart needed" in result.stdout, result.stdout[-2000:]
    where = subprocess.run([str(python), "-c", "import timelab; print(timelab.__file__)"],
                             capture_output=True, text=True, cwd=tmp_path)
    assert str(venv) in where.stdout, "timelab came from the fresh environment, not from this checkout"
