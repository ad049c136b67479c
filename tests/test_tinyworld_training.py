"""TinyWorld's training code: a two-step run writes a loadable pipeline, reproducibly from its seed."""

import json
from dataclasses import asdict, dataclass

import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file

from timelab.cli import main
from timelab.tinyworld import training
from timelab.tinyworld.caption_code import attribute_basis, caption_code
from timelab.tinyworld.tokenizer import build_tokenizer
from timelab.tinyworld.training import TrainConfig, train

PARTS = ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
         "vae/diffusion_pytorch_model.safetensors")


def same_weights(a, b) -> bool:
    """Whether two pipeline folders hold bit-identical UNet, text encoder and VAE weights."""
    for part in PARTS:
        x, y = load_file(a / part), load_file(b / part)
        if x.keys() != y.keys() or not all(torch.equal(x[k], y[k]) for k in x):
            return False
    return True


@pytest.fixture(autouse=True)
def torch_threads_restored():
    """``--threads 1`` sets torch's thread count for the whole process: put it back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_two_step_training_is_reproducible_and_loadable(tmp_path):
    torch.set_num_threads(1)  # as `--threads 1`; restored after the test
    config = TrainConfig(seed=3, steps=2, vae_steps=2, batch_size=8)
    train(config, tmp_path / "a")
    train(config, tmp_path / "b")
    assert same_weights(tmp_path / "a", tmp_path / "b"), "the same seed trains the same weights"
    train(TrainConfig(seed=4, steps=2, vae_steps=2, batch_size=8), tmp_path / "c")
    assert not same_weights(tmp_path / "a", tmp_path / "c"), "another seed trains other weights"
    pipe = StableDiffusionPipeline.from_pretrained(tmp_path / "a", local_files_only=True)
    assert pipe.vae.config.scaling_factor != 0.18215  # set from the trained latents
    summary = json.loads((tmp_path / "a" / "training.json").read_text())
    assert summary["config"]["seed"] == 3 and summary["config"]["steps"] == 2


def test_caption_codes_are_additive_and_phrasing_free():
    basis = attribute_basis(64, seed=0)
    circle, square = caption_code("a circle", basis), caption_code("a square", basis)
    cos = lambda a, b: float(a @ b / (a.norm() * b.norm()))  # noqa: E731
    assert cos(circle, caption_code("a photo of a circle", basis)) == pytest.approx(1.0)
    assert cos(circle, square) == pytest.approx(0.0, abs=1e-6)
    assert cos(circle, caption_code("a big circle", basis)) == pytest.approx(1 / (1 + 0.5**2) ** 0.5, abs=1e-6)
    assert caption_code("a circle", basis).norm() == pytest.approx(8.0)
    assert abs(float(circle.mean())) < 1e-6  # reachable by a LayerNorm output


@dataclass
class QuickTrainConfig(TrainConfig):
    """The CLI's config with 2 autoencoder steps: the CLI has no --vae-steps, and its 600 take minutes."""

    vae_steps: int = 2


def test_cli_trains_a_loadable_pipeline_from_its_arguments_and_measures_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(training, "TrainConfig", QuickTrainConfig)
    out = tmp_path / "m"
    args = ["tinyworld", "train", "--seed", "1", "--steps", "2", "--batch-size", "8", "--out", str(out),
            "--threads", "1"]
    assert main(args) == 0
    summary = json.loads((out / "training.json").read_text())
    assert json.loads(capsys.readouterr().out) == summary, "the CLI prints what it wrote"
    expected = QuickTrainConfig(seed=1, steps=2, batch_size=8)
    assert summary["config"] == asdict(expected), "the arguments given, the defaults for the rest"
    assert summary["torch_threads"] == 1 and "--threads 1" in summary["command"]

    # The arguments reached training: the same weights as train() with that config, on as many threads
    # (another seed gives other weights, see above).
    torch.set_num_threads(1)
    train(expected, tmp_path / "reference")
    assert same_weights(out, tmp_path / "reference")

    pipe = StableDiffusionPipeline.from_pretrained(out, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    prompt = "a small red circle on a black background"
    assert pipe.tokenizer(prompt).input_ids == build_tokenizer()(prompt).input_ids, "TinyWorld's own tokenizer"
    image = pipe(prompt, num_inference_steps=1, height=32, width=32, output_type="np",
                 generator=torch.Generator().manual_seed(0)).images
    assert image.shape == (1, 32, 32, 3) and torch.isfinite(torch.from_numpy(image)).all()

    # `timelab tinyworld measure` on the folder just written: figures and model card beside the weights.
    assert main(["tinyworld", "measure", "--model", str(out), "--seeds", "1", "--steps", "1", "--threads", "1"]) == 0
    figures = json.loads((out / "figures.json").read_text())
    assert "--seeds 1 --steps 1" in figures["command"] and "--model" in figures["command"]
    assert (out / "README.md").read_text() in capsys.readouterr().out
    assert same_weights(out, tmp_path / "reference"), "measuring leaves the weights alone"


def test_cli_refuses_zero_steps_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(training, "TrainConfig", QuickTrainConfig)  # fails fast should the check go
    assert main(["tinyworld", "train", "--steps", "0", "--out", str(tmp_path / "z")]) == 2
    assert "--steps must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "z").exists()
