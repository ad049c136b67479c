"""Shared fixtures: Stable Diffusion's real tokenizer, tiny random-weight pipelines and the shipped
TinyWorld (loaded once per run), all offline."""

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


# ---------------------------------------------------------------------------------- TinyWorld
MODELS = ("unet", "text_encoder", "vae")
HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks")


def _weights(pipe) -> dict[str, torch.Tensor]:
    """Every tensor of the pipeline's models, as they hold it now (no copy)."""
    return {f"{name}.{key}": value for name in MODELS for key, value in getattr(pipe, name).state_dict().items()}


def _hooks(pipe) -> dict[tuple[str, str, int], torch.nn.Module]:
    """Every forward (pre-)hook on the pipeline's models: (module, kind, handle id) -> module."""
    return {(f"{part}.{name}", kind, key): module for part in MODELS
            for name, module in getattr(pipe, part).named_modules() for kind in HOOK_DICTS
            for key in getattr(module, kind)}


def _unweighted_state(pipe) -> dict:
    """What else a test must leave as it found it on the shared pipeline."""
    return {"components": dict(pipe.components), "attention processors": dict(pipe.unet.attn_processors),
            "forward hooks": _hooks(pipe)}


def _restore(pipe, what: str, found: dict) -> None:
    if what == "components":
        pipe.register_modules(**found)
    elif what == "attention processors":
        pipe.unet.set_attn_processor(dict(found))
    else:
        for hook, module in _hooks(pipe).items():
            if hook not in found:  # a hook the test left behind: removed as its handle would remove it
                _, kind, key = hook
                for table in (kind, f"{kind}_with_kwargs", "_forward_hooks_always_called"):
                    getattr(module, table, {}).pop(key, None)


def _same(what: str, before: dict, now: dict) -> bool:
    if what == "forward hooks":
        return set(before) == set(now)
    return before.keys() == now.keys() and all(type(now[k]) is type(v) if what == "attention processors"
                                               else now[k] is v for k, v in before.items())


@pytest.fixture(scope="session")
def tinyworld_session():
    """The shipped TinyWorld pipeline on the CPU, loaded once for the whole run, with a copy of every
    weight as loaded (TinyWorld is small: about 5M parameters, a comparison takes ~10 ms) and of what
    else tests must not change. Tests get it through ``tinyworld``."""
    import timelab

    pipe = timelab.load_pipeline("tinyworld", device="cpu")
    loaded = {key: value.clone() for key, value in _weights(pipe).items()}
    return pipe, loaded, _unweighted_state(pipe)


@pytest.fixture
def tinyworld(tinyworld_session):
    """The shared TinyWorld pipeline. After each test, every timelab edit still active is undone
    (``reset_edits``); then the test fails if any weight differs from the loaded model's (something
    other than a timelab edit wrote it, or an undo was not exact) or if it left the pipeline changed
    otherwise (a component swapped, an attention processor replaced, a hook left behind). What it
    changed is put back, so that the tests after it get the model as loaded."""
    from timelab import reset_edits

    pipe, loaded, state = tinyworld_session
    yield pipe
    problems = []
    try:
        reset_edits(pipe)
    except Exception as error:  # an undo that refuses: the weights were written behind the edit's back
        problems.append(f"reset_edits refused: {error}")
        reset_edits(pipe, force=True)
    now = _unweighted_state(pipe)
    for what, before in state.items():
        if not _same(what, before, now[what]):
            problems.append(f"the test left the pipeline's {what} changed")
            _restore(pipe, what, before)
    tensors = _weights(pipe)
    changed = [key for key, value in loaded.items() if not torch.equal(tensors[key], value)]
    if changed:
        problems.append(f"{len(changed)} tensor(s) differ from the loaded TinyWorld after undoing the "
                        f"timelab edits, e.g. {changed[:3]}")
        with torch.no_grad():
            for key in changed:
                tensors[key].copy_(loaded[key])
    if problems:
        pytest.fail("the shared TinyWorld pipeline: " + "; ".join(problems), pytrace=False)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
