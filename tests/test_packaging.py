"""Packaging: environment.yml mirrors pyproject.toml; the CLI and README commands are wired up."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

import timelab
from timelab.testing import tiny_pipeline

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> PyPI name


def requirement_name(spec: str) -> str:
    return re.split(r"[<>=!~\[ ;]", spec.strip(), maxsplit=1)[0].lower()


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    dev = [spec for spec in extras["dev"] if requirement_name(spec) != "timelab"] + extras["book"]
    assert "timelab[book]" in extras["dev"], "the dev extra (make test) brings the book's tools"
    wanted = {requirement_name(s) for s in project["dependencies"] + dev}
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = lines.index("dependencies:") + 1
    conda = set()
    for line in lines[start:]:  # conda packages, then the pip section's packages (not the -e line)
        match = re.match(r"^(?:  |      )- ([A-Za-z0-9_.-]+)", line)
        if match and match.group(1) not in ("python", "pip", "-e"):
            conda.add(CONDA_NAMES.get(match.group(1), match.group(1)).lower())
    assert conda == wanted, f"only in environment.yml: {conda - wanted}; only in pyproject: {wanted - conda}"
    assert '- -e ".[dev]"' in (ROOT / "environment.yml").read_text()


def test_readme_commands_exist_in_the_makefile():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        assert f"make {target}" in readme
        assert re.search(rf"^{target}:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_cli_edit_reports_bad_input_clearly(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "timelab.cli", "edit", "a cat", "a dog", "--out", str(tmp_path / "e.pt")],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert result.returncode == 2
    assert "--out must name a .safetensors file" in result.stderr


def test_cli_edit_on_a_model_folder_and_load_pipeline(tmp_path):
    """The real loading path (a diffusers folder) end to end: CLI edit, then load_pipeline + load_edit."""
    folder = tmp_path / "tiny-sd"
    tiny_pipeline("sd1").save_pretrained(folder)
    out = tmp_path / "roses.safetensors"
    result = subprocess.run(
        [sys.executable, "-m", "timelab.cli", "edit", "a pack of roses", "a pack of blue roses",
         "--model", str(folder), "--device", "cpu", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "solve" in result.stdout and out.is_file()
    pipe = timelab.load_pipeline(str(folder), device="cpu")
    assert pipe.dtype == torch.float32 and type(pipe).__name__ == "StableDiffusionPipeline"
    edit = timelab.load_edit(pipe, out)
    reference = timelab.time_edit(pipe, "a pack of roses", "a pack of blue roses")
    for name in edit.layer_names:
        torch.testing.assert_close(edit.edited[name], reference.edited[name], rtol=1e-5, atol=1e-6)


def test_the_installed_clip_merge_table_is_clips_own():
    """The byte-pair table comes from an installed package (dev extra), byte for byte OpenAI CLIP's."""
    import hashlib

    from conftest import SHARED_CLIP_BPE
    from timelab.clip_tokenizer import installed_bpe_path

    path = installed_bpe_path()
    assert path is not None, "no installed package ships bpe_simple_vocab_16e6.txt.gz: pip install -e '.[dev]'"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
    if SHARED_CLIP_BPE.is_file():  # cross-check with the development copy where it exists
        assert SHARED_CLIP_BPE.read_bytes() == path.read_bytes()


def test_missing_merge_table_names_the_fix(monkeypatch):
    from timelab import clip_tokenizer

    monkeypatch.delenv(clip_tokenizer.BPE_ENV, raising=False)
    monkeypatch.setattr(clip_tokenizer, "BPE_DISTRIBUTIONS", ("no-such-distribution",))
    with pytest.raises(FileNotFoundError, match="pip install openai-clip"):
        clip_tokenizer.build_clip_tokenizer()


def test_the_shipped_tinyworld_is_a_pipeline_folder_with_its_clip_within_25_mb():
    from timelab.tinyworld import CLIP_FOLDER, MODEL_DIR

    index = (MODEL_DIR / "model_index.json").read_text()
    for part in ("text_encoder", "tokenizer", "unet", "vae", "scheduler"):
        assert f'"{part}"' in index and (MODEL_DIR / part).is_dir(), part
    assert (MODEL_DIR / CLIP_FOLDER / "config.json").is_file(), "the image tower (TinyWorld's CLIP judge) ships too"
    size = sum(p.stat().st_size for p in MODEL_DIR.rglob("*") if p.is_file())
    assert size <= 25 * 2**20, f"the shipped model is {size / 2**20:.1f} MB; the limit is 25 MB"
