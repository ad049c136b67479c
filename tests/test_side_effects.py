"""Library code has no global side effects: loading a model leaves the caller's session as it found it.

Loading any model keeps torch's global random state, torch's thread count, matplotlib's backend and the
temporary folder (nothing left in it) unchanged; the tokenizers built from merge tables leave no folder
behind; importing the evaluation package does not pull in ``matplotlib.pyplot``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import diffusers  # noqa: F401  imported first: importing it makes $TMPDIR/torchinductor_<user> (torch's cache)
import matplotlib
import pytest
import torch

import timelab
import timelab.testing  # noqa: F401  the imports are not under test, only the loading

MODELS = ("tiny-random", "tiny-random-sd2", "tiny-random-sdxl", "tinyworld")


def _session_state() -> dict:
    return {
        "rng": torch.random.get_rng_state(),
        "threads": torch.get_num_threads(),
        "backend": matplotlib.get_backend(),
    }


@pytest.fixture(scope="module", params=MODELS)
def loaded(request, tmp_path_factory):
    """Load one model (once per model) with ``$TMPDIR`` pointed at a fresh empty folder.

    Returns the session state before and after loading, and what the load left in the temporary folder.
    """
    tmp = tmp_path_factory.mktemp("tmpdir")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMPDIR", str(tmp))
        mp.setattr(tempfile, "tempdir", None)  # forget the cached folder so $TMPDIR is read again
        assert Path(tempfile.gettempdir()) == tmp
        torch.manual_seed(1234)  # the caller's own random state, which loading must not change
        before = _session_state()
        pipe = timelab.load_pipeline(request.param, device="cpu")
        after = _session_state()
        left = sorted(p.name for p in tmp.iterdir())
    assert pipe is not None
    return request.param, before, after, left


def test_loading_leaves_torch_global_random_state(loaded):
    name, before, after, _ = loaded
    assert torch.equal(before["rng"], after["rng"]), f"loading {name} reseeded torch's global generator"


def test_loading_leaves_no_temporary_files(loaded):
    name, _, _, left = loaded
    assert left == [], f"loading {name} left {left} in the temporary folder"


def test_loading_leaves_torch_thread_count(loaded):
    name, before, after, _ = loaded
    assert after["threads"] == before["threads"], f"loading {name} changed torch's thread count"


def test_loading_leaves_matplotlib_backend(loaded):
    name, before, after, _ = loaded
    assert after["backend"] == before["backend"], f"loading {name} changed matplotlib's backend"


def test_random_weights_do_not_depend_on_the_callers_random_state():
    from timelab.testing import tiny_pipeline

    def weights():
        return tiny_pipeline("sd1", seed=5).unet.state_dict()

    torch.manual_seed(1)
    first = weights()
    torch.manual_seed(2)
    torch.rand(7)
    second = weights()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.fixture
def empty_tmpdir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert Path(tempfile.gettempdir()) == folder
    return folder


@pytest.mark.parametrize("which", ["clip", "tinyworld"])
def test_tokenizers_leave_no_folder_behind_and_still_work(which, empty_tmpdir, tmp_path):
    if which == "clip":
        from timelab.clip_tokenizer import build_clip_tokenizer as build
    else:
        from timelab.tinyworld.tokenizer import build_tokenizer as build
    tokenizer = build()
    assert list(empty_tmpdir.iterdir()) == [], "the tokenizer's temporary folder was left behind"
    ids = tokenizer("a red cube", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77 and ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True).strip() == "a red cube"
    saved = tmp_path / "saved"
    tokenizer.save_pretrained(saved)
    again = type(tokenizer).from_pretrained(saved)
    assert again("a red cube", padding="max_length", max_length=77).input_ids == ids


def test_tinyworld_tokenizer_files_are_reproduced_byte_for_byte(tmp_path):
    """The shipped model's ``vocab.json`` and ``merges.txt`` were written by ``write_tokenizer_files``."""
    from timelab.tinyworld import MODEL_DIR
    from timelab.tinyworld.tokenizer import write_tokenizer_files

    written = write_tokenizer_files(tmp_path / "tokenizer")
    for name in ("vocab.json", "merges.txt"):
        assert (written / name).read_bytes() == (MODEL_DIR / "tokenizer" / name).read_bytes(), name


def test_importing_evaluation_does_not_import_pyplot():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code = "import timelab.evaluation, sys; print('matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False", "importing timelab.evaluation imported matplotlib.pyplot"
