"""TinyWorld 2's training code on a tiny configuration: reproducible from its seed, resumable bit for bit,
careful with existing folders, and its output loads as a standard Stable Diffusion pipeline plus a CLIP."""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from timelab.cli import main
from timelab.tinyworld import components, training
from timelab.tinyworld.tokenizer import build_tokenizer
from timelab.tinyworld.training import Stage, TrainConfig, train

SIZES = components.Sizes(text_width=16, text_layers=1, image_width=16, image_layers=1, vae_channels=(8, 8, 8),
                         unet_channels=(16, 16), unet_heads=2)
TINY = TrainConfig(seed=3, sizes=SIZES, clip=Stage(2, 4, 1e-3), vae=Stage(2, 2, 1e-3), unet=Stage(3, 2, 1e-3),
                   checkpoint_every=1, device="cpu")
# draw_batch calls of one TINY run: 2 CLIP steps, 2 VAE steps, the VAE's latent-scale batch, 3 UNet steps.
DRAWS = 2 + 2 + 1 + 3
SCALE_DRAW = 5  # the latent-scale batch: drawn again by a run that resumes after it

WEIGHTS = ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
           "vae/diffusion_pytorch_model.safetensors", "clip/model.safetensors")


def differing_weights(a: Path, b: Path) -> list[str]:
    """The weight files of two pipeline folders that are not bit-identical."""
    differ = []
    for part in WEIGHTS:
        x, y = load_file(a / part), load_file(b / part)
        if x.keys() != y.keys() or not all(torch.equal(x[k], y[k]) for k in x):
            differ.append(part)
    return differ


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def as_json(config: TrainConfig) -> dict:
    return json.loads(json.dumps(asdict(config)))


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread(tmp_path_factory):
    """Train on one thread (bit-identical runs; the machine is shared), and put torch's count back. Temporary
    files go to pytest's folder."""
    threads, temporary = torch.get_num_threads(), tempfile.tempdir
    torch.set_num_threads(1)
    tempfile.tempdir = str(tmp_path_factory.mktemp("tempdir"))
    yield
    torch.set_num_threads(threads)
    tempfile.tempdir = temporary


