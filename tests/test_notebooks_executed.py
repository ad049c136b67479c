"""The committed notebooks are executed (``make notebooks``): every code cell ran, in order, without an
error, from the code that is committed now; the header states the measured runtime; files stay small."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAX_BYTES = 1_000_000  # one notebook, outputs and embedded figures included
MAX_TOTAL_BYTES = 5_000_000


def test_there_are_course_notebooks():
    assert len(NOTEBOOKS) >= 7


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_executed_in_order(path):
    notebook = json.loads(path.read_text())
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    counts = [cell["execution_count"] for cell in code]
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: run `make notebooks` (counts {counts})"
    errors = [o for cell in code for o in cell["outputs"] if o["output_type"] == "error"]
    assert not errors, f"{path.name} was saved with an error: {errors[0].get('ename')}"
    assert sum(bool(cell["outputs"]) for cell in code) >= len(code) // 2, f"{path.name}: outputs missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_belong_to_the_committed_code(path):
    notebook = json.loads(path.read_text())
    digest = hashlib.sha256()
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            digest.update(source.encode() + b"\0")
    recorded = notebook["metadata"].get("timelab", {})
    assert recorded.get("code_digest") == digest.hexdigest(), (
        f"{path.name}: its code changed after it was executed; run `make notebooks`")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_header_states_the_measured_runtime(path):
    notebook = json.loads(path.read_text())
    header = "".join(notebook["cells"][0]["source"])
    lines = re.findall(r"^\*\*Runtime\*\*: (\d+) s on a (\d+)-core CPU", header, re.MULTILINE)
    recorded = notebook["metadata"]["timelab"]
    assert lines == [(f"{recorded['runtime_s']:.0f}", str(recorded["cpus"]))], (path.name, lines, recorded)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_readme_course_table_shows_the_measured_runtime(path):
    """`make notebooks` writes each runtime into the README's course table: none is typed by hand."""
    readme = (path.parents[1] / "README.md").read_text()
    cells = re.findall(rf"^\| `{path.stem}` \|.*\| (\d+) s \|$", readme, re.MULTILINE)
    recorded = json.loads(path.read_text())["metadata"]["timelab"]["runtime_s"]
    assert cells == [f"{recorded:.0f}"], (path.name, cells, recorded)


def test_notebooks_stay_small():
    sizes = {path.name: path.stat().st_size for path in NOTEBOOKS}
    assert all(size <= MAX_BYTES for size in sizes.values()), sizes
    assert sum(sizes.values()) <= MAX_TOTAL_BYTES, sizes
