"""Shared fixtures: Stable Diffusion's real tokenizer and tiny random-weight pipelines, all offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CLIP_BPE = SHARED_DATA / "clip-bpe" / "bpe_simple_vocab_16e6.txt.gz"
TIMED_DIR = SHARED_DATA / "timed"

needs_clip_bpe = pytest.mark.skipif(
    not CLIP_BPE.is_file(), reason=f"CLIP merge table not found at {CLIP_BPE} (../shared/data/clip-bpe)"
)
needs_timed = pytest.mark.skipif(
    not TIMED_DIR.is_dir(), reason=f"TIMED CSVs not found at {TIMED_DIR} (../shared/data/timed)"
)


@pytest.fixture(scope="session")
def clip_tokenizer():
    if not CLIP_BPE.is_file():
        pytest.skip(f"CLIP merge table not found at {CLIP_BPE}")
    from timelab.clip_tokenizer import build_clip_tokenizer

    return build_clip_tokenizer(CLIP_BPE)


def _pipeline(flavour: str):
    if not CLIP_BPE.is_file():
        pytest.skip(f"CLIP merge table not found at {CLIP_BPE}")
    from timelab.testing import tiny_pipeline

    pipe = tiny_pipeline(flavour, bpe_path=CLIP_BPE)
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