@pytest.fixture(autouse=True)
def one_thread_after_each_test():
    """``--threads`` in a CLI test sets the count for the whole process: keep it at one."""
    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One uninterrupted TINY run: the reference the other tests compare with."""
    out = tmp_path_factory.mktemp("reference") / "model"
    train(TINY, out)
    return out


def test_same_seed_trains_the_same_model_and_another_seed_another(trained, tmp_path):
    train(TINY, tmp_path / "again")
    assert differing_weights(trained, tmp_path / "again") == []
    first, again = snapshot(trained), snapshot(tmp_path / "again")
    assert first.keys() == again.keys()
    assert [f for f in first if f != "training.json" and first[f] != again[f]] == [], "every file but the timing"
    train(replace(TINY, seed=4), tmp_path / "other")
    assert differing_weights(trained, tmp_path / "other") == list(WEIGHTS), "another seed: other weights throughout"


def test_the_folder_is_a_stable_diffusion_pipeline_and_a_clip(trained):
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPModel, CLIPTokenizer

    assert not (trained.parent / "model.training").exists(), "checkpoints are removed after success"
    pipe = StableDiffusionPipeline.from_pretrained(trained, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    prompt = "a small red circle on the left and a square on the right on a black background"
    image = pipe(prompt, num_inference_steps=2, height=32, width=32, output_type="np",
                 generator=torch.Generator().manual_seed(0)).images
    assert image.shape == (1, 32, 32, 3) and np.isfinite(image).all() and 0 <= image.min() <= image.max() <= 1

    clip = CLIPModel.from_pretrained(trained / "clip", local_files_only=True)
    clip_tokenizer = CLIPTokenizer.from_pretrained(trained / "clip", local_files_only=True)
    own = build_tokenizer()(prompt, padding="max_length", max_length=77).input_ids
    assert clip_tokenizer(prompt, padding="max_length", max_length=77).input_ids == own
    assert pipe.tokenizer(prompt, padding="max_length", max_length=77).input_ids == own
    assert len(clip_tokenizer(prompt).input_ids) == len(prompt.split()) + 2, "TinyWorld's own words"
    assert clip.config.text_config.hidden_size == SIZES.text_width
    assert clip.config.vision_config.image_size == 32

    # The UNet was trained on the frozen text tower of the CLIP: the text encoder is that tower, weight for weight.
    def text_tower(weights: dict) -> dict:  # keys with or without the "text_model." prefix, as saved
        return {k.removeprefix("text_model."): v for k, v in weights.items() if not k.startswith(
            ("vision_model.", "visual_projection.", "text_projection.", "logit_scale"))}

    tower = text_tower(load_file(trained / "clip/model.safetensors"))
    encoder = text_tower(load_file(trained / "text_encoder/model.safetensors"))
    assert len(encoder) > 10 and "embeddings.token_embedding.weight" in encoder
    assert encoder.keys() == tower.keys() and all(torch.equal(encoder[k], tower[k]) for k in encoder)
    ids = torch.tensor([own])
    with torch.no_grad():
        assert torch.equal(pipe.text_encoder(ids).last_hidden_state, clip.text_model(ids).last_hidden_state)

    # The latent scale is set from the trained autoencoder (1 / std of its latent means), not SD's 0.18215.
    scale = pipe.vae.config.scaling_factor
    assert scale != 0.18215 and scale > 0
    pixels = training.draw_batch(np.random.default_rng([TINY.seed, 9]), 256)[0]
    with torch.no_grad():
        means = pipe.vae.encode(pixels).latent_dist.mean
    assert scale == pytest.approx(1 / means.std().item(), rel=1e-4)
    assert pipe.unet.config.sample_size == 8 and pipe.unet.config.cross_attention_dim == SIZES.text_width


def test_training_json_holds_the_config_and_the_losses(trained):
    summary = json.loads((trained / "training.json").read_text())
    assert summary["config"] == as_json(TINY)
    assert summary["device"] == "cpu" and summary["torch_threads"] == 1
    for loss in ("final_clip_loss", "final_diffusion_loss", "autoencoder_reconstruction_mse"):
        assert math.isfinite(summary[loss]) and summary[loss] > 0, loss


class Interrupted(Exception):
    pass


def interrupt_at(monkeypatch, call: int) -> dict:
    """Make ``training.draw_batch`` (each step's batch) raise on its ``call``-th call; count the calls."""
    calls = {"n": 0}
    real = training.draw_batch

    def draw_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise Interrupted(f"interrupted at draw {call}")
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "draw_batch", draw_batch)
    return calls


@pytest.mark.parametrize("call,stage", [(2, "clip"), (4, "vae"), (7, "unet")])
def test_an_interrupted_run_resumes_to_the_same_weights(trained, tmp_path, monkeypatch, call, stage):
    out = tmp_path / "model"
    interrupt_at(monkeypatch, call)
    with pytest.raises(Interrupted):
        train(TINY, out)
    checkpoints = tmp_path / "model.training"
    assert (checkpoints / f"{stage}.pt").exists() and not out.exists()
    saved = torch.load(checkpoints / f"{stage}.pt", weights_only=False)
    assert saved["step"] == 1 and len(saved["history"]) == 1, "checkpoint_every=1: the step before the interruption"

    calls = interrupt_at(monkeypatch, 0)  # counts only
    train(TINY, out)
    # Only the steps not yet done are drawn again (and the latent-scale batch once the VAE stage is done).
    assert calls["n"] == DRAWS - (call - 1) + (call > SCALE_DRAW), "the run resumed where it stopped, not from scratch"
    assert differing_weights(trained, out) == []
    summary = json.loads((out / "training.json").read_text())
    reference = json.loads((trained / "training.json").read_text())
    for loss in ("final_clip_loss", "final_diffusion_loss", "autoencoder_reconstruction_mse"):
        assert summary[loss] == reference[loss], loss
    assert not checkpoints.exists(), "the checkpoint folder is removed after success"


