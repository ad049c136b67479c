"""The notebooks' helpers (model choice, exercise checks) and the student copies of the notebooks."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import nbformat
import pytest
import torch

import timelab

from timelab import notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _load_script():
    spec = importlib.util.spec_from_file_location("make_student_copies", ROOT / "scripts" / "make_student_copies.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


students = _load_script()


def _tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def _with_solutions() -> list[Path]:
    return [p for p in NOTEBOOKS if any("solution" in _tags(c) for c in nbformat.read(p, as_version=4).cells)]


# ------------------------------------------------------------------------------------- model choice
def test_pick_model_reads_the_environment(monkeypatch):
    monkeypatch.setenv(notebook.MODEL_ENV, "some/model-id")
    assert notebook.pick_model() == "some/model-id"
    monkeypatch.delenv(notebook.MODEL_ENV)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert notebook.pick_model() == "CompVis/stable-diffusion-v1-4"


def test_default_model_on_a_cpu_is_tinyworld_when_shipped(monkeypatch, tmp_path):
    import timelab.tinyworld

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(timelab.tinyworld, "MODEL_DIR", tmp_path)
    assert notebook.default_model() == "tiny-random"
    (tmp_path / "model_index.json").write_text("{}")
    assert notebook.default_model() == "tinyworld"


def test_loading_changes_no_global_setting():
    """Loading a model (or importing timelab's figure helpers) leaves torch's threads and matplotlib alone."""
    import matplotlib

    threads, backend = torch.get_num_threads(), matplotlib.get_backend()
    torch.set_num_threads(2)
    try:
        import timelab.viz  # noqa: F401

        for name in ("tinyworld", "tiny-random"):
            timelab.load_pipeline(name, device="cpu")
            assert torch.get_num_threads() == 2, f"loading {name} changed torch's thread count"
        assert matplotlib.get_backend() == backend
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name, flavour_width", [("tiny-random", 32), ("tiny-random-sd2", 48),
                                                 ("tiny-random-sdxl", 64), ("sd14-random", 768)])
def test_every_random_model_name_loads_an_editable_pipeline(name, flavour_width):
    from timelab.editing import cross_attention_layers, text_width

    pipe = timelab.load_pipeline(name, device="cpu")
    assert len(cross_attention_layers(pipe.unet)) > 0 and pipe.tokenizer.model_max_length == 77
    assert text_width(pipe.unet) == flavour_width


def test_loading_is_quiet(capfd):
    """No library warnings or loading bars: a learner sees only what timelab prints."""
    import subprocess
    import sys

    code = "import timelab; timelab.load_pipeline('tinyworld', device='cpu'); print('done')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "done\n" and result.stderr == "", result.stderr[-2000:]
    verbose = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**__import__("os").environ, "TIMELAB_VERBOSE": "1"})
    assert "Loading pipeline components" in verbose.stderr, "--verbose / TIMELAB_VERBOSE=1 shows them"


# ---------------------------------------------------------------------------------- exercise checks
def test_check_exercise_reports_stubs_passes_answers_and_raises_on_wrong_ones(capsys):
    def stub():
        raise NotImplementedError

    def wrong():
        assert 1 + 1 == 3, "arithmetic is off"

    assert notebook.check_exercise("Exercise 9", stub) is False
    assert "Exercise 9: not done yet" in capsys.readouterr().out
    assert notebook.check_exercise("Exercise 9", lambda: None) is True
    assert "Exercise 9: correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="arithmetic is off"):
        notebook.check_exercise("Exercise 9", wrong)


# ---------------------------------------------------------------------------------- student copies
def test_some_notebooks_have_solutions():
    assert len(_with_solutions()) >= 3, "notebooks 01-03 each have solution cells"


@pytest.mark.parametrize("path", _with_solutions(), ids=lambda p: p.stem)
def test_strip_solutions_removes_exactly_the_solution_cells(path):
    original = nbformat.read(path, as_version=4)
    student = students.strip_solutions(original)
    kept = [c.source for c in original.cells if "solution" not in _tags(c)]
    assert [c.source for c in student.cells] == kept, path.name
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
    assert len(original.cells) > len(student.cells)  # the original is untouched
    assert any("exercise" in _tags(c) for c in student.cells), (
        f"{path.name} has solution cells but no cell tagged 'exercise': tag each exercise's stub cell "
        "'exercise' so the student copy keeps a stub that reports 'not done yet'")


def test_script_refuses_a_notebook_without_solutions(tmp_path):
    plain = tmp_path / "plain.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), plain)
    with pytest.raises(ValueError, match="no cells tagged 'solution'"):
        students.write_student_copy(plain, tmp_path / "out")


@pytest.mark.parametrize("path", _with_solutions(), ids=lambda p: p.stem)
def test_student_copy_runs_to_its_exercise_stubs(path, tmp_path, monkeypatch, capsys):
    """The script's copy runs without errors, and every exercise stub runs and reports 'not done yet'."""
    from nbclient import NotebookClient

    assert students.main([str(path), "--out", str(tmp_path)]) == 0
    copy = nbformat.read(tmp_path / path.name, as_version=4)
    monkeypatch.setenv("TIMELAB_FIGURES_DIR", str(tmp_path / "figures"))  # leave figures/ alone
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    NotebookClient(copy, kernel_name="python3", timeout=600,
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    def printed(cell) -> str:
        return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")

    for cell in copy.cells:
        if "exercise" in _tags(cell):
            assert "not done yet" in printed(cell), f"exercise stub did not report itself unsolved:\n{cell.source}"
        assert ": correct" not in printed(cell), f"a solution ran in the student copy:\n{cell.source}"
