"""Shared fixtures: Stable Diffusion's real tokenizer and tiny random-weight pipelines, all offline."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# ../shared exists on development machines and in CI only: it adds coverage, never a requirement.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHARED_CLIP_BPE = SHARED_DATA / "clip-bpe" / "bpe_simple_vocab_16e6.txt.gz"
TIMED_DIR = SHARED_DATA / "timed"

needs_timed = pytest.mark.skipif(
    not TIMED_DIR.is_dir(), reason="needs the TIMED CSV files (not shipped: no licence; CI has them)"
)


def _use_shared_bpe_if_no_package_ships_it() -> None:
    """Fallback only: the merge table normally comes from the installed ``openai-clip`` (dev extra)."""
    from timelab.clip_tokenizer import BPE_ENV, installed_bpe_path

    if installed_bpe_path() is None and SHARED_CLIP_BPE.is_file():
        os.environ.setdefault(BPE_ENV, str(SHARED_CLIP_BPE))


_use_shared_bpe_if_no_package_ships_it()


def pytest_configure(config) -> None:
    """Every figure a test or a notebook (nbval kernels inherit the environment) writes goes to a
    temporary folder: ``make test`` leaves the checkout as it found it. Where the TIMED files are at
    hand (CI), the notebooks find them through ``$TIMELAB_TIMED_DIR``."""
    config._timelab_figures = tempfile.mkdtemp(prefix="timelab-test-figures-")
    os.environ["TIMELAB_FIGURES_DIR"] = config._timelab_figures
    if TIMED_DIR.is_dir():
        os.environ.setdefault("TIMELAB_TIMED_DIR", str(TIMED_DIR))


def pytest_unconfigure(config) -> None:
    shutil.rmtree(getattr(config, "_timelab_figures", ""), ignore_errors=True)


@pytest.fixture(scope="session")
def clip_tokenizer():
    from timelab.clip_tokenizer import build_clip_tokenizer

    return build_clip_tokenizer()


def _pipeline(flavour: str):
    from timelab.testing import tiny_pipeline

    pipe = tiny_pipeline(flavour)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _edits_undone_after(pipe):
    """Hand ``pipe`` to one test, then undo whatever edits the test left active."""
    from timelab import reset_edits

    yield pipe
    reset_edits(pipe)


@pytest.fixture(scope="module", params=["sd1", "sd2", "sdxl"])
def any_pipe(request):
    """Each tiny flavour (SD 1.x, SD 2.x, SDXL), built once per module."""
    return _pipeline(request.param)


@pytest.fixture
def pipe(any_pipe):
    """Each tiny flavour, with every edit undone after each test."""
    yield from _edits_undone_after(any_pipe)


@pytest.fixture(scope="module")
def sd1_module_pipe():
    return _pipeline("sd1")


@pytest.fixture
def sd1_pipe(sd1_module_pipe):
    """The tiny SD 1.x pipeline, with every edit undone after each test."""
    yield from _edits_undone_after(sd1_module_pipe)


@pytest.fixture(scope="module")
def sdxl_pipe():
    return _pipeline("sdxl")


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
