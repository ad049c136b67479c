"""Notebook 06 on Stable Diffusion 1.4's exact architecture (random weights, real tokenizer), offline.

CI runs every notebook on TinyWorld through nbval; this test runs 06 on ``sd14-random`` so that the
Stable Diffusion code path (16 cross-attention layers, 768-d CLIP states, 2.2% of the parameters, the
SD prompts) executes too, with tiny images and two sampling steps: the normal-equation check on all 32
matrices, undo bit for bit, both exercises' checks against their wrong answers, and the run's own
count of images against its plan. No GPU has run this path: it is tested on random weights only.
"""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from conftest import needs_timed

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06_stable_diffusion.ipynb"


@needs_timed
def test_notebook_06_runs_on_sd14_architecture(monkeypatch, tmp_path):
    monkeypatch.setenv("TIMELAB_MODEL", "sd14-random")
    monkeypatch.setenv("TIMELAB_FIGURES_DIR", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "16 cross-attention layers, 32 matrices" in text
    assert "'a pack of roses' -> 'a pack of blue roses'" in text
    assert "32 matrices, " in text and "largest relative difference from the independent solve" in text
    assert text.count("the check refuses 4 wrong answers") == 2, "both exercises' checks refuse their wrong answers"
    assert "s per image on" in text and "this setting draws" in text
    assert (tmp_path / "06_before_after_sd14-random.png").is_file()
