"""Where figures go: the caller's folder, else $TIMELAB_FIGURES_DIR, else ./figures; never into the checkout from tests."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from timelab.figures import FIGURES_ENV, save_figure

ROOT = Path(__file__).resolve().parents[1]


def small_figure():
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [1, 0])
    return fig


def test_folder_argument_then_environment_then_working_directory(tmp_path, monkeypatch):
    monkeypatch.setenv(FIGURES_ENV, str(tmp_path / "from-env"))
    assert save_figure(small_figure(), "a.png", folder=tmp_path / "given") == (tmp_path / "given" / "a.png").resolve()
    assert save_figure(small_figure(), "b") == (tmp_path / "from-env" / "b.png").resolve()
    monkeypatch.delenv(FIGURES_ENV)
    monkeypatch.chdir(tmp_path)
    path = save_figure(small_figure(), "c.png")
    assert path == (tmp_path / "figures" / "c.png").resolve() and path.stat().st_size > 1000
    assert not list(tmp_path.rglob(".*.tmp")), "no temporary file left behind"


def test_bad_names_are_refused(tmp_path):
    for bad in ("", "../escape.png", "sub/dir.png"):
        with pytest.raises(ValueError, match="plain file name"):
            save_figure(small_figure(), bad, folder=tmp_path)


def test_the_test_session_writes_figures_outside_the_checkout():
    folder = Path(os.environ[FIGURES_ENV]).resolve()
    assert ROOT.resolve() not in folder.parents and folder != ROOT.resolve(), folder
