"""Loading a CLIP judge prints no loading bar (a notebook would commit one stuck at 0%)."""

from __future__ import annotations

import pytest

from timelab.evaluation import tinyworld_clip_judge
from timelab.tinyworld import MODEL_DIR


@pytest.mark.skipif(not (MODEL_DIR / "clip" / "config.json").is_file(), reason="no shipped TinyWorld CLIP")
def test_tinyworld_clip_judge_loads_without_bars(capsys, monkeypatch):
    monkeypatch.delenv("TIMELAB_VERBOSE", raising=False)
    from transformers.utils import logging as transformers_logging

    bars_before = transformers_logging.is_progress_bar_enabled()
    judge = tinyworld_clip_judge()
    out = capsys.readouterr()
    assert "Loading weights" not in out.out + out.err and "%|" not in out.out + out.err
    assert judge.image_size == 32
    assert transformers_logging.is_progress_bar_enabled() == bars_before, "the caller's bar setting is restored"