def test_a_checkpoint_of_another_configuration_is_refused(tmp_path, monkeypatch):
    out = tmp_path / "model"
    interrupt_at(monkeypatch, 7)
    with pytest.raises(Interrupted):
        train(TINY, out)
    monkeypatch.undo()
    before = snapshot(tmp_path / "model.training")
    with pytest.raises(ValueError, match="another training configuration") as error:
        train(replace(TINY, unet=Stage(4, 2, 1e-3)), out)
    assert "model.training" in str(error.value), "the message names the checkpoint folder to remove"
    assert snapshot(tmp_path / "model.training") == before and not out.exists()


def test_a_checkpoint_written_on_another_device_resumes(trained, tmp_path, monkeypatch):
    """A run stopped on a GPU goes on on a CPU: the checkpoint records ``device="cuda"`` and the resumed
    run (on the CPU) ends with the uninterrupted run's weights."""
    out = tmp_path / "model"
    interrupt_at(monkeypatch, 7)
    with pytest.raises(Interrupted):
        train(TINY, out)
    monkeypatch.undo()
    unet_checkpoint = tmp_path / "model.training" / "unet.pt"
    state = torch.load(unet_checkpoint, weights_only=False)
    state["config"]["device"] = "cuda"
    torch.save(state, unet_checkpoint)
    train(TINY, out)
    assert differing_weights(trained, out) == []


def test_an_existing_model_is_refused_unless_overwrite(trained, tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    for name, data in snapshot(trained).items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    (out / "README.md").write_text("model card\n")
    (out / "stale.txt").write_text("left over\n")
    before = snapshot(out)
    with pytest.raises(FileExistsError, match="overwrite"):
        train(TINY, out)
    assert snapshot(out) == before, "the folder is left untouched"
    assert not (tmp_path / "model.training").exists()

    train(replace(TINY, seed=4), out, overwrite=True)
    assert differing_weights(trained, out) == list(WEIGHTS), "replaced by the new model"
    assert json.loads((out / "training.json").read_text())["config"]["seed"] == 4
    assert not (out / "stale.txt").exists(), "nothing of the old folder is left ..."
    assert (out / "README.md").read_text() == "model card\n", "... but its model card"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"], "no staging or checkpoint folder left"


def test_training_leaves_no_temporary_files(tmp_path, monkeypatch):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    train(replace(TINY, unet=Stage(1, 2, 1e-3), vae=Stage(1, 2, 1e-3), clip=Stage(1, 4, 1e-3)), tmp_path / "m")
    assert list(temporary.iterdir()) == []


@pytest.mark.parametrize("stage", ["clip", "vae", "unet"])
def test_cli_refuses_zero_steps_and_writes_nothing(tmp_path, monkeypatch, capsys, stage):
    monkeypatch.setitem(training.PRESETS, "small", TINY)  # quick, should the check go
    out = tmp_path / "z"
    assert main(["tinyworld", "train", "--preset", "small", f"--{stage}-steps", "0", "--out", str(out),
                 "--device", "cpu"]) == 2
    assert f"--{stage}-steps must be at least 1, got 0" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag, value, message", [
    ("--text-layers", "0", "--text-layers must be at least 1, got 0"),
    ("--text-width", "0", "--text-width must be at least 1, got 0"),
    ("--text-width", "18", "--text-width must be a multiple of 4 (the text tower's attention heads), got 18"),
    ("--clip-twins", "1.5", "--clip-twins is a share between 0 and 1, got 1.5"),
])
def test_cli_refuses_bad_text_options_and_writes_nothing(tmp_path, monkeypatch, capsys, flag, value, message):
    monkeypatch.setitem(training.PRESETS, "small", TINY)
    assert main(["tinyworld", "train", "--preset", "small", flag, value, "--out", str(tmp_path / "z"),
                 "--device", "cpu"]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_text_sizes_reach_the_text_tower_and_the_unet(tmp_path, monkeypatch):
    monkeypatch.setitem(training.PRESETS, "small", TINY)
    out = tmp_path / "wide"
    assert main(["tinyworld", "train", "--preset", "small", "--text-width", "24", "--text-layers", "2",
                 "--clip-twins", "0.5", "--out", str(out), "--device", "cpu"]) == 0
    text = json.loads((out / "text_encoder" / "config.json").read_text())
    assert (text["hidden_size"], text["num_hidden_layers"]) == (24, 2)
    assert json.loads((out / "unet" / "config.json").read_text())["cross_attention_dim"] == 24
    summary = json.loads((out / "training.json").read_text())
    assert "--text-width 24 --text-layers 2 --clip-twins 0.5" in summary["command"]
    assert summary["config"]["clip_twins"] == 0.5
    assert summary["config"]["sizes"]["image_width"] == TINY.sizes.image_width, "only the text tower changed"


def test_cli_trains_end_to_end_from_its_arguments(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(training.PRESETS, "small", replace(TINY, seed=0, device="auto"))
    out = tmp_path / "cli"
    assert main(["tinyworld", "train", "--preset", "small", "--seed", "5", "--vae-steps", "3", "--out", str(out),
                 "--device", "cpu", "--threads", "1"]) == 0
    assert str(out) in capsys.readouterr().out
    summary = json.loads((out / "training.json").read_text())
    expected = replace(TINY, seed=5, device="cpu", vae=Stage(3, 2, 1e-3))
    assert summary["config"] == as_json(expected), "the preset, with the arguments given"
    command = summary["command"]
    assert command.startswith("timelab tinyworld train ")
    for part in ("--seed 5", "--preset small", "--vae-steps 3", "--device cpu", "--threads 1", f"--out {out}"):
        assert part in command, (part, command)
    assert "--clip-steps" not in command and "--unet-steps" not in command
    with pytest.raises(SystemExit):  # no default folder inside the installed package: --out is required
        main(["tinyworld", "train", "--preset", "small"])
    assert not (tmp_path / "cli.training").exists()
    # The arguments reached training: the very weights train() gives for that configuration.
    train(expected, tmp_path / "reference")
    assert differing_weights(out, tmp_path / "reference") == []


def test_cli_refuses_an_existing_model_with_a_clear_message(trained, tmp_path, capsys):
    args = ["tinyworld", "train", "--out", str(trained), "--device", "cpu"]
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_clip_batches_with_twins_hold_pairs_told_apart_only_by_binding():
    plain = training.draw_batch(np.random.default_rng(4), 64, captioned=True)
    assert torch.equal(plain[0], training.draw_batch(np.random.default_rng(4), 64, captioned=True, twins=0.0)[0])
    pixels, texts = training.draw_batch(np.random.default_rng(4), 64, captioned=True, twins=1.0)
    assert len(texts) == 64 == len(pixels)
    twins = [i for i in range(63) if texts[i] != texts[i + 1] and sorted(texts[i].split()) == sorted(texts[i + 1].split())]
    assert len(twins) >= 5, texts
    for i in twins:
        assert not torch.equal(pixels[i], pixels[i + 1]), "a twin is another scene"
    plain_twins = [i for i in range(63) if plain[1][i] != plain[1][i + 1]
                   and sorted(plain[1][i].split()) == sorted(plain[1][i + 1].split())]
    assert len(plain_twins) < len(twins)


def test_the_full_preset_is_the_shipped_models_recipe():
    """``timelab tinyworld train --seed 0`` trains what ships: the shipped folder's recorded configuration
    is the full preset's (the device aside, which the command chooses)."""
    from timelab.tinyworld import MODEL_DIR

    shipped = json.loads((MODEL_DIR / "training.json").read_text())["config"]
    full = json.loads(json.dumps(asdict(replace(training.PRESETS["full"], seed=0))))
    assert {k: v for k, v in shipped.items() if k != "device"} == {k: v for k, v in full.items() if k != "device"}
